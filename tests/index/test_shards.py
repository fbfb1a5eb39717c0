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


def test_a_skipped_image_gets_the_keys_the_embedded_path_gives(tmp_path):
    """Manifest images, one unreadable: the sharded build (vectors staged as part files,
    shards written by tasks) drops it and numbers the rest as one index does."""
    from tests.index.fakes import FakePipeline, fake_featurizer, write_collection

    def featurizer(paths, view, cache_dir=None, progress=False):  # boats-1 fails to decode
        rows, failures = fake_featurizer(paths, view)
        failures.update({i: "truncated" for i, path in enumerate(paths) if "boats-1" in str(path)})
        return rows, failures

    manifest_path = write_collection(tmp_path / "photos", 3)
    manifest, pipeline = load_collection(f"manifest:{manifest_path}"), FakePipeline()
    flat, skipped = build_index(pipeline, manifest, settings=IndexSettings(kind="flat"),
                                featurizer=featurizer)
    counts, staged_skipped = build_sharded(LocalBackend(featurizer), pipeline, manifest,
                                           tmp_path / "sharded", 3,
                                           settings=IndexSettings(kind="flat"))
    sharded = EmbeddingIndex.load(tmp_path / "sharded")
    assert staged_skipped == skipped and len(skipped) == 1
    assert "boats-1" in skipped[0] and "image unreadable (truncated)" in skipped[0]
    assert sharded.by_id == flat.by_id and "img-boats-1" not in sharded
    assert counts == {"text": flat.count("text"), "image": flat.count("image")}
    assert not (tmp_path / "sharded" / ".staging").exists()
    query = pipeline.encode_texts(["boats on the sea"])
    for target in ("image", "text"):  # equal scores (one colour per category) as groups
        ours, theirs = sharded.search(query, target, 20)[0], flat.search(query, target, 20)[0]
        assert _by_score(ours) == _by_score(theirs)


def test_staged_parts_are_read_once_and_a_missing_row_is_named(tmp_path):
    from fglab.index.shards import gather_rows, write_parts

    vectors = np.arange(12, dtype=np.float32).reshape(6, 2)
    rows = np.arange(6)
    shards, sample = np.array([0, 1, 0, 1, 0, 1]), np.zeros(6, dtype=bool)
    write_parts(tmp_path, rows, vectors, shards, sample)
    write_parts(tmp_path, rows[:2], vectors[:2], shards[:2], sample[:2])  # a retried batch
    assert np.array_equal(gather_rows(tmp_path / "000", np.array([0, 4]), 2), vectors[[0, 4]])
    assert not list(tmp_path.rglob("*.partial")) and not (tmp_path / "sample").exists()
    with pytest.raises(IncompleteIndexError, match="first: row 3"):
        gather_rows(tmp_path / "000", np.array([2, 3]), 2)


def test_adding_a_new_modality_gives_every_shard_its_index(tmp_path, monkeypatch):
    """Texts first, then their images: every shard gets an image index (the receiving ones
    rewritten by tasks, the others linked), and the whole searches as one index does."""
    import csv

    from tests.index.fakes import FakePipeline, fake_featurizer, write_collection

    full = write_collection(tmp_path / "photos", 3)
    with open(full, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    texts, images = tmp_path / "photos" / "texts.csv", tmp_path / "photos" / "images.csv"
    for path, keep in ((texts, ("id", "text", "label")), (images, ("id", "image_path", "label"))):
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(keep))
            writer.writeheader()
            writer.writerows({k: row[k] for k in keep} for row in rows)
    pipeline, backend = FakePipeline(), LocalBackend(fake_featurizer)
    build_sharded(backend, pipeline, load_collection(f"manifest:{texts}"), tmp_path / "s", 4)
    monkeypatch.setattr("fglab.pipeline.RetrievalPipeline.load", FakePipeline.load)
    from fglab.ingest.build import add_to_sharded_index

    added, _ = add_to_sharded_index(backend, tmp_path / "s", load_collection(f"manifest:{images}"))
    sharded = EmbeddingIndex.load(tmp_path / "s")
    assert added == {"image": len(rows)} and sharded.count("image") == len(rows)
    assert all((folder / "image.faiss").is_file()
               for folder in (tmp_path / "s" / "shards").iterdir())
    flat_texts, _ = build_index(pipeline, load_collection(f"manifest:{texts}"),
                                settings=IndexSettings(kind="flat"), featurizer=fake_featurizer)
    flat, _ = build_index(pipeline, load_collection(f"manifest:{images}"),
                          featurizer=fake_featurizer, index=flat_texts)
    assert sharded.by_id == flat.by_id
    query = pipeline.encode_texts(["boats on the sea"])
    assert _by_score(sharded.search(query, "image", len(rows))[0]) == \
        _by_score(flat.search(query, "image", len(rows))[0])
