"""`fglab train` and `fglab index` on a manifest whose ids and labels hold control characters:
nothing raw reaches stdout, stderr or the log."""

from __future__ import annotations

import json
import logging

import pytest

from fglab.cli import main
from tests.data.fixtures import write_manifest_collection
from tests.data.test_printable import ESCAPED, HOSTILE, assert_clean, logged


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FGLAB_CACHE", str(tmp_path / "cache"))


def _with_hostile_rows(manifest, label: str | None = None):
    """The manifest as JSONL plus one row per hostile id; ``label`` on its first pair."""
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    if label is not None:
        rows[0]["label"] = label
    rows += [{"id": f"bad{raw}id", "text": "text"} for raw in HOSTILE]
    path = manifest.with_name("hostile.jsonl")
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_train_prints_and_logs_hostile_ids_and_labels_escaped(tmp_path, capsys, caplog):
    manifest = write_manifest_collection(tmp_path / "photos", fmt="jsonl")
    hostile = _with_hostile_rows(manifest, label="lonely\x1b[31m\u202e")
    run = tmp_path / "run"
    with caplog.at_level(logging.WARNING):
        assert main(["train", f"manifest:{hostile}", "--method", "cca", "--out", str(run)]) == 2
    captured = capsys.readouterr()
    assert_clean(captured.out, captured.err, logged(caplog))
    assert "lonely\\x1b[31m\\u202e" in captured.err
    for escaped in ESCAPED:
        assert f"bad{escaped}id" in logged(caplog)


def test_index_prints_skipped_hostile_rows_escaped(tmp_path, capsys, caplog):
    manifest = write_manifest_collection(tmp_path / "photos", per_topic=5, fmt="jsonl")
    run, index = tmp_path / "run", tmp_path / "index"
    trained = main(["train", f"manifest:{manifest}", "--method", "cca", "--out", str(run)])
    assert trained == 0, capsys.readouterr().err
    capsys.readouterr()
    caplog.clear()
    hostile = _with_hostile_rows(manifest)
    with caplog.at_level(logging.WARNING):
        argv = ["index", str(run), "--dataset", f"manifest:{hostile}", "--out", str(index)]
        indexed = main(argv)
    captured = capsys.readouterr()
    assert indexed == 0, captured.err
    assert_clean(captured.out, captured.err, logged(caplog))
    skipped = [line for line in captured.out.splitlines() if line.startswith("skipped: ")]
    assert len(skipped) == len(HOSTILE)
    for escaped in ESCAPED:
        assert any(f"bad{escaped}id" in line for line in skipped)
