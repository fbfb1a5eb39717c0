from __future__ import annotations

import json
import logging
import math
import shutil

import numpy as np
import pytest

from fglab.cli import main
from fglab.pipeline import RetrievalPipeline
from tests.training.conftest import TINY_CONFIG

pytestmark = pytest.mark.slow  # trains on the real eng-wiki


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, data_root, eng_wiki):
    run = tmp_path_factory.mktemp("runs") / "fglab"
    config = tmp_path_factory.mktemp("cfg") / "config.json"
    config.write_text(json.dumps(TINY_CONFIG))
    argv = ["--data-root", str(data_root), "train", "eng-wiki", "--method", "fglab",
            "--out", str(run), "--config", str(config)]
    assert main(argv) == 0
    return run


def test_train_writes_a_complete_run(trained_run):
    for name in ("pipeline.json", "metrics.json", "text_features/tfidf.json",
                 "method/config.json", "method/weights.safetensors",
                 "checkpoints/model.safetensors", "checkpoints/siamese.json"):
        assert (trained_run / name).is_file(), name
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert 0.0 < metrics["map_all"]["avg"] <= 1.0


def test_train_over_a_damaged_checkpoint_trains_that_stage_again(
    trained_run, data_root, tmp_path, caplog
):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    damaged = run / "checkpoints" / "model.safetensors"
    damaged.write_bytes(damaged.read_bytes()[:-64] + b"\xff" * 64)  # NaN weights, once
    config = tmp_path / "config.json"
    config.write_text(json.dumps(TINY_CONFIG))
    argv = ["--data-root", str(data_root), "train", "eng-wiki", "--method", "fglab",
            "--out", str(run), "--config", str(config)]
    with caplog.at_level(logging.WARNING, logger="fglab.training"):
        assert main(argv) == 0
    assert f"checkpoint {damaged} does not match its SHA-256" in caplog.text
    metrics = json.loads((run / "metrics.json").read_text())
    assert math.isfinite(metrics["map_all"]["avg"]) and metrics["map_all"]["avg"] > 0.0


def test_save_load_round_trip_gives_identical_scores(trained_run, eng_wiki, tmp_path):
    first = RetrievalPipeline.load(trained_run)
    images, texts = first.encode_split(eng_wiki.test)
    first.save(tmp_path / "copy")
    second = RetrievalPipeline.load(tmp_path / "copy")
    images2, texts2 = second.encode_split(eng_wiki.test)
    assert np.array_equal(images @ texts.T, images2 @ texts2.T)
    raw = second.encode_texts(eng_wiki.test.texts[:3])  # raw strings, another batch size
    np.testing.assert_allclose(raw, texts[:3], atol=1e-5)


def test_pipeline_scores_rank_like_the_method_on_built_features(trained_run, eng_wiki):
    from fglab.features.views import build_features

    pipeline = RetrievalPipeline.load(trained_run)
    _, test = build_features(eng_wiki, "image:sift", "text:tfidf")
    images, texts = pipeline.encode_split(eng_wiki.test)
    np.testing.assert_allclose(
        images @ texts.T, pipeline.method.similarity(test.images, test.texts), atol=1e-5
    )


def test_evaluate_prints_the_saved_runs_scores(trained_run, data_root, capsys):
    assert main(["--data-root", str(data_root), "evaluate", str(trained_run)]) == 0
    out = capsys.readouterr().out
    saved = json.loads((trained_run / "metrics.json").read_text())
    assert f"avg {saved['map_all']['avg']:.4f}" in out
    assert f"R@10 {saved['recall']['txt2img']['10']:.3f}" in out


def test_evaluate_json_prints_one_object_with_map_recall_and_median_rank(
    trained_run, data_root, capsys
):
    assert main(["--data-root", str(data_root), "evaluate", str(trained_run), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed["recall"]) == {"img2txt", "txt2img"}
    assert set(printed["recall"]["img2txt"]) == {"1", "5", "10"}
    recall = printed["recall"]["txt2img"]
    assert 0.0 <= recall["1"] <= recall["5"] <= recall["10"] <= 1.0
    assert printed["median_rank"]["img2txt"] >= 1 and "avg" in printed["map_all"]


def test_baseline_pipeline_round_trip_and_no_raw_text_for_lda(tmp_path, data_root, eng_wiki):
    from fglab.pipeline import train_pipeline

    pipeline, metrics = train_pipeline(
        "eng-wiki", "sm", tmp_path / "sm", data_root=data_root, text_view="text:lda"
    )
    loaded = RetrievalPipeline.load(tmp_path / "sm")
    a, b = pipeline.encode_split(eng_wiki.test), loaded.encode_split(eng_wiki.test)
    assert np.array_equal(a[0] @ a[1].T, b[0] @ b[1].T)
    assert metrics["map_all"]["avg"] > 0.2
    with pytest.raises(ValueError, match="cannot be computed from raw text"):
        loaded.encode_texts(["a castle"])


def test_evaluate_names_a_missing_run(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nothing")]) == 2
    assert "pipeline.json is missing" in capsys.readouterr().err


def test_a_config_option_a_method_does_not_have_is_refused_before_any_work(tmp_path, capsys):
    config = tmp_path / "sm.json"
    config.write_text('{"C": 10}')
    out = tmp_path / "run"
    args = ["train", "eng-wiki", "--method", "sm", "--config", str(config), "--out", str(out)]
    assert main(args) == 2
    assert "sm has no config option 'C' (its options: c)" in capsys.readouterr().err
    assert not out.exists()
