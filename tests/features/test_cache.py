from __future__ import annotations

import numpy as np
import pytest

import fglab.features.image as image_module
from fglab.features.cache import default_cache_dir, file_digest
from fglab.features.image import ImageExtractor, extract
from fglab.features.store import FeatureStore
from tests.features.images_fixture import write_images

SMALL = ImageExtractor(image_size=64, precision="float32")


@pytest.fixture
def counted_model(monkeypatch):
    """Counts model loads and images run through the model."""
    calls = {"loads": 0, "images": 0}
    real_load = image_module.load_model

    def load(extractor):
        calls["loads"] += 1
        model = real_load(extractor)

        def forward(pixels):
            calls["images"] += len(pixels)
            return model(pixels)

        return forward

    monkeypatch.setattr(image_module, "load_model", load)
    return calls


def test_second_call_reads_the_cache(tmp_path, counted_model):
    images = write_images(tmp_path / "images")
    paths = [images["jpeg"], images["gray"], images["tiny"]]
    cache = FeatureStore(SMALL.cache_name, tmp_path / "cache")
    first, failures = extract(paths, SMALL, cache)
    assert counted_model == {"loads": 1, "images": 2} and list(failures) == [2]
    second, failures_again = extract(paths, SMALL, cache)
    assert counted_model == {"loads": 1, "images": 2}  # nothing recomputed, no model loaded
    np.testing.assert_array_equal(first, second)
    assert failures_again == failures  # failures are not cached: reported every time


def test_same_content_under_two_names_is_computed_once(tmp_path, counted_model):
    images = write_images(tmp_path / "images")
    copy = tmp_path / "copy.jpeg"
    copy.write_bytes(images["jpeg"].read_bytes())
    features, _ = extract([images["jpeg"], copy], SMALL, FeatureStore("x", tmp_path / "c"))
    assert counted_model["images"] == 1
    np.testing.assert_array_equal(features[0], features[1])


def test_store_is_keyed_by_extractor_and_checks_keys(tmp_path):
    store = FeatureStore("model@224", tmp_path)
    other = FeatureStore("model@192", tmp_path)
    key = "ab" * 32
    store.put(key, np.arange(4, dtype=np.float32))
    store.flush()
    np.testing.assert_array_equal(FeatureStore("model@224", tmp_path).get(key), np.arange(4))
    other.refresh()
    assert other.get(key) is None
    assert not list(tmp_path.rglob("*.tmp"))  # written atomically: no leftovers
    with pytest.raises(ValueError, match="SHA-256"):
        store.get("../../etc/passwd")


def test_default_location_and_override(monkeypatch, tmp_path):
    monkeypatch.delenv("FGLAB_CACHE", raising=False)
    assert str(default_cache_dir()).endswith(".cache/fglab/features")
    monkeypatch.setenv("FGLAB_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "features"


def test_key_is_content_hash(tmp_path):
    a, b = tmp_path / "a.jpg", tmp_path / "b.png"
    a.write_bytes(b"same bytes")
    b.write_bytes(b"same bytes")
    assert file_digest(a) == file_digest(b) and len(file_digest(a)) == 64
