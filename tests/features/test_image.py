from __future__ import annotations

import logging

import numpy as np
import pytest

from fglab.data.dataset import Split
from fglab.features.image import (
    ImageExtractor,
    ImageProblem,
    decode_image,
    extract,
    features_of_bytes,
)
from fglab.features.image_views import (
    extract_image_features,
    extract_image_view,
    image_features_of_bytes,
)
from fglab.features.store import FeatureStore
from tests.features.images_fixture import write_images

SMALL = ImageExtractor(image_size=96, precision="float32")  # small inputs keep the test fast
GOOD = ["jpeg", "png_as_jpg", "bmp_same_pixels", "gray", "cmyk", "rgba"]
BAD = {"truncated": "unreadable", "tiny": "too small", "corrupt": "unreadable",
       "missing": "missing"}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="module")
def extracted(images, tmp_path_factory):
    names = GOOD + list(BAD)
    cache = FeatureStore(SMALL.cache_name, tmp_path_factory.mktemp("cache"))
    features, failures = extract([images[n] for n in names], SMALL, cache, batch_size=4)
    return names, features, failures


def test_every_awkward_image_decodes_to_rgb(images):
    for name in GOOD:
        pixels = decode_image(images[name], 32)
        assert pixels.shape == (32, 32, 3) and pixels.dtype == np.uint8, name
    gray = decode_image(images["gray"], 32).astype(int)
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])
    assert decode_image(images["cmyk"], 32).std() > 5  # real content, not a blank conversion


def test_transparent_pixels_become_white(tmp_path):
    from PIL import Image

    path = tmp_path / "clear.png"
    Image.new("RGBA", (20, 20), (0, 0, 0, 0)).save(path)
    assert (decode_image(path, 16) == 255).all()


@pytest.mark.parametrize("name,reason", sorted(BAD.items()))
def test_bad_images_raise_a_named_problem(images, name, reason):
    with pytest.raises(ImageProblem, match=reason):
        decode_image(images[name], 32)


def test_failures_are_reported_by_row_and_get_zero_rows(extracted):
    names, features, failures = extracted
    assert features.shape == (len(names), 1280) and features.dtype == np.float32
    assert {names[row] for row in failures} == set(BAD)
    for row, reason in failures.items():
        assert BAD[names[row]] in reason
        assert not features[row].any()
    for row, name in enumerate(names):
        if name in GOOD:
            assert np.isfinite(features[row]).all() and features[row].std() > 0, name


def test_images_are_read_by_content_not_by_name(extracted):
    names, features, _ = extracted
    png, bmp = features[names.index("png_as_jpg")], features[names.index("bmp_same_pixels")]
    np.testing.assert_allclose(png, bmp, rtol=1e-4, atol=1e-4)  # same pixels, same features
    assert not np.allclose(features[names.index("jpeg")], png, atol=1e-2)


def test_public_view_and_split_logging(images, tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("FGLAB_CACHE", str(tmp_path / "home-cache"))
    paths = [images["jpeg"], None, images["tiny"]]
    features, failures = extract_image_features(paths, "image:efficientnet-lite0")
    assert features.shape == (3, 1280) and sorted(failures) == [1, 2]
    assert features[0].any()
    assert len(list((tmp_path / "home-cache" / "features").rglob("*.arrow"))) == 1  # $FGLAB_CACHE
    split = Split("test", ["t1", "t2", "t3"], ["img-a", "img-b", "img-c"], np.zeros(3, int),
                  ["x"] * 3, ["x"] * 3, paths)
    with caplog.at_level(logging.WARNING):
        view = extract_image_view(split, "image:efficientnet-lite0")
    np.testing.assert_allclose(view, features, atol=1e-6)  # second time: from the cache
    assert "img-b" in caplog.text and "img-c" in caplog.text and "too small" in caplog.text
    with pytest.raises(ValueError, match="unknown image view"):
        extract_image_features(paths, "image:resnet", tmp_path)


def test_an_image_in_memory_gets_the_same_features_as_its_file(images, extracted):
    names, features, _ = extracted
    for name in ("jpeg", "png_as_jpg", "cmyk"):
        data = images[name].read_bytes()
        from_file, _ = extract([images[name]], SMALL)
        np.testing.assert_allclose(features_of_bytes(data, SMALL), from_file[0], atol=1e-5)
        np.testing.assert_allclose(from_file[0], features[names.index(name)], atol=1e-4)
    with pytest.raises(ImageProblem, match="unreadable"):
        features_of_bytes(images["truncated"].read_bytes(), SMALL)
    view = image_features_of_bytes(images["jpeg"].read_bytes(), "image:efficientnet-lite0")
    assert view.shape == (1280,) and view.std() > 0


@pytest.mark.parametrize(
    "mode,value,fmt,gray",
    [
        ("I;16", 40000, "PNG", 156),  # 16-bit PNG: 40000 / 256
        ("I", 40000, "TIFF", 156),  # 32-bit integer TIFF holding 16-bit values
        ("I", 200, "TIFF", 200),  # ... holding 8-bit values: kept
        ("F", 0.5, "TIFF", 127),  # float TIFF in [0, 1]
        ("F", 3e6, "TIFF", 255),  # float TIFF beyond 16 bits: scaled by its maximum
    ],
)
def test_16_bit_and_float_images_decode(tmp_path, mode, value, fmt, gray):
    from PIL import Image

    path = tmp_path / f"deep.{fmt.lower()}"
    Image.new(mode, (64, 64), value).save(path, format=fmt)
    with Image.open(path) as image:
        assert image.mode == mode
    for source in (path, path.read_bytes()):
        pixels = decode_image(source, 32)
        assert pixels.shape == (32, 32, 3) and abs(int(pixels[0, 0, 0]) - gray) <= 1
        assert (pixels == pixels[0, 0, 0]).all()


@pytest.mark.parametrize("view", ["image:efficientnet-lite1", "image:efficientnet-lite2"])
def test_the_larger_networks_load_from_their_packages_and_differ(images, view):
    """Each view's weights come from its installed package (no download) and give features of
    their own, not lite0's under another name."""
    data = images["jpeg"].read_bytes()
    features = image_features_of_bytes(data, view)
    lite0 = image_features_of_bytes(data, "image:efficientnet-lite0")
    assert features.shape == (1280,) and features.std() > 0
    assert not np.allclose(features, lite0, atol=1e-3)


def test_an_unknown_network_is_named():
    from fglab.features.image import weight_file

    with pytest.raises(ValueError, match="no weights for 'efficientnet-lite9'"):
        weight_file("efficientnet-lite9")


def test_a_joined_view_is_its_parts_side_by_side(images, tmp_path, monkeypatch):
    from fglab.features.image_views import image_view_parts, image_view_width

    monkeypatch.setenv("FGLAB_CACHE", str(tmp_path))
    joined = "image:efficientnet-lite0+efficientnet-lite1"
    assert image_view_parts(joined) == ["image:efficientnet-lite0", "image:efficientnet-lite1"]
    assert image_view_width(joined) == 2560
    paths = [images["jpeg"], images["tiny"]]
    features, failures = extract_image_features(paths, joined)
    lite0, _ = extract_image_features(paths, "image:efficientnet-lite0")
    lite1, _ = extract_image_features(paths, "image:efficientnet-lite1")
    np.testing.assert_allclose(features, np.hstack([lite0, lite1]), atol=1e-6)
    assert sorted(failures) == [1] and not features[1].any()
    data = images["jpeg"].read_bytes()
    np.testing.assert_allclose(image_features_of_bytes(data, joined)[:1280],
                               image_features_of_bytes(data, "image:efficientnet-lite0"))
    for bad in ("image:efficientnet-lite0+resnet", "image:efficientnet-lite0+efficientnet-lite0"):
        with pytest.raises(ValueError, match="unknown image view|names a part twice"):
            image_view_parts(bad)
