"""A feature store that cannot be written is a speed-up lost, not a failed job: one warning
naming the folder and the reason, no further writes in the run, the features still returned;
inside ``writes_required`` (``fglab features``) an OSError naming the folder instead."""

from __future__ import annotations

import errno
import hashlib
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

import fglab.features.image as image_module
import fglab.features.store as store_module
from fglab.features.cache import migrate_legacy_files
from fglab.features.image import ImageExtractor, extract
from fglab.features.store import FeatureStore
from tests.data.fixtures import write_image

TINY = ImageExtractor(image_size=16, precision="float32", dim=3)
FULL = "No space left on device"


def keys_of(n: int, salt: str = "") -> list[str]:
    return [hashlib.sha256(f"{salt}{i}".encode()).hexdigest() for i in range(n)]


@pytest.fixture
def mean_colour_model(monkeypatch) -> dict[str, int]:
    """The image model replaced by the mean colour of each image; counts the images run."""
    calls = {"images": 0}

    def load(extractor):
        def forward(pixels: torch.Tensor) -> torch.Tensor:
            calls["images"] += len(pixels)
            return pixels.float().mean(dim=(2, 3))

        return forward

    monkeypatch.setattr(image_module, "load_model", load)
    return calls


@pytest.fixture
def failing_writes(monkeypatch) -> list[Path]:
    """Every shard write fails as on a full disk; the paths tried are listed."""
    tried: list[Path] = []

    def full_disk(path: Path, data: bytes) -> None:
        tried.append(path)
        raise OSError(errno.ENOSPC, FULL)

    monkeypatch.setattr(store_module, "atomic_write_bytes", full_disk)
    return tried


def store_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == store_module.__name__ and r.levelno == logging.WARNING]


def photos(folder: Path, n: int) -> list[Path]:
    paths = [folder / f"photo-{i}.png" for i in range(n)]
    for path in paths:
        write_image(path, fmt="PNG", size=(16, 16))
    return paths


def test_a_full_disk_warns_once_and_stops_writing(tmp_path, failing_writes, caplog):
    store = FeatureStore("model@1", tmp_path / "store", shard_rows=2)
    with caplog.at_level(logging.WARNING):
        for start in range(0, 10, 2):  # five shards' worth
            store.put_many(keys_of(2, str(start)), np.ones((2, 4), np.float32))
        store.flush()
    (warning,) = store_warnings(caplog)
    assert str(tmp_path / "store" / "model@1") in warning and FULL in warning
    assert len(failing_writes) == 1  # no write tried after the first failure
    assert isinstance(store.write_error, OSError) and not store._pending  # nothing piles up
    assert store.get_many(keys_of(2, "0")) == [None, None]


def test_extraction_goes_on_with_the_computed_features(tmp_path, failing_writes,
                                                       mean_colour_model, caplog):
    paths = photos(tmp_path / "images", 5)
    store = FeatureStore(TINY.cache_name, tmp_path / "store", shard_rows=2)
    with caplog.at_level(logging.WARNING):
        features, failures = extract(paths, TINY, store, batch_size=2, num_workers=0)
        again, _ = extract(paths, TINY, store, batch_size=2, num_workers=0)
    assert not failures and features.any(axis=1).all() and np.array_equal(features, again)
    assert mean_colour_model["images"] == 10  # computed twice: nothing was stored
    assert len(store_warnings(caplog)) == 1 and len(failing_writes) == 1


def test_a_file_where_the_store_folder_belongs_is_one_warning(tmp_path, mean_colour_model,
                                                              caplog):
    blocker = tmp_path / "cache"
    blocker.write_text("not a folder")
    paths = photos(tmp_path / "images", 3)
    with caplog.at_level(logging.WARNING):
        store = FeatureStore(TINY.cache_name, blocker)
        features, failures = extract(paths, TINY, store)
    (warning,) = store_warnings(caplog)
    assert str(store.folder) in warning and "Not a directory" in warning
    assert not failures and features.any(axis=1).all()
    assert blocker.read_text() == "not a folder"


def test_a_read_only_store_simulated_is_one_warning(tmp_path, monkeypatch, caplog):
    def denied(path: Path, data: bytes) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(store_module, "atomic_write_bytes", denied)
    store = FeatureStore("model@1", tmp_path / "store", shard_rows=1)
    with caplog.at_level(logging.WARNING):
        store.put_many(keys_of(3), np.ones((3, 2), np.float32))
    (warning,) = store_warnings(caplog)
    assert "Permission denied" in warning and str(store.folder) in warning


def test_writes_required_raise_naming_the_folder(tmp_path, failing_writes, caplog):
    store = FeatureStore("model@1", tmp_path / "store")
    store.put_many(keys_of(2), np.ones((2, 2), np.float32))
    with store_module.writes_required(), pytest.raises(OSError) as caught:
        store.flush()
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(store.folder)
    assert store.write_error is None and not store_warnings(caplog)  # not switched off
    assert not store_module._writes_required  # only inside the block


def test_legacy_files_stay_when_their_shard_cannot_be_written(tmp_path, failing_writes, caplog):
    folder = tmp_path / "store" / "model@1"
    key = keys_of(1)[0]
    (folder / key[:2]).mkdir(parents=True)
    np.save(folder / key[:2] / f"{key}.npy", np.ones(3, np.float32))
    with caplog.at_level(logging.WARNING):
        store = FeatureStore("model@1", tmp_path / "store")
    assert migrate_legacy_files(store) == 0  # writes are off: not tried again
    assert (folder / key[:2] / f"{key}.npy").is_file() and len(failing_writes) == 1
    assert len(store_warnings(caplog)) == 1
