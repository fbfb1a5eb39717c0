"""Bring your own model: a model folder (a tiny random-weight CLIP built here) through
manifest -> features -> train (pretrained, fglab) -> index -> search -> serve, with every
network connection but loopback refused; a bad folder is one line and leaves nothing."""

from __future__ import annotations

import json
import os
import shutil
import socket

import pytest

from fglab.cli import main
from tests.data.fixtures import write_manifest_collection
from tests.training.conftest import TINY_CONFIG


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FGLAB_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def no_network(monkeypatch):
    """Every socket connection to anything but loopback (or a local socket file) fails, and
    the hub's offline switches start unset: fglab must set them itself."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    attempts: list[object] = []
    real_connect = socket.socket.connect

    def guarded(sock, address):
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and host not in ("127.0.0.1", "::1", "localhost"):
            attempts.append(address)
            raise OSError(f"network refused in this test: {address}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    yield attempts
    assert not attempts, f"something tried the network: {attempts}"
    assert os.environ.get("HF_HUB_OFFLINE") == "1" == os.environ.get("TRANSFORMERS_OFFLINE")


@pytest.fixture
def manifest(tmp_path):
    return write_manifest_collection(tmp_path / "photos", per_topic=10, labeled=False,
                                     split=False, fmt="jsonl")


@pytest.mark.parametrize("architecture", ["clip_folder", "chinese_clip_folder"])
def test_a_model_folder_runs_end_to_end_offline(
    architecture, request, manifest, tmp_path, capsys, monkeypatch, no_network
):
    clip_folder = request.getfixturevalue(architecture)
    source, model = f"manifest:{manifest}", str(clip_folder)
    for view in ("image:clip", "text:clip"):
        assert main(["features", source, "--view", view, "--model-path", model]) == 0
    printed = capsys.readouterr().out
    assert "images/s" in printed and "texts/s" in printed and "0 failed" in printed

    zero_shot, tuned = tmp_path / "zero-shot", tmp_path / "fglab"
    assert main(["train", source, "--method", "pretrained", "--model-path", model,
                 "--out", str(zero_shot)]) == 0
    saved = json.loads((zero_shot / "pipeline.json").read_text())
    assert (saved["image_view"], saved["text_view"]) == ("image:clip", "text:clip")
    assert saved["model_folder"]["path"] == str(clip_folder.resolve())
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY_CONFIG))
    assert main(["train", source, "--method", "fglab", "--model-path", model, "--config",
                 str(config), "--out", str(tuned)]) == 0
    printed = capsys.readouterr().out
    assert "chose" in printed and "zero-shot alone" in printed  # chosen on validation
    method_config = json.loads((tuned / "method" / "config.json").read_text())
    assert method_config["labels"]["teacher"] == "pretrained"
    assert method_config["model"]["pretrained_weight"] is not None
    assert json.loads((tuned / "pipeline.json").read_text())["text_view"] == "text:tfidf+clip"

    for run in (zero_shot, tuned):
        _index_search_serve(run, source, manifest, tmp_path / f"{run.name}-index", capsys,
                            monkeypatch)


def _index_search_serve(run, source, manifest, index, capsys, monkeypatch):
    """``fglab index``, ``search`` by text and by image, and ``serve``: no model path given,
    the run's record is enough."""
    import uvicorn
    from fastapi.testclient import TestClient

    assert main(["index", str(run), "--dataset", source, "--out", str(index)]) == 0
    capsys.readouterr()
    assert main(["search", str(index), "--text", "足球 football", "--json", "-k", "3"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert len(hits) == 3 and all(hit["modality"] == "image" for hit in hits)
    image = next((manifest.parent / "images").iterdir())
    assert main(["search", str(index), "--image", str(image), "--json", "-k", "2"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
    served = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda server: served.append(server.config))
    assert main(["serve", str(index)]) == 0
    with TestClient(served[-1].app, base_url="http://127.0.0.1") as client:
        answer = client.post("/search/text", json={"query": "forest birds", "k": 2})
        assert answer.status_code == 200 and len(answer.json()["hits"]) == 2


def test_reproduce_puts_the_zero_shot_row_beside_the_others(clip_folder, manifest, tmp_path,
                                                            no_network):
    out = tmp_path / "results"
    assert main(["reproduce", f"manifest:{manifest}", "--model-path", str(clip_folder),
                 "--methods", "pretrained,cca", "--seeds", "1", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert list(results["methods"]) == ["pretrained", "cca"]
    assert results["methods"]["pretrained"]["text_view"] == "text:clip"
    assert results["model"]["sha256"] and "pretrained" in (out / "results.md").read_text()


@pytest.mark.parametrize("problem", ["missing", "no-weights", "truncated", "mismatch"])
def test_a_bad_folder_is_one_line_and_leaves_nothing(
    problem, clip_folder, manifest, tmp_path, capsys
):
    folder = tmp_path / "model"
    if problem != "missing":
        shutil.copytree(clip_folder, folder)
    weights = folder / "model.safetensors"
    if problem == "no-weights":
        weights.unlink()
    elif problem == "truncated":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif problem == "mismatch":
        config = json.loads((folder / "config.json").read_text())
        config["projection_dim"] = 8
        (folder / "config.json").write_text(json.dumps(config))
    run = tmp_path / "run"
    capsys.readouterr()
    assert main(["train", f"manifest:{manifest}", "--method", "pretrained", "--model-path",
                 str(folder), "--out", str(run)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and str(folder) in error
    assert not run.exists()


def test_a_run_whose_weights_changed_is_refused(clip_folder, manifest, tmp_path, capsys):
    folder = shutil.copytree(clip_folder, tmp_path / "model")
    source, run = f"manifest:{manifest}", tmp_path / "run"
    assert main(["train", source, "--method", "pretrained", "--model-path", str(folder),
                 "--out", str(run)]) == 0
    with (folder / "model.safetensors").open("ab") as handle:
        handle.write(b"\0")
    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "changed since the run was made" in error


def test_a_clip_view_without_a_model_path_says_how(manifest, capsys, monkeypatch):
    from fglab.features import model_folder

    monkeypatch.setattr(model_folder, "_current", None)
    assert main(["features", f"manifest:{manifest}", "--view", "image:clip"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--model-path DIR" in error
