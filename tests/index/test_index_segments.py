"""Commits of a few changes: appended as segments, existing files untouched, counts kept."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import faiss
import numpy as np
import pytest

import fglab.index.atomic as atomic
import fglab.index.disk as disk
from fglab.index.atomic import IncompleteIndexError
from fglab.index.items import ItemTable
from fglab.index.store import EmbeddingIndex, IndexSettings, Item
from tests.index.killing import kill_when_flagged


def _items(n: int, modality: str = "image", start: int = 0) -> list[Item]:
    prefix = {"image": "ima", "text": "txt"}[modality]
    return [Item(f"{prefix}-{i}", modality, str(i), f"c{i % 3}") for i in range(start, start + n)]


def _vectors(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _saved(path: Path, kind: str = "flat", n: int = 300) -> np.ndarray:
    x = _vectors(n)
    index = EmbeddingIndex(16, IndexSettings(kind=kind, nprobe=64))
    index.add(_items(n), x)
    index.add(_items(150, "text"), _vectors(150, seed=5))

    def model(tmp: Path) -> None:
        (tmp / "model").mkdir()
        (tmp / "model" / "config.json").write_text("{}")

    index.save(path, write_extra=model)
    return x


def _stats(path: Path) -> dict[str, tuple[int, int]]:
    return {
        p.relative_to(path).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in path.rglob("*")
        if p.is_file()
    }


def _top(index: EmbeddingIndex, vector: np.ndarray, k: int = 1) -> list[str]:
    return [item.id for item, _ in index.search(vector, "image", k)[0]]


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw", "pq"])
def test_add_and_remove_append_segments_and_leave_existing_files_alone(kind, tmp_path):
    path = tmp_path / "index"
    x = _saved(path, kind)
    before = _stats(path)
    index = EmbeddingIndex.load(path, vectors=False)
    new = _vectors(3, seed=7)
    index.add(_items(3, start=900), new)
    index.remove(["ima-5", "txt-2"])
    index.save_changes(path)
    index.remove(["ima-900"])
    index.save_changes(path)
    after = _stats(path)
    for name, stat in before.items():  # every earlier file: same inode, never rewritten
        if name != "index.json":
            assert after[name] == stat, name
    assert {n for n in after if n not in before} == {
        "segments/000002/items.parquet",
        "segments/000002/image.npy",
        "segments/000002/removed.npy",
        "segments/000003/removed.npy",
    }
    loaded = EmbeddingIndex.load(path)
    assert loaded.count("image") == 300 + 3 - 2 and loaded.count("text") == 149
    assert _top(loaded, new[1]) == ["ima-901"]
    assert "ima-900" not in _top(loaded, new[0], 400) and "ima-5" not in _top(loaded, x[5], 400)
    assert len(_top(loaded, x[0], 400)) == 301


def test_counts_are_kept_without_scanning_the_items(tmp_path, monkeypatch):
    path = tmp_path / "index"
    _saved(path)
    index = EmbeddingIndex.load(path)

    def no_scan(*_args, **_kwargs):
        raise AssertionError("the items were scanned")

    for name in ("_count", "__iter__", "live"):
        monkeypatch.setattr(ItemTable, name, no_scan)
    index.add(_items(4, start=500), _vectors(4, seed=3))
    index.remove(["ima-1", "ima-500", "txt-0"])
    assert (index.count("image"), index.count("text"), len(index)) == (302, 149, 451)
    assert len(index.search(_vectors(1, seed=4), "image", 500)[0]) == 302
    index.save_changes(path)
    monkeypatch.undo()
    loaded = EmbeddingIndex.load(path)
    assert (loaded.count("image"), loaded.count("text")) == (302, 149)
    assert loaded.items._count() == {"image": 302, "text": 149}  # agrees with a real count


def test_many_commits_are_merged_into_a_new_base_that_keeps_the_model(tmp_path, monkeypatch):
    monkeypatch.setattr(disk, "MAX_SEGMENTS", 2)
    path = tmp_path / "index"
    _saved(path)
    for step in range(3):
        index = EmbeddingIndex.load(path, vectors=False)
        index.add(_items(1, start=700 + step), _vectors(1, seed=step))
        index.save_changes(path)
    listing = json.loads((path / "index.json").read_text())
    assert listing["segments"] == [] and not (path / "segments").exists()
    assert (path / "model" / "config.json").read_text() == "{}"
    assert EmbeddingIndex.load(path).count("image") == 303


def test_a_second_writer_with_a_stale_copy_is_refused(tmp_path):
    path = tmp_path / "index"
    _saved(path)
    first, second = EmbeddingIndex.load(path, vectors=False), EmbeddingIndex.load(path)
    first.add(_items(1, start=800), _vectors(1))
    first.save_changes(path)
    second.add(_items(1, start=801), _vectors(1))
    with pytest.raises(IncompleteIndexError, match="changed since it was loaded"):
        second.save_changes(path)


def test_a_damaged_segment_is_named(tmp_path):
    path = tmp_path / "index"
    _saved(path)
    index = EmbeddingIndex.load(path, vectors=False)
    index.add(_items(1, start=800), _vectors(1))
    index.save_changes(path)
    with open(path / "segments/000002/image.npy", "r+b") as handle:
        handle.seek(-4, os.SEEK_END)
        handle.write(b"\0\0\0\0")
    with pytest.raises(IncompleteIndexError, match="segments/000002/image.npy does not match"):
        EmbeddingIndex.load(path)
    assert EmbeddingIndex.load(path, vectors=False).count("image") == 301  # vectors not read


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import numpy as np
    import fglab.index.disk as disk
    from fglab.index.store import EmbeddingIndex, Item

    path, flag, stage = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]

    def stall(*args, **kwargs):  # the new segment is written, the listing is not (yet)
        flag.write_text("stalled")
        time.sleep(120)

    setattr(disk, stage, stall)
    index = EmbeddingIndex.load(path, vectors=False)
    index.add([Item(f"new-{i}", "image", str(i)) for i in range(5)], np.ones((5, 16), np.float32))
    index.save_changes(path)
    """
)


@pytest.mark.parametrize("stage", ["fsync_tree", "commit_listing"])
def test_a_killed_add_leaves_the_index_loadable_and_the_next_add_works(stage, tmp_path):
    path = tmp_path / "index"
    _saved(path)
    flag = tmp_path / "flag"
    kill_when_flagged(WRITER, [str(path), str(flag), stage], flag, "commit")
    assert any((path / "segments").iterdir())  # a leftover the listing does not name
    loaded = EmbeddingIndex.load(path)
    assert loaded.count("image") == 300 and "new-0" not in loaded
    loaded.add(_items(1, start=950), _vectors(1, seed=9))
    loaded.save_changes(path)
    assert [p.name for p in (path / "segments").iterdir()] == ["000002"]  # leftover removed
    assert "ima-950" in EmbeddingIndex.load(path)


def test_a_format_1_index_loads_and_its_first_commit_rewrites_it(tmp_path, monkeypatch):
    path = tmp_path / "old"
    path.mkdir()
    x = _vectors(10)
    flat = faiss.IndexIDMap2(faiss.IndexFlatIP(16))
    flat.add_with_ids(x, np.arange(10, dtype=np.int64))
    faiss.write_index(flat, str(path / "image.faiss"))
    with open(path / "items.jsonl", "w", encoding="utf-8") as handle:
        for item in _items(10):
            handle.write(json.dumps({"key": int(item.pair_id), **item.__dict__}) + "\n")
    monkeypatch.setattr(atomic, "FORMAT_VERSION", 1)
    atomic.write_listing(path, {
        "dim": 16, "next_key": 10, "settings": {"kind": "flat"}, "info": {},
        "modalities": {"image": {"kind": "flat", "deleted": [], "items": 10}},
    })
    monkeypatch.undo()
    old = EmbeddingIndex.load(path)
    assert old.count("image") == 10 and _top(old, x[4]) == ["ima-4"]
    index = EmbeddingIndex.load(path, vectors=False)
    index.add(_items(1, start=10), _vectors(1, seed=2))
    index.save_changes(path)
    assert json.loads((path / "index.json").read_text())["format_version"] == 2
    assert not (path / "items.jsonl").exists()
    loaded = EmbeddingIndex.load(path)
    assert loaded.count("image") == 11 and _top(loaded, x[7]) == ["ima-7"]


def test_a_large_add_is_spilled_written_and_replayed_in_blocks(tmp_path, monkeypatch):
    path = tmp_path / "index"
    _saved(path)
    monkeypatch.setattr("fglab.index.refined.SPILL_BYTES", 16 * 4 * 10)  # spill every 10 rows
    monkeypatch.setattr(disk, "REPLAY_ROWS", 7)
    index = EmbeddingIndex.load(path, vectors=False)
    new = _vectors(95, seed=9)
    for start in range(0, 95, 19):
        index.add(_items(19, start=1000 + start), new[start : start + 19])
    assert len(index.changes.added["image"].parts) == 5  # each add went to a spill file
    index.save_changes(path)
    assert np.array_equal(np.load(path / "segments/000002/image.npy"), new)
    blocks: list[int] = []
    add = EmbeddingIndex.add_vectors
    monkeypatch.setattr(EmbeddingIndex, "add_vectors", lambda self, m, keys, rows: (
        blocks.append(len(keys)), add(self, m, keys, rows))[1])
    loaded = EmbeddingIndex.load(path)
    assert max(blocks) <= 300 and blocks[-14:] == [7] * 13 + [4]  # the segment: 95 in 7s
    assert _top(loaded, new[42]) == ["ima-1042"]


@pytest.mark.parametrize("kind", ["pq", "ivfpq"])
def test_a_few_items_of_a_new_modality_added_to_a_coded_index_load_back(kind, tmp_path):
    path = tmp_path / "index"
    index = EmbeddingIndex(16, IndexSettings(kind=kind))
    index.add(_items(300), _vectors(300))
    index.save(path)
    metadata = EmbeddingIndex.load(path, vectors=False)
    texts = _vectors(10, seed=3)
    metadata.add(_items(10, "text"), texts)  # too few to train codes on: exact search
    metadata.save_changes(path)
    loaded = EmbeddingIndex.load(path)  # a quantizer trained on 10 vectors used to fail here
    assert loaded.kinds == {"image": kind, "text": "flat"}
    assert loaded.search(texts[4], "text", 1)[0][0][0].id == "txt-4"
