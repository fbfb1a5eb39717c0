"""A pretrained model folder is checked before anything loads: each bad folder is one line
naming the path, what it lacks and the layout expected."""

from __future__ import annotations

import shutil

import pytest

from fglab.features import model_folder as mf


def _copy(folder, tmp_path, name="model"):
    return shutil.copytree(folder, tmp_path / name)


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_a_good_folder_gives_its_architecture_and_checksum(clip_folder):
    folder = mf.check_folder(clip_folder)
    assert folder.model_type == "clip" and len(folder.sha256) == 64
    assert folder.record() == {"path": str(clip_folder.resolve()), "sha256": folder.sha256,
                               "model_type": "clip"}


def test_a_missing_folder_is_one_line(tmp_path):
    with pytest.raises(ValueError) as error:
        mf.check_folder(tmp_path / "nowhere")
    message = _one_line(error)
    assert str(tmp_path / "nowhere") in message and "no such folder" in message
    assert "config.json, model.safetensors" in message  # the layout expected


def test_a_file_instead_of_a_folder_is_one_line(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match="not a folder"):
        mf.check_folder(tmp_path / "model.bin")


def test_a_folder_without_weights_names_them(clip_folder, tmp_path):
    folder = _copy(clip_folder, tmp_path)
    (folder / "model.safetensors").unlink()
    with pytest.raises(ValueError) as error:
        mf.check_folder(folder)
    assert f"{folder}: missing model.safetensors;" in _one_line(error)


def test_a_folder_without_tokenizer_or_preprocessor_names_what_is_missing(
    chinese_clip_folder, tmp_path
):
    folder = _copy(chinese_clip_folder, tmp_path)
    for name in ("vocab.txt", "preprocessor_config.json", "tokenizer.json"):
        (folder / name).unlink(missing_ok=True)
    with pytest.raises(ValueError) as error:
        mf.check_folder(folder)
    assert "missing preprocessor_config.json, vocab.txt (or tokenizer.json)" in _one_line(error)


def test_a_folder_without_config_or_of_another_model_is_one_line(clip_folder, tmp_path):
    folder = _copy(clip_folder, tmp_path)
    (folder / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ValueError) as error:
        mf.check_folder(folder)
    assert "model_type 'bert' is not one of clip, chinese_clip, siglip" in _one_line(error)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json: unreadable"):
        mf.check_folder(folder)
    (folder / "config.json").unlink()
    with pytest.raises(ValueError, match="no config.json"):
        mf.check_folder(folder)


def test_changed_weights_are_refused_against_the_recorded_checksum(clip_folder, tmp_path):
    folder = _copy(clip_folder, tmp_path)
    recorded = mf.check_folder(folder).record()
    with (folder / "model.safetensors").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ValueError) as error:
        mf.use_recorded_folder(recorded)
    assert "changed since the run was made" in _one_line(error)


def test_views_that_read_the_folder():
    assert mf.uses_model_folder("image:clip")
    assert mf.uses_model_folder("text:tfidf", "text:tfidf+clip")
    assert not mf.uses_model_folder("image:efficientnet-lite0", "text:tfidf+e5", None)
