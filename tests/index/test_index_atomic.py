"""Index directories are published atomically: a killed build never leaves one that loads."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from fglab.index.atomic import IncompleteIndexError, remove_stale_builds
from fglab.index.store import EmbeddingIndex, Item
from tests.index.killing import kill_when_flagged

WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import numpy as np
    from fglab.index.store import EmbeddingIndex, Item

    index = EmbeddingIndex(8)
    index.add([Item(f"new-{i}", "text", str(i)) for i in range(50)],
              np.ones((50, 8), np.float32))

    def stall(tmp):  # the build is half written when this runs
        (Path(sys.argv[2]) / "started").write_text(str(tmp))
        time.sleep(120)

    index.save(Path(sys.argv[1]), write_extra=stall)
    """
)


def _old_index(path: Path) -> None:
    index = EmbeddingIndex(8)
    index.add([Item(f"old-{i}", "text", str(i)) for i in range(3)], np.eye(3, 8, dtype=np.float32))
    index.save(path)


def _kill_mid_write(target: Path, tmp_path: Path) -> Path:
    kill_when_flagged(WRITER, [str(target), str(tmp_path)], tmp_path / "started", "write")
    return Path((tmp_path / "started").read_text())


def test_killed_rewrite_keeps_the_old_index_and_the_partial_one_does_not_load(tmp_path):
    target = tmp_path / "index"
    _old_index(target)
    partial = _kill_mid_write(target, tmp_path)
    assert partial.is_dir() and partial != target  # the half-written build is left aside
    with pytest.raises(IncompleteIndexError, match="index.json is missing"):
        EmbeddingIndex.load(partial)
    assert sorted(EmbeddingIndex.load(target).by_id) == ["old-0", "old-1", "old-2"]


def test_killed_first_build_leaves_nothing_that_loads(tmp_path):
    target = tmp_path / "index"
    partial = _kill_mid_write(target, tmp_path)
    with pytest.raises(IncompleteIndexError, match="interrupted build"):
        EmbeddingIndex.load(partial)
    with pytest.raises(FileNotFoundError, match="not found"):
        EmbeddingIndex.load(target)


def test_damaged_or_foreign_directories_fail_with_a_clear_error(tmp_path):
    target = tmp_path / "index"
    _old_index(target)
    with open(target / "items.parquet", "r+b") as handle:
        handle.truncate(10)
    with pytest.raises(IncompleteIndexError, match="items.parquet does not match"):
        EmbeddingIndex.load(target)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "index.json").write_text('{"format": "something"}')
    with pytest.raises(IncompleteIndexError, match="not a fglab index"):
        EmbeddingIndex.load(tmp_path / "other")


def test_failed_write_removes_its_temporary_directory(tmp_path):
    index = EmbeddingIndex(8)
    index.add([Item("a", "text", "a")], np.ones((1, 8), np.float32))

    def fail(_tmp):
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        index.save(tmp_path / "index", write_extra=fail)
    assert list(tmp_path.iterdir()) == []


def test_builds_left_by_killed_writers_are_removed_by_the_next_load_and_write(tmp_path):
    target = tmp_path / "index"
    _old_index(target)
    partial = _kill_mid_write(target, tmp_path)
    EmbeddingIndex.load(target)
    assert not partial.exists()
    (tmp_path / "started").unlink()
    partial = _kill_mid_write(target, tmp_path)
    _old_index(target)  # the next write
    assert not partial.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_live_build_is_never_removed(tmp_path):
    target = tmp_path / "index"
    _old_index(target)
    index = EmbeddingIndex(8)
    index.add([Item("new", "text", "new")], np.ones((1, 8), np.float32))
    seen = []

    def meanwhile(tmp):  # loads and writes, as another process would, while this one runs
        assert remove_stale_builds(target) == [] and tmp.is_dir()
        EmbeddingIndex.load(target)
        _old_index(tmp_path / "other")
        seen.append(tmp.is_dir())

    index.save(target, write_extra=meanwhile)
    assert seen == [True] and sorted(EmbeddingIndex.load(target).by_id) == ["new"]


def test_a_folder_that_is_not_an_index_is_never_replaced(tmp_path):
    from fglab.index.atomic import atomic_directory, write_listing

    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "holiday.jpg").write_bytes(b"not yet backed up")
    with pytest.raises(ValueError, match="holds no index"), atomic_directory(photos) as tmp:
        write_listing(tmp, {})
    assert (photos / "holiday.jpg").read_bytes() == b"not yet backed up"
    empty = tmp_path / "empty"
    empty.mkdir()
    with atomic_directory(empty) as tmp:  # an empty folder may become an index
        write_listing(tmp, {})
    assert (empty / "index.json").is_file()
