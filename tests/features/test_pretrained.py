"""The views image:clip and text:clip from a model folder (tiny random-weight CLIP and
Chinese-CLIP built by the tests): shapes, unit length, determinism, the feature store, and a
one-line error for weights that do not fit their config or a truncated weights file."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from fglab.features import pretrained
from fglab.features.featurize import featurize, view_store
from fglab.features.image_views import extract_image_features, image_features_of_bytes
from fglab.features.model_folder import check_folder, use_model_folder
from fglab.features.random_model import EMBED_DIM
from fglab.features.sentence import embed_texts
from fglab.features.store import FeatureStore
from tests.features.images_fixture import write_images


@pytest.fixture
def images(tmp_path):
    return write_images(tmp_path / "images")


def test_both_towers_give_unit_vectors_of_the_joint_space(clip_folder, images, tmp_path):
    use_model_folder(clip_folder)
    paths = [images["jpeg"], images["gray"], images["corrupt"]]
    vectors, failures = extract_image_features(paths, "image:clip", cache_dir=tmp_path / "s")
    assert vectors.shape == (3, EMBED_DIM) and list(failures) == [2]  # the corrupt file
    assert np.allclose(np.linalg.norm(vectors[:2], axis=1), 1, atol=1e-5)
    texts = embed_texts(["the ship at sea", "a forest bird"], "text:clip",
                        cache=FeatureStore("t", tmp_path))
    assert texts.shape == (2, EMBED_DIM)
    assert np.allclose(np.linalg.norm(texts, axis=1), 1, atol=1e-5)


def test_vectors_are_deterministic_and_stored(clip_folder, images, tmp_path):
    use_model_folder(clip_folder)
    paths = [images["jpeg"], images["png_as_jpg"]]
    first, _ = extract_image_features(paths, "image:clip", cache_dir=tmp_path / "a")
    again, _ = extract_image_features(paths, "image:clip", cache_dir=tmp_path / "b")
    np.testing.assert_allclose(first, again, atol=1e-6)
    upload = image_features_of_bytes(images["jpeg"].read_bytes(), "image:clip")
    np.testing.assert_allclose(upload, first[0], atol=1e-5)  # an upload as a file
    store, dim = view_store("image:clip", tmp_path / "a")
    assert dim == EMBED_DIM and len(store) == 2
    assert check_folder(clip_folder).key in store.folder.name  # other weights never hit


def test_featurize_fills_the_store_and_resumes(clip_folder, tmp_path):
    use_model_folder(clip_folder)
    texts = ["the sea", "a ship", "the sea"]
    done = featurize("text:clip", texts, tmp_path)
    assert (done.total, done.dim, done.computed) == (3, EMBED_DIM, 2)
    assert featurize("text:clip", texts, tmp_path).computed == 0


def test_chinese_text_reads_through_chinese_clip(chinese_clip_folder, tmp_path):
    use_model_folder(chinese_clip_folder)
    texts = ["海军舰艇编队进行实弹演习", "足球比赛", "城市 rain"]
    vectors = embed_texts(texts, "text:clip", cache=FeatureStore("zh", tmp_path))
    assert vectors.shape == (3, EMBED_DIM) and np.isfinite(vectors).all()
    assert not np.allclose(vectors[0], vectors[1])  # the characters are read, not all [UNK]
    image = tmp_path / "red.png"
    Image.new("RGB", (50, 30), (200, 10, 10)).save(image)
    features, failures = extract_image_features([image], "image:clip", cache_dir=tmp_path)
    assert features.shape == (1, EMBED_DIM) and not failures


def test_image_settings_follow_the_processor(clip_folder, chinese_clip_folder):
    clip = pretrained.image_settings(check_folder(clip_folder))
    assert (clip.side, clip.crop_to, clip.crop, clip.resample) == (40, 32, True, 3)
    chinese = pretrained.image_settings(check_folder(chinese_clip_folder))
    assert (chinese.side, chinese.crop_to, chinese.crop) == (32, 32, False)


def _loaded(folder):
    return pretrained.towers(check_folder(folder))  # changed files: another key, a new load


def test_weights_that_do_not_fit_the_config_are_one_line(clip_folder, tmp_path):
    folder = shutil.copytree(clip_folder, tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())
    config["projection_dim"] = EMBED_DIM * 2
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError) as error:
        _loaded(folder)
    message = str(error.value)
    assert "\n" not in message and f"{folder / 'model.safetensors'}: does not fit" in message


def test_a_truncated_weights_file_is_one_line(clip_folder, tmp_path):
    folder = shutil.copytree(clip_folder, tmp_path / "model")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ValueError) as error:
        _loaded(folder)
    message = str(error.value)
    assert "\n" not in message and f"{weights}: damaged or truncated" in message


def test_a_view_without_a_folder_says_how_to_give_one(monkeypatch):
    from fglab.features import model_folder

    monkeypatch.setattr(model_folder, "_current", None)
    with pytest.raises(ValueError, match="--model-path DIR"):
        view_store("image:clip")


def test_siglip_reads_both_towers(siglip_folder, tmp_path):
    assert (siglip_folder / "spiece.model").is_file()  # as real SigLIP folders: SentencePiece
    assert not (siglip_folder / "tokenizer.json").exists()
    use_model_folder(siglip_folder)
    texts = embed_texts(["the ship", "a forest bird"], "text:clip",
                        cache=FeatureStore("siglip", tmp_path))
    image = tmp_path / "blue.png"
    Image.new("RGB", (40, 40), (10, 10, 200)).save(image)
    features, failures = extract_image_features([image], "image:clip", cache_dir=tmp_path)
    assert texts.shape == (2, 32) and features.shape == (1, 32) and not failures
    assert np.allclose(np.linalg.norm(texts, axis=1), 1, atol=1e-5)
    assert not np.allclose(texts[0], texts[1])  # the two texts' pieces differ
