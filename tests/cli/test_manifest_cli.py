"""Train, evaluate, reproduce, index and search on a user's own manifest, with and without
labels."""

from __future__ import annotations

import json

import pytest

from fglab.cli import main
from tests.data.fixtures import write_manifest_collection
from tests.training.conftest import TINY_CONFIG


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FGLAB_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(TINY_CONFIG))
    return path


def _evaluate_json(run, capsys) -> dict:
    capsys.readouterr()
    assert main(["evaluate", str(run), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_labeled_csv_with_splits_trains_evaluates_with_map_and_recall(tmp_path, capsys):
    manifest = write_manifest_collection(tmp_path / "photos")
    run = tmp_path / "run"
    assert main(["train", f"manifest:{manifest}", "--method", "sm", "--out", str(run)]) == 0
    printed = capsys.readouterr().out
    assert "sm on manifest:" in printed and "map_all" in printed and "R@10" in printed
    metrics = _evaluate_json(run, capsys)
    assert metrics["n_test"] == 6 and metrics["pairs"] is False
    assert 0.0 < metrics["map_all"]["avg"] <= 1.0
    assert set(metrics["recall"]) == {"img2txt", "txt2img"}
    assert set(metrics["recall"]["img2txt"]) == {"1", "5", "10"}
    assert metrics["median_rank"]["img2txt"] >= 1


def test_an_unlabeled_jsonl_trains_fglab_at_pair_level_and_is_searchable(
    tmp_path, tiny_config, capsys
):
    manifest = write_manifest_collection(
        tmp_path / "photos", per_topic=10, labeled=False, split=False, fmt="jsonl"
    )
    run = tmp_path / "run"
    argv = ["train", f"manifest:{manifest}", "--method", "fglab", "--out", str(run),
            "--config", str(tiny_config)]
    assert main(argv) == 0
    assert "trained at pair level" in capsys.readouterr().out
    saved = json.loads((run / "pipeline.json").read_text())
    assert saved["pairs"] is True and len(saved["test_ids"]) == 6
    config = json.loads((run / "method" / "config.json").read_text())
    assert config["labels"]["teacher"] == "tfidf"  # "auto" resolved: no categories
    assert config["training"]["precision"] in ("float32", "bfloat16")
    assert config["model"]["image_branch"] == "mlp"
    metrics = _evaluate_json(run, capsys)
    assert "map_all" not in metrics and metrics["n_test"] == 6
    assert 0.0 <= metrics["recall"]["txt2img"]["1"] <= metrics["recall"]["txt2img"]["5"] <= 1.0
    index = tmp_path / "index"
    assert main(["index", str(run), "--dataset", f"manifest:{manifest}", "--out", str(index)]) == 0
    capsys.readouterr()
    assert main(["search", str(index), "--text", "football stadium", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert len(hits) == 10 and all(hit["modality"] == "image" for hit in hits)


def test_a_method_that_needs_categories_says_so_on_an_unlabeled_manifest(tmp_path, capsys):
    manifest = write_manifest_collection(tmp_path / "photos", labeled=False, fmt="jsonl")
    run = tmp_path / "run"
    assert main(["train", f"manifest:{manifest}", "--method", "sm-svm", "--out", str(run)]) == 2
    error = capsys.readouterr().err
    assert "learns from categories" in error and error.count("\n") == 1
    assert not run.exists()


def test_a_broken_manifest_fails_before_training_in_one_line(tmp_path, capsys):
    manifest = write_manifest_collection(tmp_path / "photos", fmt="jsonl")
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    rows[0]["label"] = "lonely"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = tmp_path / "run"
    assert main(["train", f"manifest:{manifest}", "--method", "cca", "--out", str(run)]) == 2
    error = capsys.readouterr().err
    assert "label 'lonely' (row 1) has a single training pair" in error
    assert not run.exists()


def test_reproduce_on_pairs_skips_category_methods_and_reports_recall(tmp_path, capsys):
    manifest = write_manifest_collection(tmp_path / "photos", per_topic=10)
    out = tmp_path / "results"
    argv = ["reproduce", f"manifest:{manifest}", "--pairs", "--methods", "random,cca,sm",
            "--seeds", "2", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "skipping sm learns from categories" in printed
    payload = json.loads((out / "results.json").read_text())
    assert payload["pairs"] is True and set(payload["methods"]) == {"random", "cca"}
    cca = payload["methods"]["cca"]
    assert len(cca["recall"]["img2txt"]["10"]["runs"]) == 2
    assert "map_all" in cca  # the labels still say which items share a category
    assert "trained at pair level" in (out / "results.md").read_text()


def test_reproduce_on_an_unlabeled_manifest_reports_no_map(tmp_path, capsys):
    manifest = write_manifest_collection(tmp_path / "photos", labeled=False, split=False,
                                         fmt="jsonl")
    out = tmp_path / "results"
    argv = ["reproduce", f"manifest:{manifest}", "--methods", "cca,pls", "--seeds", "1",
            "--out", str(out)]
    assert main(argv) == 0
    payload = json.loads((out / "results.json").read_text())
    assert all("map_all" not in m and "recall" in m for m in payload["methods"].values())
    assert not (out / "pr_curves.png").exists()
    assert "R@10" in (out / "results.md").read_text()


def test_reproduce_on_a_labeled_manifest_runs_every_method_by_category(tmp_path, capsys):
    manifest = write_manifest_collection(tmp_path / "photos")
    out = tmp_path / "results"
    argv = ["reproduce", f"manifest:{manifest}", "--methods", "random,sm", "--seeds", "1",
            "--out", str(out)]
    assert main(argv) == 0
    payload = json.loads((out / "results.json").read_text())
    assert payload["pairs"] is False and payload["n_test"] == 6
    assert all("map_all" in m and "recall" in m for m in payload["methods"].values())
    assert (out / "pr_curves.png").is_file()


def test_an_index_over_its_memory_budget_is_one_line_and_writes_nothing(tmp_path, capsys):
    manifest = write_manifest_collection(tmp_path / "photos")
    run, index = tmp_path / "run", tmp_path / "index"
    assert main(["train", f"manifest:{manifest}", "--method", "sm", "--out", str(run)]) == 0
    capsys.readouterr()
    argv = ["index", str(run), "--dataset", f"manifest:{manifest}", "--out", str(index)]
    assert main([*argv, "--max-memory", "100"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("fglab: error: ") and "raise --max-memory" in err[-1]
    assert not index.exists()
    assert main([*argv, "--max-memory", "1M"]) == 0 and (index / "index.json").is_file()
