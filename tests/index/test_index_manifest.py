"""Own collections: CSV and JSONL manifests, good rows loaded, broken rows reported."""

from __future__ import annotations

import json

import pytest

from fglab.index.manifest import load_manifest
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
