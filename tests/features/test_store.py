"""The feature store: shards, checksums, atomic writes, resume, bad vectors, failing disks and
the per-file layout of earlier versions."""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import fglab.features.image as image_module
import fglab.features.store as store_module
from fglab.features.image import ImageExtractor, extract
from fglab.features.store import FeatureStore, open_store
from fglab.io import atomic_write
from tests.data.fixtures import write_image

TINY = ImageExtractor(image_size=16, precision="float32", dim=3)  # with the fake model below


def keys_of(n: int, salt: str = "") -> list[str]:
    return [hashlib.sha256(f"{salt}{i}".encode()).hexdigest() for i in range(n)]


def shard_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.arrow"))


class MeanColour(torch.nn.Module):
    """A stand-in network: (n, 3, s, s) uint8 -> the mean colour, (n, 3)."""

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return pixels.float().mean(dim=(2, 3))


@pytest.fixture
def fake_model(monkeypatch):
    """Counts the images run through the stand-in model."""
    calls = {"images": 0}

    def load(extractor):
        def forward(pixels):
            calls["images"] += len(pixels)
            return MeanColour()(pixels)

        return forward

    monkeypatch.setattr(image_module, "load_model", load)
    return calls


def write_photos(folder: Path, n: int) -> list[Path]:
    paths = [folder / f"photo-{i}.png" for i in range(n)]
    for path in paths:
        write_image(path, fmt="PNG", size=(16, 16))
    return paths


def test_round_trip_over_several_shards(tmp_path):
    store = FeatureStore("model@1", tmp_path, shard_rows=4)
    keys, vectors = keys_of(10), np.random.default_rng(0).normal(size=(10, 6)).astype(np.float32)
    store.put_many(keys, vectors)  # two full shards written, two vectors buffered
    assert len(shard_files(tmp_path)) == 2 and len(store) == 10
    np.testing.assert_array_equal(store.get(keys[9]), vectors[9])  # buffered: readable too
    store.flush()
    again = FeatureStore("model@1", tmp_path)
    found = again.get_many([*keys, None, keys_of(1, "other")[0]], dim=6)
    np.testing.assert_array_equal(np.vstack(found[:10]), vectors)
    assert found[10:] == [None, None] and len(again) == 10 and keys[3] in again
    assert not list(tmp_path.rglob("*.tmp")) and not list(tmp_path.rglob("*.npy"))


def test_open_store_is_shared_and_sees_other_writers(tmp_path):
    store = open_store("model@1", tmp_path)
    assert open_store("model@1", tmp_path) is store
    writer = FeatureStore("model@1", tmp_path)  # another process, as far as files go
    writer.put_many(keys_of(3), np.ones((3, 2), np.float32))
    writer.flush()
    assert all(v is not None for v in store.get_many(keys_of(3), dim=2))


def test_a_write_killed_halfway_leaves_the_old_state(tmp_path, monkeypatch):
    store = FeatureStore("model@1", tmp_path)
    store.put_many(keys_of(3), np.ones((3, 2), np.float32))
    store.flush()
    before = shard_files(tmp_path)

    def killed(path, data):
        def write(tmp):
            tmp.write_bytes(data[: len(data) // 2])
            raise KeyboardInterrupt  # the process stops in the middle of the write

        atomic_write(path, write)

    monkeypatch.setattr(store_module, "atomic_write_bytes", killed)
    store.put_many(keys_of(3, "new"), np.zeros((3, 2), np.float32))
    with pytest.raises(KeyboardInterrupt):
        store.flush()
    assert shard_files(tmp_path) == before and not list(tmp_path.rglob("*.tmp"))
    reopened = FeatureStore("model@1", tmp_path)
    assert all(v is not None for v in reopened.get_many(keys_of(3), dim=2))
    assert reopened.get_many(keys_of(3, "new")) == [None] * 3


def test_a_failing_write_is_a_warning_and_the_vectors_are_returned(tmp_path, monkeypatch,
                                                                  fake_model, caplog):
    paths = write_photos(tmp_path / "images", 3)

    def full_disk(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store_module, "atomic_write_bytes", full_disk)
    store = FeatureStore(TINY.cache_name, tmp_path / "store")
    with caplog.at_level(logging.WARNING):
        features, failures = extract(paths, TINY, store)
    assert not failures and features.any(axis=1).all() and fake_model["images"] == 3
    warnings = [r.getMessage() for r in caplog.records if "could not write" in r.getMessage()]
    assert len(warnings) == 1 and "No space left" in warnings[0]
    assert not shard_files(tmp_path)


def test_a_corrupt_shard_is_reported_once_and_recomputed(tmp_path, fake_model, caplog):
    paths = write_photos(tmp_path / "images", 4)
    first, _ = extract(paths, TINY, FeatureStore(TINY.cache_name, tmp_path / "store"))
    (shard,) = shard_files(tmp_path / "store")
    data = bytearray(shard.read_bytes())
    at = bytes(data).find(first[2].astype(np.float32).tobytes())
    assert at > 0
    data[at : at + 4] = b"\xff\xff\xff\x7f"  # one float of a vector flipped; Arrow still reads it
    shard.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        again, failures = extract(paths, TINY, FeatureStore(TINY.cache_name, tmp_path / "store"))
    named = [r for r in caplog.records if shard.name in r.getMessage()]
    assert len(named) == 1 and "checksum" in named[0].getMessage()
    assert fake_model["images"] == 8 and not failures  # all four recomputed
    np.testing.assert_array_equal(again, first)
    assert shard.with_name(shard.name + ".corrupt").exists()
    assert len(shard_files(tmp_path / "store")) == 1  # the recomputed shard


def test_an_unparsable_shard_is_reported_and_treated_as_missing(tmp_path, caplog):
    store = FeatureStore("model@1", tmp_path)
    store.put_many(keys_of(2), np.ones((2, 2), np.float32))
    store.flush()
    (shard,) = shard_files(tmp_path)
    shard.write_bytes(shard.read_bytes()[:50])  # cut off
    with caplog.at_level(logging.WARNING):
        reopened = FeatureStore("model@1", tmp_path)
    assert reopened.get_many(keys_of(2)) == [None, None]
    assert sum(shard.name in r.getMessage() for r in caplog.records) == 1


def test_a_bad_vector_is_recomputed_with_a_warning_naming_the_item(tmp_path, fake_model, caplog):
    from fglab.features.cache import file_digest

    paths = write_photos(tmp_path / "images", 3)
    keys = [file_digest(p) for p in paths]
    store = FeatureStore(TINY.cache_name, tmp_path / "store")
    stored = np.full((3, 3), 7.0, np.float32)
    stored[1, 0] = np.nan
    store.write_shard(keys, stored)  # as a faulty writer would have left it
    with caplog.at_level(logging.WARNING):
        features, _ = extract(paths, TINY, FeatureStore(TINY.cache_name, tmp_path / "store"))
    messages = "\n".join(r.getMessage() for r in caplog.records)
    assert f"item {keys[1]}" in messages and "non-finite" in messages
    assert fake_model["images"] == 1  # only the NaN one
    assert (features[0] == 7).all() and np.isfinite(features[1]).all()
    with caplog.at_level(logging.WARNING):
        assert FeatureStore("m", tmp_path / "other").get(keys[0]) is None
        wrong = FeatureStore(TINY.cache_name, tmp_path / "store").get_many(keys, dim=4)
    assert wrong[0] is None and "shape (3,), expected (4,)" in caplog.text


def test_put_refuses_non_finite_vectors(tmp_path, caplog):
    store = FeatureStore("model@1", tmp_path)
    with caplog.at_level(logging.WARNING):
        store.put(keys_of(1)[0], np.array([1.0, np.inf], np.float32))
    assert store.get(keys_of(1)[0]) is None and keys_of(1)[0] in caplog.text


def test_extraction_resumes_after_an_error_without_redoing_stored_work(tmp_path, monkeypatch):
    paths = write_photos(tmp_path / "images", 6)
    store = FeatureStore(TINY.cache_name, tmp_path / "store", shard_rows=2)
    seen = {"images": 0}

    def failing_load(extractor):
        def forward(pixels):
            if seen["images"] >= 4:
                raise RuntimeError("out of memory")
            seen["images"] += len(pixels)
            return MeanColour()(pixels)

        return forward

    monkeypatch.setattr(image_module, "load_model", failing_load)
    with pytest.raises(RuntimeError):
        extract(paths, TINY, store, batch_size=2, num_workers=0)
    assert len(shard_files(tmp_path / "store")) == 2
    seen["images"] = -100  # room for the rest
    extract(paths, TINY, FeatureStore(TINY.cache_name, tmp_path / "store"), batch_size=2)
    assert seen["images"] == -98  # only the last two images were run


KILLED_RUN = """
import sys, time
from pathlib import Path
import torch
import fglab.features.image as image_module
from fglab.features.image import ImageExtractor, extract
from fglab.features.store import FeatureStore

def load(extractor):
    def forward(pixels):
        time.sleep(0.3)
        return pixels.float().mean(dim=(2, 3))
    return forward

image_module.load_model = load
paths = sorted(Path(sys.argv[1]).glob("*.png"))
store = FeatureStore(ImageExtractor(image_size=16, precision="float32", dim=3).cache_name,
                     Path(sys.argv[2]), shard_rows=2)
extract(paths, ImageExtractor(image_size=16, precision="float32", dim=3), store, batch_size=1,
        num_workers=0)
"""


def test_a_run_killed_with_sigkill_resumes_from_its_finished_shards(tmp_path, fake_model):
    paths = write_photos(tmp_path / "images", 30)
    store_dir = tmp_path / "store"
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(KILLED_RUN), str(tmp_path / "images"),
         str(store_dir)], cwd=Path(__file__).parents[2],
    )
    try:
        deadline = time.monotonic() + 120
        while len(shard_files(store_dir)) < 2 and time.monotonic() < deadline:
            assert process.poll() is None, "the run ended before it was killed"
            time.sleep(0.05)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    stored = len(FeatureStore(TINY.cache_name, store_dir))
    assert 4 <= stored < 30
    features, _ = extract(paths, TINY, FeatureStore(TINY.cache_name, store_dir))
    assert fake_model["images"] == 30 - stored  # finished shards are not redone
    reference, _ = extract(paths, TINY)
    np.testing.assert_allclose(features, reference, rtol=1e-6)


def test_per_file_entries_of_earlier_versions_are_migrated_once(tmp_path, caplog):
    folder = tmp_path / "model_1"
    keys = keys_of(5)
    for i, key in enumerate(keys):
        path = folder / key[:2] / f"{key}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, np.full(4, i, np.float32))
    broken = folder / "ff" / f"{'f' * 64}.npy"
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_bytes(b"not numpy")
    with caplog.at_level(logging.WARNING):
        store = FeatureStore("model/1", tmp_path)  # "/" is not safe in a folder name: "_"
    assert store.folder == folder
    found = store.get_many(keys, dim=4)
    assert [float(v[0]) for v in found] == [0, 1, 2, 3, 4]
    assert not list(folder.rglob("*.npy")) and len(shard_files(folder)) == 1
    assert "1 unusable per-file entries" in caplog.text
    assert [d.name for d in folder.iterdir()] == ["shards"]  # the old folders are gone


def test_lookup_over_many_small_shards_matches_a_dict(tmp_path):
    rng = np.random.default_rng(1)
    reference: dict[str, np.ndarray] = {}
    store = FeatureStore("model@1", tmp_path)
    for shard in range(40):  # shards of 1 to 30 vectors, each merged into the lookup
        keys = keys_of(int(rng.integers(1, 30)), f"shard{shard}-")
        vectors = rng.normal(size=(len(keys), 3)).astype(np.float32)
        store.write_shard(keys, vectors)
        reference.update(zip(keys, vectors, strict=True))
    asked = list(rng.permutation(list(reference)))[:200] + keys_of(5, "absent")
    found = FeatureStore("model@1", tmp_path).get_many(asked, dim=3)
    for key, vector in zip(asked, found, strict=True):
        if key in reference:
            np.testing.assert_array_equal(vector, reference[key])
        else:
            assert vector is None
    assert len(store) == len(reference)
    assert store.missing(asked, dim=3) == keys_of(5, "absent")


def test_keys_sharing_their_first_bytes_are_told_apart(tmp_path):
    keys = ["00" * 8 + k[16:] for k in keys_of(6)]  # one 8-byte prefix for all
    store = FeatureStore("model@1", tmp_path)
    store.write_shard(keys[:3], np.arange(6, dtype=np.float32).reshape(3, 2))
    store.write_shard(keys[3:5], np.arange(6, 10, dtype=np.float32).reshape(2, 2))
    found = FeatureStore("model@1", tmp_path).get_many(keys, dim=2)
    assert [None if v is None else float(v[0]) for v in found] == [0, 2, 4, 6, 8, None]
