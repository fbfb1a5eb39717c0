"""Own collections: CSV and JSONL manifests, good rows loaded, broken rows reported."""

from __future__ import annotations

import json

import pytest

from fglab.data.manifest import load_manifest
from tests.index.fakes import colour_image


def _jsonl(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_csv_manifest_loads_texts_images_and_labels(tmp_path):
    colour_image(tmp_path / "img" / "a.jpg", "boats")
    (tmp_path / "notes.txt").write_text("A harbour full of ships.", encoding="utf-8")
    (tmp_path / "m.csv").write_text(
        "id,text,text_path,image_path,label\na,A sailing boat,,img/a.jpg,boats\nb,,notes.txt,,\n",
        encoding="utf-8",
    )
    manifest = load_manifest(f"manifest:{tmp_path / 'm.csv'}")
    assert [m.id for m in manifest.items] == ["a", "b"]
    assert manifest.items[0].image_path == (tmp_path / "img" / "a.jpg").resolve()
    assert manifest.items[0].label == "boats" and manifest.items[1].label is None
    assert manifest.items[1].text == "A harbour full of ships."
    assert manifest.problems == [] and manifest.labels == ["boats"]


def test_broken_rows_are_reported_with_row_id_and_problem_and_skipped(tmp_path):
    colour_image(tmp_path / "ok.jpg", "music")
    (tmp_path / "fake.jpg").write_bytes(b"this is not a picture")
    (tmp_path / "empty.txt").write_text("")
    (tmp_path.parent / "outside.jpg").write_bytes(b"x")
    rows = [
        {"id": "good", "text": "a song", "image_path": "ok.jpg", "label": "music"},
        {"id": "good", "text": "again"},
        {"id": "../evil", "text": "x"},
        {"id": "noimg", "text": "x", "image_path": "missing.jpg"},
        {"id": "notimg", "image_path": "fake.jpg"},
        {"id": "escape", "image_path": "../outside.jpg"},
        {"id": "emptytext", "text_path": "empty.txt"},
        {"id": "nothing"},
        "{broken json",
        "[1, 2]",
    ]
    manifest = load_manifest(_jsonl(tmp_path / "m.jsonl", rows))
    assert [m.id for m in manifest.items] == ["good"]
    problems = {(p.row, p.id): p.problem for p in manifest.problems}
    assert problems[(2, "good")] == "duplicate id"
    assert "must match" in problems[(3, "../evil")]
    assert "does not exist" in problems[(4, "noimg")]
    assert "is not an image" in problems[(5, "notimg")]
    assert "outside the manifest's folder" in problems[(6, "escape")]
    assert "is empty" in problems[(7, "emptytext")]
    assert "neither text" in problems[(8, "nothing")]
    assert "not valid JSON" in problems[(9, "")] and "not a JSON object" in problems[(10, "")]
    assert "row 4 (id noimg)" in str(manifest.problems[2])


def test_manifest_without_usable_rows_or_header_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no usable rows"):
        load_manifest(_jsonl(tmp_path / "m.jsonl", [{"id": "a"}]))
    (tmp_path / "h.csv").write_text("name,text\nx,y\n")
    with pytest.raises(ValueError, match="'id' column"):
        load_manifest(tmp_path / "h.csv")
    (tmp_path / "m.tsv").write_text("id\n")
    with pytest.raises(ValueError, match=".csv or .jsonl"):
        load_manifest(tmp_path / "m.tsv")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_manifest(tmp_path / "absent.csv")


def test_csv_line_breaks_inside_quotes_are_kept(tmp_path):
    path = tmp_path / "m.csv"
    path.write_bytes(b'id,text\r\na,"first line\nsecond line"\r\nb,plain\r\n')
    manifest = load_manifest(path)
    assert [(m.id, m.text) for m in manifest.items] == [
        ("a", "first line\nsecond line"), ("b", "plain")
    ]
    assert manifest.problems == []


def test_csv_broken_quotes_are_reported_never_swallowing_rows_silently(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text('id,text\na,one\nb,"two\nc,three\nd,four\n', encoding="utf-8")
    manifest = load_manifest(path)
    assert [m.id for m in manifest.items] == ["a"]
    [problem] = manifest.problems
    assert problem.row == 2 and "never closed" in problem.problem
    assert "lines 3-5" in problem.problem and "not read" in problem.problem
    path.write_text('id,text\na,one\nb,"two" and more\nc,three\n', encoding="utf-8")
    manifest = load_manifest(path)
    assert [m.id for m in manifest.items] == ["a", "c"]
    assert [(p.row, "line 3" in p.problem) for p in manifest.problems] == [(2, True)]


def test_jsonl_values_that_are_not_text_are_reported_not_stringified(tmp_path):
    rows = [
        {"id": "a", "text": ["a", "list"]},
        {"id": "b", "text": 42},
        {"id": 7, "text": "a whole-number id is fine", "label": 3},
        {"id": "c", "text": "ok", "label": {"x": 1}},
        {"id": ["x"], "text": "t"},
        {"id": "d", "image_path": True},
        {"id": "e", "text": "fine"},
    ]
    manifest = load_manifest(_jsonl(tmp_path / "m.jsonl", rows))
    assert [(m.id, m.text, m.label) for m in manifest.items] == [
        ("7", "a whole-number id is fine", "3"), ("e", "fine", None)
    ]
    problems = {(p.row, p.id): p.problem for p in manifest.problems}
    assert problems == {
        (1, "a"): 'text must be a string, got list ["a", "list"]',
        (2, "b"): "text must be a string, got int 42",
        (4, "c"): 'label must be a string, got dict {"x": 1}',
        (5, ""): 'id must be a string, got list ["x"]',
        (6, "d"): "image_path must be a string, got bool true",
    }


def test_jsonl_strings_may_hold_unicode_line_separators(tmp_path):
    path = tmp_path / "m.jsonl"
    row = {"id": "u", "text": "one\u2028two\u2029three\x85four"}
    path.write_text(json.dumps(row, ensure_ascii=False) + "\r\n", encoding="utf-8")
    manifest = load_manifest(path)
    assert [m.text for m in manifest.items] == [row["text"]] and manifest.problems == []
