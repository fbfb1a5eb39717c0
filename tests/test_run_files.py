"""A run folder on disk: JSON, NumPy and safetensors files listed with their SHA-256 in
pipeline.json; pickles are refused, altered files named. Small synthetic runs, no data set."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from scipy import sparse

from fglab.baselines import CCARetrieval
from fglab.cli import main
from fglab.features.featureset import FeatureSet
from fglab.features.text import TfidfTextFeatures
from fglab.features.views import _pretokenized
from fglab.integrity import PICKLE_SUFFIXES, DamagedFileError, PickleRefusedError
from fglab.pipeline import PIPELINE_FILE, RetrievalPipeline

WORDS = [
    "river", "castle", "music", "guitar", "concert", "boat", "harbour", "sea", "king", "queen",
    "army", "battle",
]
TEXTS = ["a castle by the river", "guitar music at the concert", "the king and his army"]


class Planted:
    """Unpickling this creates ``marker``: proof that loading a pickle runs its code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def plant_pickle(path: Path, marker: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(Planted(marker)))


def small_pipeline(seed: int = 0) -> RetrievalPipeline:
    """CCA over tf-idf of a 12-word vocabulary and 12-d image features, three classes."""
    rng = np.random.default_rng(seed)
    labels = np.arange(60) % 3
    tokens = [[WORDS[(4 * c + int(w)) % 12] for w in rng.integers(0, 6, 8)] for c in labels]
    tfidf = TfidfTextFeatures(_pretokenized, min_df=1).fit(tokens)
    images = rng.standard_normal((60, 12)) + 2.0 * np.eye(12)[labels]
    train = FeatureSet(images, sparse.csr_matrix(tfidf.transform(tokens)), labels)
    return RetrievalPipeline(
        "synthetic", "cca", "image:sift", "text:tfidf", "en", ["a", "b", "c"],
        CCARetrieval().fit(train), tfidf, ["the"],
    )


@pytest.fixture()
def run(tmp_path) -> Path:
    small_pipeline().save(tmp_path / "run")
    return tmp_path / "run"


def test_a_run_is_json_and_arrays_listed_with_their_sha256(run):
    files = sorted(p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file())
    assert files == [
        "method/arrays.safetensors", "method/state.json", PIPELINE_FILE,
        "text_features/idf.npy", "text_features/tfidf.json",
    ]
    listing = json.loads((run / PIPELINE_FILE).read_text())["files"]
    assert sorted(listing) == [f for f in files if f != PIPELINE_FILE]
    assert all(len(entry["sha256"]) == 64 for entry in listing.values())


def test_a_loaded_run_encodes_as_the_saved_one(run):
    saved, loaded = small_pipeline(), RetrievalPipeline.load(run)
    np.testing.assert_array_equal(loaded.encode_texts(TEXTS), saved.encode_texts(TEXTS))
    images = np.random.default_rng(1).standard_normal((4, 12))
    np.testing.assert_array_equal(
        loaded.encode_image_features(images), saved.encode_image_features(images)
    )


@pytest.mark.parametrize("name", ["method.joblib", "text_features.joblib", "method/extra.pkl",
                                  "checkpoints/model.pt"])
def test_a_pickle_in_a_run_is_refused_unopened(run, tmp_path, name):
    marker = tmp_path / "pwned"
    plant_pickle(run / name, marker)
    with pytest.raises(PickleRefusedError, match="pickles are refused") as error:
        RetrievalPipeline.load(run)
    assert "\n" not in str(error.value) and "train the run again" in str(error.value)
    assert not marker.exists()


def test_an_altered_array_is_named(run):
    path = run / "method" / "arrays.safetensors"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(DamagedFileError, match="method/arrays.safetensors does not match"):
        RetrievalPipeline.load(run)


def test_a_file_added_to_the_model_is_named(run):
    (run / "method" / "extra.json").write_text("{}")
    with pytest.raises(DamagedFileError, match="method/extra.json is not listed"):
        RetrievalPipeline.load(run)


def test_a_missing_file_is_named(run):
    (run / "text_features" / "idf.npy").unlink()
    with pytest.raises(DamagedFileError, match="idf.npy is missing"):
        RetrievalPipeline.load(run)


def test_a_run_of_an_older_fglab_is_refused(run):
    meta = json.loads((run / PIPELINE_FILE).read_text())
    for key in ("format", "format_version", "files"):
        del meta[key]
    (run / PIPELINE_FILE).write_text(json.dumps({**meta, "method_storage": "method"}))
    with pytest.raises(ValueError, match="saved by an older fglab"):
        RetrievalPipeline.load(run)


@pytest.mark.parametrize("name", ["fglab.__main__:main", "os:system", "builtins:object"])
def test_a_run_cannot_choose_which_code_is_imported(run, name):
    meta = json.loads((run / PIPELINE_FILE).read_text())
    (run / PIPELINE_FILE).write_text(json.dumps({**meta, "method_class": name}))
    with pytest.raises(ValueError, match="not one of fglab's"):
        RetrievalPipeline.load(run)


def test_saving_over_an_old_run_removes_its_pickles(tmp_path):
    run = tmp_path / "run"
    for name in ("method.joblib", "text_features.joblib"):
        plant_pickle(run / name, tmp_path / "pwned")
    small_pipeline().save(run)
    assert not [p for p in run.rglob("*") if p.suffix in PICKLE_SUFFIXES]
    RetrievalPipeline.load(run)


def test_evaluate_refuses_a_pickled_run_in_one_line(run, tmp_path, capsys):
    plant_pickle(run / "method.joblib", tmp_path / "pwned")
    assert main(["evaluate", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pickles are refused" in err and "method.joblib" in err


def test_a_word_view_run_tells_a_text_it_reads_nothing_of():
    pipeline = small_pipeline()
    assert pipeline.ignores_text("\U0001f642 !! \u200b")
    assert not pipeline.ignores_text(f"{WORDS[0]} {WORDS[1]}")


def test_a_querys_note_reuses_the_rows_its_search_read(monkeypatch):
    pipeline = small_pipeline()
    calls = []
    text_inputs = RetrievalPipeline._text_inputs
    monkeypatch.setattr(RetrievalPipeline, "_text_inputs",
                        lambda self, texts, stored: (calls.append(list(texts)),
                                                     text_inputs(self, texts, stored))[1])
    query = f"{WORDS[0]} {WORDS[1]}"
    first = pipeline.encode_texts([query])
    assert not pipeline.ignores_text(query) and calls == [[query]]  # read once for both
    assert np.array_equal(pipeline.encode_texts([query]), first) and len(calls) == 1
    assert pipeline.ignores_text("\U0001f642") and calls[-1] == ["\U0001f642"]
    pipeline.encode_texts([query, "\U0001f642"])  # several texts: never the one-query memo
    assert calls[-1] == [query, "\U0001f642"]
