"""Random-weight model folders have the layout of a user's folder and load through it."""

from __future__ import annotations

from fglab.features.model_folder import check_folder
from fglab.features.random_model import build_clip_folder


def test_a_random_folder_is_a_complete_model_folder(clip_folder, chinese_clip_folder,
                                                    siglip_folder):
    assert check_folder(clip_folder).model_type == "clip"
    assert check_folder(chinese_clip_folder).model_type == "chinese_clip"
    assert check_folder(siglip_folder).model_type == "siglip"
    for name in ("config.json", "model.safetensors", "preprocessor_config.json"):
        assert (clip_folder / name).is_file()


def test_the_same_seed_gives_the_same_weights(tmp_path):
    first = check_folder(build_clip_folder(tmp_path / "a"))
    again = check_folder(build_clip_folder(tmp_path / "b"))
    assert first.sha256 == again.sha256
