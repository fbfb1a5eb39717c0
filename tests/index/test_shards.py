"""Sharded index directories without Ray: built in process, read by the embedded loader."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from fglab.cli import main
from fglab.data.collection import load_collection
from fglab.index.atomic import IncompleteIndexError
from fglab.index.shards import merge_top_k, shard_of
from fglab.index.store import EmbeddingIndex, IndexSettings
from fglab.ingest.backend import LocalBackend
from fglab.ingest.build import build_index, build_sharded
from fglab.retriever import Retriever
from tests.test_run_files import WORDS, small_pipeline


def _manifest(path, count: int, start: int = 0):
    rng = np.random.default_rng(start)
    with open(path, "w", encoding="utf-8") as handle:
        for number in range(start, start + count):
            words = " ".join(WORDS[i] for i in rng.integers(0, len(WORDS), 6))
            handle.write(json.dumps({"id": f"doc{number}", "text": words}) + "\n")
    return path


@pytest.fixture()
def run(tmp_path):
    small_pipeline().save(tmp_path / "run")
    return tmp_path / "run"


@pytest.fixture()
def collection(tmp_path):
    return _manifest(tmp_path / "docs.jsonl", 120)


def test_merge_keeps_the_best_k_and_breaks_ties_by_lower_id():
    first = (np.array([[0.9, 0.5]]), np.array([[7, 3]]))
    second = (np.array([[0.9, 0.1, 0.0]]), np.array([[2, 9, -1]]))
    scores, ids = merge_top_k([first, second], 4)
    assert ids.tolist() == [[2, 7, 3, 9]] and scores[0, :2].tolist() == pytest.approx([0.9] * 2)
    _, ids = merge_top_k([(np.array([[0.4]]), np.array([[1]]))], 3)
    assert ids.tolist() == [[1, -1, -1]]


def test_shard_of_is_stable():
    assert [shard_of(f"txt-{i}", 4) for i in range(6)] == [shard_of(f"txt-{i}", 4)
                                                            for i in range(6)]
    assert {shard_of(f"txt-{i}", 4) for i in range(100)} == {0, 1, 2, 3}


def test_sharded_index_searches_exactly_like_one_flat_index(run, collection, tmp_path):
    pipeline = small_pipeline()
    manifest = load_collection(f"manifest:{collection}")
    flat, _ = build_index(pipeline, manifest, settings=IndexSettings(kind="flat"))
    build_sharded(LocalBackend(), pipeline, manifest, tmp_path / "sharded", 3,
                  settings=IndexSettings(kind="flat"))
    sharded = EmbeddingIndex.load(tmp_path / "sharded")
    listing = json.loads((tmp_path / "sharded" / "index.json").read_text())
    assert len(listing["shards"]) == 3 and sum(s["items"]["text"] for s in listing["shards"]) == 120
    assert sharded.by_id == flat.by_id  # the same keys as the embedded path gives
    queries = pipeline.encode_texts(["castle river", "guitar music concert", "king army"])
    # every item ranked: equal scores (a 12-word vocabulary has many) compared as groups
    for one, other in zip(flat.search(queries, "text", 120), sharded.search(queries, "text", 120),
                          strict=True):
        assert np.allclose([s for _, s in one], [s for _, s in other], atol=1e-5)
        assert _by_score(one) == _by_score(other)
    assert Retriever.open(tmp_path / "sharded").search_text("castle", 5, "text")


def _by_score(hits) -> list[tuple[float, str]]:
    return sorted((-round(score, 4), item.id) for item, score in hits)


def test_cli_builds_adds_and_refuses_removal(run, collection, tmp_path, capsys):
    index = tmp_path / "index"
    argv = ["index", str(run), "--dataset", f"manifest:{collection}", "--out", str(index),
            "--shards", "2"]
    assert main(argv) == 0
    more = _manifest(tmp_path / "more.jsonl", 10, start=500)
    assert main(["index-add", str(index), "--dataset", f"manifest:{more}"]) == 0
    loaded = EmbeddingIndex.load(index)
    assert loaded.count("text") == 130 and "txt-doc505" in loaded
    query = small_pipeline().encode_texts(["castle"])
    assert len(loaded.search(query, "text", 130)[0]) == 130
    assert main(["index-remove", str(index), "txt-doc1"]) == 2
    assert "sharded index" in capsys.readouterr().err


def test_a_damaged_shard_is_named(run, collection, tmp_path):
    pipeline = small_pipeline()
    manifest = load_collection(f"manifest:{collection}")
    build_sharded(LocalBackend(), pipeline, manifest, tmp_path / "sharded", 2)
    faiss_file = tmp_path / "sharded" / "shards" / "001" / "text.faiss"
    faiss_file.write_bytes(faiss_file.read_bytes()[:-8])
    with pytest.raises(IncompleteIndexError, match="shards/001/text.faiss"):
        EmbeddingIndex.load(tmp_path / "sharded")


@pytest.mark.skipif(importlib.util.find_spec("ray") is not None, reason="Ray is installed")
def test_ray_without_the_extra_is_one_line(run, collection, tmp_path, capsys):
    argv = ["index", str(run), "--dataset", f"manifest:{collection}", "--out",
            str(tmp_path / "i"), "--ray", "auto"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and 'pip install -e ".[cluster]"' in err
