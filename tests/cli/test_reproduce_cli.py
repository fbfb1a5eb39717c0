"""The CLI end to end on the real eng-wiki data set."""

from __future__ import annotations

import json

import pytest

from fglab.cli import main


def test_datasets_check_reports_counts_and_quirks(eng_wiki, capsys):
    assert main(["datasets", "check", "eng-wiki"]) == 0
    out = capsys.readouterr().out
    assert "total                       2173     693" in out
    assert "888 x malformed_xml (kept)" in out
    assert "warfare" in out


def test_datasets_check_chinese_news(chinese_news, capsys):
    assert main(["datasets", "check", "chinese-news"]) == 0
    out = capsys.readouterr().out
    assert "7 x missing_image (skipped): 72" in out
    assert "37 x image_format_mismatch" in out
    assert "total                       1696     497" in out


def test_reproduce_writes_json_markdown_and_plot(eng_wiki, tmp_path, capsys):
    out_dir = tmp_path / "run"
    code = main(["reproduce", "eng-wiki", "--methods", "random,cca", "--seeds", "2",
                 "--out", str(out_dir)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| cca |" in printed and "| random |" in printed
    payload = json.loads((out_dir / "results.json").read_text())
    cca = payload["methods"]["cca"]
    for metric in ("map_all", "map_100"):
        for direction in ("img2txt", "txt2img", "avg"):
            stats = cca[metric][direction]
            assert len(stats["runs"]) == 2
            assert stats["mean"] == pytest.approx(sum(stats["runs"]) / 2)
    random_map = payload["methods"]["random"]["map_all"]["img2txt"]["mean"]
    assert cca["map_all"]["img2txt"]["mean"] > random_map
    assert cca["seconds"] > 0
    assert "| cca |" in (out_dir / "results.md").read_text()
    assert (out_dir / "pr_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_method_is_a_clear_error(tmp_path, capsys):
    code = main(["reproduce", "eng-wiki", "--methods", "cca,nope", "--out", str(tmp_path)])
    assert code == 2
    assert "unknown method 'nope'" in capsys.readouterr().err


def test_unknown_dataset_is_a_clear_error(tmp_path, capsys):
    assert main(["--data-root", str(tmp_path), "datasets", "check", "nope"]) == 2
    assert "not found" in capsys.readouterr().err


def test_a_second_run_reuses_finished_methods(eng_wiki, tmp_path, capsys):
    out_dir = tmp_path / "run"
    assert main(["reproduce", "eng-wiki", "--methods", "random", "--seeds", "1",
                 "--out", str(out_dir)]) == 0
    first = json.loads((out_dir / "results.json").read_text())
    capsys.readouterr()
    assert main(["reproduce", "eng-wiki", "--methods", "random,pls", "--seeds", "1",
                 "--out", str(out_dir)]) == 0
    printed = capsys.readouterr().out
    assert "| random |" in printed and "reused" in printed
    second = json.loads((out_dir / "results.json").read_text())
    assert second["methods"]["random"] == first["methods"]["random"]
    assert "pls" in second["methods"]
    assert main(["reproduce", "eng-wiki", "--methods", "random", "--seeds", "1", "--fresh",
                 "--out", str(out_dir)]) == 0
    assert "reused" not in capsys.readouterr().out


def test_rerun_reruns_the_named_methods_and_reuses_the_others(eng_wiki, tmp_path, capsys):
    out_dir = tmp_path / "run"
    args = ["reproduce", "eng-wiki", "--methods", "random,pls", "--seeds", "1",
            "--out", str(out_dir)]
    assert main(args) == 0
    capsys.readouterr()
    assert main([*args, "--rerun", "pls"]) == 0
    rows = {line.split("|")[1].strip(): line for line in capsys.readouterr().out.splitlines()
            if line.startswith("| random") or line.startswith("| pls")}
    assert "reused" in rows["random"] and "reused" not in rows["pls"]


def test_text_view_gives_every_method_the_same_features(eng_wiki, tmp_path, capsys):
    out_dir = tmp_path / "equal"
    code = main(["reproduce", "eng-wiki", "--methods", "random,cca", "--seeds", "1",
                 "--text-view", "text:tfidf", "--out", str(out_dir)])
    assert code == 0
    payload = json.loads((out_dir / "results.json").read_text())
    views = {(m["image_view"], m["text_view"]) for m in payload["methods"].values()}
    assert views == {("image:sift", "text:tfidf")}
    recall = payload["methods"]["cca"]["recall"]["img2txt"]
    assert set(recall) == {"1", "5", "10"} and len(recall["10"]["runs"]) == 1
    assert "Exact pair" in (out_dir / "results.md").read_text()


def test_a_word_method_refuses_a_text_view_without_words(tmp_path, capsys):
    code = main(["reproduce", "eng-wiki", "--methods", "cca,fglab", "--text-view", "text:lda",
                 "--out", str(tmp_path / "x")])
    assert code == 2
    assert "fglab reads words" in capsys.readouterr().err
    assert not (tmp_path / "x" / "results.json").exists()
