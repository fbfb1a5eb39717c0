from __future__ import annotations

import json

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
    for name in ("pipeline.json", "metrics.json", "text_features.joblib",
                 "method/config.json", "method/weights.safetensors",
                 "checkpoints/model.safetensors", "checkpoints/siamese.json"):
        assert (trained_run / name).is_file(), name
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert 0.0 < metrics["map_all"]["avg"] <= 1.0


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


def test_baseline_pipeline_round_trip_and_no_raw_text_for_lda(tmp_path, data_root, eng_wiki):
    from fglab.pipeline import train_pipeline

    pipeline, metrics = train_pipeline("eng-wiki", "sm", tmp_path / "sm", data_root=data_root)
    loaded = RetrievalPipeline.load(tmp_path / "sm")
    a, b = pipeline.encode_split(eng_wiki.test), loaded.encode_split(eng_wiki.test)
    assert np.array_equal(a[0] @ a[1].T, b[0] @ b[1].T)
    assert metrics["map_all"]["avg"] > 0.2
    with pytest.raises(ValueError, match="cannot be computed from raw text"):
        loaded.encode_texts(["a castle"])


def test_evaluate_names_a_missing_run(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nothing")]) == 2
    assert "pipeline.json is missing" in capsys.readouterr().err
