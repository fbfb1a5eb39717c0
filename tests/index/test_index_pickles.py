"""An index embeds its run's model as JSON and arrays: a pickle planted in it is refused,
even with the index's listing rewritten to match, as whoever hands over an index can."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fglab.cli import main
from fglab.index.atomic import LISTING
from fglab.index.store import EmbeddingIndex, Item
from fglab.integrity import DamagedFileError, PickleRefusedError, file_entry
from fglab.retriever import MODEL_DIR, Retriever
from tests.test_run_files import TEXTS, plant_pickle, small_pipeline


@pytest.fixture()
def index_dir(tmp_path) -> Path:
    pipeline = small_pipeline()
    vectors = pipeline.encode_texts(TEXTS)
    index = EmbeddingIndex(vectors.shape[1], info={"collection_root": str(tmp_path)})
    index.add([Item(f"txt-{i}", "text", str(i), "a", t, t) for i, t in enumerate(TEXTS)], vectors)
    index.save(tmp_path / "index", write_extra=lambda tmp: pipeline.save(tmp / MODEL_DIR))
    return tmp_path / "index"


def _relist(index_dir: Path, name: str) -> None:
    """Rewrite the index's listing to hold ``name`` as it now is."""
    listing = json.loads((index_dir / LISTING).read_text())
    listing["files"][name] = file_entry(index_dir / name)
    (index_dir / LISTING).write_text(json.dumps(listing))


def test_an_index_searches_with_its_embedded_model(index_dir):
    retriever = Retriever.open(index_dir)
    hits = retriever.search_text("guitar music", k=1, target="text")
    assert hits[0].id == "txt-1"
    files = [p for p in index_dir.rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix in (".pkl", ".joblib")]


@pytest.mark.parametrize("name", [f"{MODEL_DIR}/method.joblib", f"{MODEL_DIR}/method/a.pkl",
                                  "extra.pickle"])
def test_a_pickle_planted_in_an_index_is_refused_unopened(index_dir, tmp_path, name):
    marker = tmp_path / "pwned"
    plant_pickle(index_dir / name, marker)
    _relist(index_dir, name)
    for load in (EmbeddingIndex.load, Retriever.open):
        with pytest.raises(PickleRefusedError, match="pickles are refused"):
            load(index_dir)
    assert not marker.exists()


def test_search_refuses_a_pickled_index_in_one_line(index_dir, tmp_path, capsys):
    plant_pickle(index_dir / MODEL_DIR / "method.joblib", tmp_path / "pwned")
    _relist(index_dir, f"{MODEL_DIR}/method.joblib")
    assert main(["search", str(index_dir), "--text", "castle"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pickles are refused" in err and "build the index again" in err
    assert not (tmp_path / "pwned").exists()


def test_an_altered_model_array_is_named_even_with_the_index_listing_rewritten(index_dir):
    name = f"{MODEL_DIR}/method/arrays.safetensors"
    data = bytearray((index_dir / name).read_bytes())
    data[-5] ^= 0x01
    (index_dir / name).write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"file {name} does not match"):
        EmbeddingIndex.load(index_dir)
    _relist(index_dir, name)
    with pytest.raises(DamagedFileError, match="method/arrays.safetensors does not match"):
        Retriever.open(index_dir)


def test_the_embedded_model_encodes_as_the_run(index_dir):
    from fglab.pipeline import RetrievalPipeline

    loaded = RetrievalPipeline.load(index_dir / MODEL_DIR)
    np.testing.assert_array_equal(loaded.encode_texts(TEXTS), small_pipeline().encode_texts(TEXTS))
