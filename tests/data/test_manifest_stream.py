"""A manifest streamed for indexing: checked in one pass, its rows read again, never held."""

from __future__ import annotations

import json
import os

import pytest

from fglab.data.manifest import load_manifest, stream_manifest
from tests.index.fakes import colour_image


def _rows(tmp_path) -> list:
    colour_image(tmp_path / "ok.jpg", "music")
    (tmp_path / "note.txt").write_text("a note from a file", encoding="utf-8")
    return [
        {"id": "a", "text": "a song", "image_path": "ok.jpg", "label": "music"},
        {"id": "a", "text": "the same id again"},
        "{broken json",
        {"id": "b", "image_path": "ok.jpg"},
        {"id": "c", "text_path": "note.txt"},
        {"id": "d", "text": "x", "image_path": "missing.jpg"},
        {"id": "d", "text": "the first usable d"},
    ]


def _write(path, rows) -> None:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")


def test_a_streamed_manifest_gives_what_a_loaded_one_gives(tmp_path):
    path = tmp_path / "m.jsonl"
    _write(path, _rows(tmp_path))
    loaded, streamed = load_manifest(path), stream_manifest(path)
    assert list(streamed.iter_items()) == loaded.items
    assert [m.id for m in loaded.items] == ["a", "b", "c", "d"]
    assert streamed.problems == loaded.problems and len(loaded.problems) == 3
    assert streamed.counts == loaded.counts == {"text": 3, "image": 2}
    assert [m.id for m in streamed.iter_items("image")] == ["a", "b"]
    assert [m.id for m in streamed.iter_items("text")] == ["a", "c", "d"]
    assert not hasattr(streamed, "items")  # the rows are read again, never kept


def test_a_streamed_csv_manifest_keeps_its_quoted_line_breaks(tmp_path):
    path = tmp_path / "m.csv"
    path.write_bytes(b'id,text\r\na,"first line\nsecond line"\r\nb,"broken\r\nc,plain\r\n')
    streamed = stream_manifest(path)
    assert [(m.id, m.text) for m in streamed.iter_items()] == [
        ("a", "first line\nsecond line")]
    assert [p.row for p in streamed.problems] == [2]


def test_a_manifest_changed_between_its_check_and_its_reading_is_an_error(tmp_path):
    path = tmp_path / "m.jsonl"
    _write(path, [{"id": "a", "text": "one"}, {"id": "b", "text": "two"}])
    streamed = stream_manifest(path)
    _write(path, [{"id": "a", "text": "one"}, {"id": "b", "text": "two, edited"}])
    with pytest.raises(ValueError, match=r"m\.jsonl changed while it was read; run again"):
        list(streamed.iter_items())


def test_a_row_broken_after_the_check_is_named(tmp_path):
    (tmp_path / "note.txt").write_text("some text", encoding="utf-8")
    path = tmp_path / "m.jsonl"
    _write(path, [{"id": "a", "text_path": "note.txt"}, {"id": "b", "text": "two"}])
    streamed = stream_manifest(path)
    os.remove(tmp_path / "note.txt")  # the manifest itself is unchanged
    named = r"changed while it was read: row 1 \(id a\) text_path 'note.txt' does not exist$"
    with pytest.raises(ValueError, match=named):
        list(streamed.iter_items())
