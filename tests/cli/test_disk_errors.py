"""A full disk, a read-only folder or a folder where a file belongs is one line on stderr
(``fglab: error: PATH: problem``, exit 2, no traceback) for ``fglab index``, ``index-add``,
``index-remove``, ``train`` and ``features``, and what was written before stays loadable.

Full disks and permission errors are simulated at the lowest write each step uses (the tests
run as root in CI, where permissions do not bite); the real read-only folders run where the
tests do not run as root.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
import tempfile
from pathlib import Path

import faiss
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

import fglab.features.image as image_module
import fglab.features.store as store_module
import fglab.index.vectors as vectors_module
from fglab.cli import main
from fglab.features.cache import file_digest
from fglab.features.store import FeatureStore
from fglab.index.store import EmbeddingIndex
from fglab.pipeline import RetrievalPipeline
from tests.data.fixtures import write_manifest_collection
from tests.index.fakes import FakePipeline, fake_featurizer, write_collection

FULL = "No space left on device"
FULL_HINT = "(the disk is full: free space and run it again; nothing already written was changed)"
PERMISSION_HINT = "(check the folder's permissions)"
AS_ROOT = os.geteuid() == 0
FAISS_FULL = (
    "Error in void faiss::write_index(const Index*, IOWriter*, int) at "
    "/project/faiss/impl/index_write.cpp:499: Error: 'ret == (size * 4)' failed: write error "
    "in /x/image.faiss: 131027 != 2560000 (No space left on device)"
)
IMAGE_VIEW = "image:efficientnet-lite0"


# -- helpers ---------------------------------------------------------------------------------


def one_line_error(capsys) -> str:
    """The one error line, last on stderr (after any progress bar), with no traceback."""
    err = capsys.readouterr().err
    lines = err.splitlines()  # a progress bar redraws with "\r": each draw is a line
    errors = [line for line in lines if "fglab: error: " in line]
    assert len(errors) == 1 and lines[-1] == errors[0] and err.endswith("\n"), err
    assert errors[0].startswith("fglab: error: ") and "Traceback" not in err, err
    return errors[0]


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, FULL)


def checksums(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*")) if p.is_file()
    }


def counts(index: Path) -> tuple[int, int]:
    loaded = EmbeddingIndex.load(index)
    return loaded.count("image"), loaded.count("text")


def read_only(folder: Path) -> None:
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH
                 | stat.S_IXOTH)  # 0o555


needs_permissions = pytest.mark.skipif(AS_ROOT, reason="root ignores folder permissions")


@pytest.fixture()
def fakes(monkeypatch, tmp_path):
    """A stand-in trained run (as in tests/cli/test_search_cli.py)."""
    monkeypatch.setattr("fglab.cli.index.load_pipeline", FakePipeline.load)
    monkeypatch.setattr("fglab.ingest.embedder.default_image_featurizer", lambda: fake_featurizer)
    run = tmp_path / "run"
    FakePipeline().save(run)
    return run


@pytest.fixture()
def built(fakes, tmp_path, capsys):
    """(run, manifest, index) with an index of 6 images and 6 texts already written."""
    manifest = write_collection(tmp_path / "photos", 2)
    index = tmp_path / "out" / "index"
    assert main(["index", str(fakes), "--dataset", f"manifest:{manifest}", "--out",
                 str(index)]) == 0
    capsys.readouterr()
    return fakes, manifest, index


def index_argv(built, out: Path | None = None, *extra: str) -> list[str]:
    run, manifest, index = built
    return ["index", str(run), "--dataset", f"manifest:{manifest}", "--out", str(out or index),
            *extra]


def more_items(built) -> Path:
    extra = built[1].parent / "more.jsonl"
    extra.write_text('{"id": "new", "text": "horse", "image_path": "images/animals-0.jpg"}\n')
    return extra


def assert_intact(index: Path, before: dict[str, str]) -> None:
    assert checksums(index) == before
    assert counts(index) == (6, 6)
    assert not [p for p in index.parent.iterdir() if p.name.startswith(".index.tmp-")]


# -- fglab index, index-add, index-remove ----------------------------------------------------


@pytest.mark.parametrize("shards", [[], ["--shards", "2"]], ids=["one", "sharded"])
def test_a_faiss_write_failure_is_one_line_and_the_old_index_stays(built, capsys, monkeypatch,
                                                                    shards):
    index = built[2]
    before = checksums(index)

    real = faiss.write_index

    def failing(index, writer, *args):
        if isinstance(writer, faiss.VectorIOWriter):  # faiss.serialize_index: in memory
            return real(index, writer, *args)
        raise RuntimeError(FAISS_FULL)

    monkeypatch.setattr(faiss, "write_index", failing)
    assert main(index_argv(built, None, *shards)) == 2
    line = one_line_error(capsys)
    assert f"{index}/" in line and ".faiss: cannot write (No space left on device)" in line
    assert line.endswith(FULL_HINT) and "index_write.cpp" not in line
    assert_intact(index, before)


def test_a_parquet_write_on_a_full_disk_names_the_index(built, capsys, monkeypatch):
    index = built[2]
    before = checksums(index)
    monkeypatch.setattr(pq, "write_table", disk_full)
    assert main(index_argv(built)) == 2
    assert one_line_error(capsys) == f"fglab: error: {index}: {FULL} {FULL_HINT}"
    assert_intact(index, before)


@pytest.mark.parametrize("failure", [
    OSError(errno.ENOSPC, FULL),
    OSError("5000 requested and 4592 written"),  # what NumPy raises on a short write
], ids=["enospc", "short-write"])
def test_index_add_on_a_full_disk_keeps_the_index(built, capsys, monkeypatch, failure):
    index = built[2]
    before = checksums(index)

    def save(*args, **kwargs):
        raise failure

    monkeypatch.setattr(np, "save", save)
    monkeypatch.setattr("fglab.index.disk.write_npy", save)  # a segment's vectors, in blocks
    assert main(["index-add", str(index), "--dataset", f"manifest:{more_items(built)}"]) == 2
    line = one_line_error(capsys)
    reason = f"{FULL} {FULL_HINT}" if failure.errno else "5000 requested and 4592 written"
    assert line == f"fglab: error: {index}: {reason}"
    assert_intact(index, before)
    assert not list((index / "segments").iterdir())  # the half-written segment is gone


def test_index_remove_without_permission_keeps_the_index(built, capsys, monkeypatch):
    index = built[2]
    before = checksums(index)

    def denied(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(np, "save", denied)
    assert main(["index-remove", str(index), "img-boats-0"]) == 2
    line = one_line_error(capsys)
    assert line.startswith(f"fglab: error: {index}/segments/")
    assert line.endswith(f"removed.npy: Permission denied {PERMISSION_HINT}")
    assert_intact(index, before)


def test_index_over_a_file_refuses_and_keeps_the_file(built, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    assert main(index_argv(built, notes)) == 2
    assert one_line_error(capsys) == f"fglab: error: {notes}: is a file, not a folder"
    assert notes.read_text() == "mine" and not list(tmp_path.glob(".notes.txt.tmp-*"))


def test_index_under_a_file_names_the_file(built, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    assert main(index_argv(built, notes / "index")) == 2
    assert one_line_error(capsys).startswith(f"fglab: error: {notes}: ")  # "File exists" too
    assert notes.read_text() == "mine"


def test_a_folder_where_the_listing_goes_keeps_the_index(built, capsys):
    index = built[2]
    before = checksums(index)
    blocker = index / f".index.json.{os.getpid()}.tmp"  # the listing's temporary name
    blocker.mkdir()
    assert main(["index-remove", str(index), "img-boats-0"]) == 2
    assert one_line_error(capsys).startswith(f"fglab: error: {index}/.index.json.")
    blocker.rmdir()
    assert_intact(index, before)


def test_index_in_a_folder_without_permission_simulated(built, capsys, monkeypatch):
    """As root: mkdtemp refused as in a read-only folder."""
    index = built[2]
    before = checksums(index)

    def denied(*args, dir=None, prefix="", **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", f"{dir}/{prefix}x1y2z3")

    monkeypatch.setattr(tempfile, "mkdtemp", denied)
    assert main(index_argv(built)) == 2
    assert one_line_error(capsys) == (
        f"fglab: error: {index}: Permission denied {PERMISSION_HINT}"
    )
    assert_intact(index, before)


@needs_permissions
def test_index_in_a_read_only_folder(built, capsys):
    index = built[2]
    before = checksums(index)
    read_only(index.parent)
    read_only(index)
    try:
        assert main(index_argv(built)) == 2
        assert one_line_error(capsys) == (
            f"fglab: error: {index}: Permission denied {PERMISSION_HINT}"
        )
        assert main(["index-add", str(index), "--dataset", f"manifest:{more_items(built)}"]) == 2
        line = one_line_error(capsys)
        assert str(index) in line and line.endswith(PERMISSION_HINT)
    finally:
        index.chmod(0o755)
        index.parent.chmod(0o755)
    assert_intact(index, before)


# -- the faiss writer ------------------------------------------------------------------------


class _FailingClose:
    """A file whose writes succeed and whose final flush fails, as on a disk that fills up."""

    def __init__(self, path, mode):
        self.handle = open(path, mode)  # noqa: SIM115 (closed in __exit__)

    def write(self, data) -> int:
        return self.handle.write(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.handle.close()
        raise OSError(errno.ENOSPC, FULL)


def test_write_faiss_reports_a_failed_final_flush(tmp_path, monkeypatch):
    """faiss.write_index itself only prints a failed fclose to stderr and returns."""
    index = faiss.IndexFlatIP(4)
    index.add(np.ones((3, 4), np.float32))
    monkeypatch.setattr(vectors_module, "open", _FailingClose, raising=False)
    with pytest.raises(OSError) as caught:
        vectors_module.write_faiss(index, tmp_path / "image.faiss")
    assert caught.value.errno == errno.ENOSPC
    assert caught.value.filename == str(tmp_path / "image.faiss")


@pytest.mark.skipif(not Path("/dev/full").is_char_device(), reason="no /dev/full device")
def test_write_faiss_to_a_full_device():
    index = faiss.IndexFlatIP(4)
    index.add(np.ones((3, 4), np.float32))
    with pytest.raises(OSError, match=FULL):
        vectors_module.write_faiss(index, Path("/dev/full"))


def test_write_faiss_writes_what_faiss_writes(tmp_path):
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(5))
    index.add_with_ids(np.eye(5, dtype=np.float32), np.arange(5, dtype=np.int64) * 7)
    faiss.write_index(index, str(tmp_path / "a.faiss"))
    vectors_module.write_faiss(index, tmp_path / "b.faiss")
    assert (tmp_path / "a.faiss").read_bytes() == (tmp_path / "b.faiss").read_bytes()


# -- fglab train -----------------------------------------------------------------------------


@pytest.fixture()
def fake_image_model(monkeypatch):
    """A stand-in for EfficientNet: a fixed projection of 4x4 pooled pixels to 1280-d."""
    weights = torch.from_numpy(
        np.random.default_rng(0).standard_normal((48, 1280)).astype(np.float32)
    )

    def load(extractor):
        def forward(pixels: torch.Tensor) -> torch.Tensor:
            pooled = torch.nn.functional.adaptive_avg_pool2d(pixels.float(), 4).flatten(1)
            return (pooled / 255.0) @ weights

        return forward

    monkeypatch.setattr(image_module, "load_model", load)


@pytest.fixture()
def small_manifest(tmp_path, monkeypatch, fake_image_model) -> Path:
    monkeypatch.setenv("FGLAB_CACHE", str(tmp_path / "cache"))
    return write_manifest_collection(tmp_path / "photos", per_topic=5)  # 12 training pairs


def train_argv(manifest: Path, run: Path) -> list[str]:
    return ["train", f"manifest:{manifest}", "--method", "random", "--out", str(run),
            "--skip-fit-check"]


def write_bytes_failing_under(monkeypatch, folder: Path, error: OSError) -> None:
    real = Path.write_bytes

    def write_bytes(self: Path, data) -> int:
        if folder in self.parents:
            raise error
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)


def test_train_on_a_full_disk_is_one_line(small_manifest, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    write_bytes_failing_under(monkeypatch, run, OSError(errno.ENOSPC, FULL))
    assert main(train_argv(small_manifest, run)) == 2
    line = one_line_error(capsys)
    assert line == f"fglab: error: {run}/method/arrays.safetensors: {FULL} {FULL_HINT}"
    assert not list(run.rglob(".*.tmp"))  # no temporary file left behind


def test_train_on_a_full_disk_keeps_the_old_run(small_manifest, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    assert main(train_argv(small_manifest, run)) == 0
    before = checksums(run)
    write_bytes_failing_under(monkeypatch, run, OSError(errno.ENOSPC, FULL))
    assert main([*train_argv(small_manifest, run), "--seed", "1"]) == 2
    capsys.readouterr()
    RetrievalPipeline.load(run)
    assert checksums(run) == before


def test_train_without_permission_simulated(small_manifest, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    real = tempfile.mkstemp

    def mkstemp(*args, dir=None, prefix="", suffix="", **kwargs):
        if dir is not None and (Path(dir) == run or run in Path(dir).parents):
            raise PermissionError(errno.EACCES, "Permission denied", f"{dir}/{prefix}q{suffix}")
        return real(*args, dir=dir, prefix=prefix, suffix=suffix, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    assert main(train_argv(small_manifest, run)) == 2
    line = one_line_error(capsys)
    assert line.startswith(f"fglab: error: {run}/") and ".tmp" not in line
    assert line.endswith(f": Permission denied {PERMISSION_HINT}")


@needs_permissions
def test_train_into_a_read_only_folder(small_manifest, tmp_path, capsys):
    parent = tmp_path / "locked"
    parent.mkdir()
    read_only(parent)
    try:
        assert main(train_argv(small_manifest, parent / "run")) == 2
        line = one_line_error(capsys)
    finally:
        parent.chmod(0o755)
    assert str(parent / "run") in line and line.endswith(PERMISSION_HINT)


def test_train_with_a_folder_where_the_run_listing_goes(small_manifest, tmp_path, capsys):
    run = tmp_path / "run"
    (run / "pipeline.json").mkdir(parents=True)
    assert main(train_argv(small_manifest, run)) == 2
    assert one_line_error(capsys) == f"fglab: error: {run}/pipeline.json: Is a directory"


def test_train_with_a_file_as_its_feature_cache_warns_once_and_trains(
    small_manifest, tmp_path, capsys, monkeypatch, caplog
):
    cache = tmp_path / "cache-file"
    cache.write_text("not a folder")
    monkeypatch.setenv("FGLAB_CACHE", str(cache))
    run = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="fglab.features.store"):
        assert main(train_argv(small_manifest, run)) == 0
    warnings = [r.getMessage() for r in caplog.records if r.name == "fglab.features.store"]
    assert len(warnings) == 1, warnings
    assert str(cache / "features") in warnings[0] and "Not a directory" in warnings[0]
    assert RetrievalPipeline.load(run).method_name == "random"
    assert cache.read_text() == "not a folder"


# -- fglab features --------------------------------------------------------------------------


def features_argv(manifest: Path, cache: Path) -> list[str]:
    return ["features", f"manifest:{manifest}", "--view", IMAGE_VIEW, "--cache-dir", str(cache)]


def stored(cache: Path, manifest_folder: Path) -> int:
    """How many of the collection's images the store under ``cache`` holds."""
    from fglab.features.featurize import IMAGE_VIEWS

    store = FeatureStore(IMAGE_VIEWS[IMAGE_VIEW].cache_name, cache)
    keys = [file_digest(p) for p in sorted((manifest_folder / "images").iterdir())]
    return sum(v is not None for v in store.get_many(keys))


@pytest.fixture()
def first_features(tmp_path, fake_image_model, capsys) -> tuple[Path, Path]:
    """(cache, manifest of more images): the store already holds 3 images' features."""
    cache = tmp_path / "cache"
    first = write_manifest_collection(tmp_path / "first", per_topic=1)
    assert main(features_argv(first, cache)) == 0
    assert stored(cache, first.parent) == 3
    capsys.readouterr()
    return cache, write_manifest_collection(tmp_path / "more", per_topic=2)


def store_folder_of(cache: Path) -> Path:
    (folder,) = [p for p in cache.iterdir() if p.is_dir()]
    return folder


def test_features_on_a_full_disk_is_one_line_and_the_store_stays(first_features, tmp_path,
                                                                 capsys, monkeypatch):
    cache, more = first_features
    before = checksums(cache)
    monkeypatch.setattr(store_module, "atomic_write_bytes", disk_full)
    assert main(features_argv(more, cache)) == 2
    folder = store_folder_of(cache)
    assert one_line_error(capsys) == f"fglab: error: {folder}: {FULL} {FULL_HINT}"
    assert checksums(cache) == before
    assert stored(cache, more.parent) == 3  # the images it shares with the first collection
    monkeypatch.undo()  # space freed: a rerun stores them
    monkeypatch.setattr(image_module, "load_model", lambda extractor: (
        lambda pixels: torch.ones((len(pixels), 1280))))
    assert main(features_argv(more, cache)) == 0
    assert stored(cache, more.parent) == 6


def test_features_without_permission_simulated(first_features, capsys, monkeypatch):
    cache, more = first_features
    before = checksums(cache)
    real = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and cache in Path(dir).parents:
            raise PermissionError(errno.EACCES, "Permission denied", f"{dir}/.x.tmp")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    assert main(features_argv(more, cache)) == 2
    folder = store_folder_of(cache)
    assert one_line_error(capsys) == (
        f"fglab: error: {folder}: Permission denied {PERMISSION_HINT}"
    )
    assert checksums(cache) == before


@needs_permissions
def test_features_into_a_read_only_store(first_features, capsys):
    cache, more = first_features
    before = checksums(cache)
    folders = [p for p in cache.rglob("*") if p.is_dir()]
    for folder in folders:
        read_only(folder)
    try:
        assert main(features_argv(more, cache)) == 2
        line = one_line_error(capsys)
    finally:
        for folder in folders:
            folder.chmod(0o755)
    assert str(store_folder_of(cache)) in line and line.endswith(PERMISSION_HINT)
    assert checksums(cache) == before


def test_features_with_a_file_as_the_store(tmp_path, fake_image_model, capsys):
    cache = tmp_path / "cache-file"
    cache.write_text("not a folder")
    manifest = write_manifest_collection(tmp_path / "photos", per_topic=1)
    assert main(features_argv(manifest, cache)) == 2
    line = one_line_error(capsys)
    assert line.startswith(f"fglab: error: {cache}/") and line.endswith(": Not a directory")
    assert cache.read_text() == "not a folder"
