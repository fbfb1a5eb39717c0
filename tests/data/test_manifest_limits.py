"""One limit on a text, however it arrives (inline in JSONL or CSV, a ``text_path`` file, a
Wikipedia-layout text file): a row over it is a row problem and skipped, never a crash."""

from __future__ import annotations

import csv
import json

import pytest

from fglab.data import load_dataset
from fglab.data import manifest as manifest_module
from fglab.data.manifest import load_manifest
from tests.data.fixtures import write_dataset, xml_doc

LIMIT = 1_000
AT_LIMIT = "é" * (LIMIT // 2)  # 1,000 bytes of UTF-8 in 500 characters
OVER_LIMIT = AT_LIMIT + "a"  # 1,001 bytes: the limit counts bytes, not characters
OVER = f"text is {LIMIT + 1} bytes, over the limit of {LIMIT} bytes"


@pytest.fixture
def small_limit(monkeypatch):
    monkeypatch.setattr(manifest_module, "MAX_TEXT_BYTES", LIMIT)


def _problems(manifest) -> dict[tuple[int, str], str]:
    return {(p.row, p.id): p.problem for p in manifest.problems}


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def test_jsonl_text_at_the_limit_loads_one_byte_over_is_skipped(tmp_path, small_limit):
    rows = [{"id": "at", "text": AT_LIMIT}, {"id": "over", "text": OVER_LIMIT},
            {"id": "after", "text": "fine"}]
    manifest = load_manifest(_write_jsonl(tmp_path / "m.jsonl", rows))
    assert [m.id for m in manifest.items] == ["at", "after"]
    assert _problems(manifest) == {(2, "over"): OVER}


def test_csv_text_at_the_limit_loads_one_byte_over_is_skipped(tmp_path, small_limit):
    path = tmp_path / "m.csv"
    path.write_text(f"id,text\nat,{AT_LIMIT}\nover,{OVER_LIMIT}\nafter,fine\n", "utf-8")
    manifest = load_manifest(path)
    assert [m.id for m in manifest.items] == ["at", "after"]
    assert _problems(manifest) == {(2, "over"): OVER}


def test_a_csv_field_far_over_the_limit_stops_the_csv_reader_and_the_rest_loads(
    tmp_path, small_limit
):
    before = csv.field_size_limit()
    huge = "\n".join(["x" * 900, 'a ""quoted"" word', "y" * 5_000, "z" * 900])  # 4 lines
    path = tmp_path / "m.csv"
    path.write_text(f'id,text\nfirst,one\nhuge,"{huge}"\nafter,two\n', "utf-8")
    manifest = load_manifest(path)
    assert [m.id for m in manifest.items] == ["first", "after"]
    [problem] = manifest.problems
    assert problem.row == 2 and problem.id == ""
    assert f"over the limit of {LIMIT} bytes" in problem.problem
    assert "lines 3-6" in problem.problem
    assert csv.field_size_limit() == before  # the csv module's limit is given back


def test_text_path_file_at_the_limit_loads_one_byte_over_is_skipped(tmp_path, small_limit):
    (tmp_path / "at.txt").write_text(AT_LIMIT, "utf-8")
    (tmp_path / "over.txt").write_text(OVER_LIMIT, "utf-8")
    rows = [{"id": "at", "text_path": "at.txt"}, {"id": "over", "text_path": "over.txt"}]
    manifest = load_manifest(_write_jsonl(tmp_path / "m.jsonl", rows))
    assert [m.id for m in manifest.items] == ["at"]
    assert _problems(manifest) == {
        (2, "over"): f"text_path 'over.txt' is {LIMIT + 1} bytes, over the limit of {LIMIT} bytes"
    }


def test_a_huge_jsonl_line_is_refused_without_decoding_it(tmp_path, small_limit, monkeypatch):
    decoded: list[int] = []
    loads = json.loads

    def counting_loads(text, *args, **kwargs):
        decoded.append(len(text))
        return loads(text, *args, **kwargs)

    rows = [{"id": "a", "text": "one"}, {"id": "huge", "text": "x" * 500_000},
            {"id": "b", "text": "two"}]
    path = _write_jsonl(tmp_path / "m.jsonl", rows)
    monkeypatch.setattr(json, "loads", counting_loads)
    manifest = load_manifest(path)
    assert [m.id for m in manifest.items] == ["a", "b"]
    assert len(decoded) == 2 and max(decoded) < 100
    [problem] = manifest.problems
    assert problem.row == 2 and "500" in problem.problem and f"{LIMIT} bytes" in problem.problem


def test_the_default_limit_is_one_megabyte_on_every_route(tmp_path):
    assert manifest_module.MAX_TEXT_BYTES == 1_000_000
    long_text = "w" * 200_000  # over csv's own default field limit of 128 KB, well under 1 MB
    path = tmp_path / "m.csv"
    path.write_text(f"id,text\nlong,{long_text}\n", "utf-8")
    assert load_manifest(path).items[0].text == long_text
    rows = [{"id": "big", "text": "w" * 1_000_001}, {"id": "ok", "text": "fine"}]
    manifest = load_manifest(_write_jsonl(tmp_path / "m.jsonl", rows))
    assert [m.id for m in manifest.items] == ["ok"]
    assert _problems(manifest) == {
        (1, "big"): "text is 1000001 bytes, over the limit of 1000000 bytes"
    }


def test_paths_the_system_cannot_take_are_row_problems(tmp_path):
    rows = [{"id": "long", "text_path": "n" * 5_000}, {"id": "nul", "image_path": "a\x00.jpg"},
            {"id": "ok", "text": "fine"}]
    manifest = load_manifest(_write_jsonl(tmp_path / "m.jsonl", rows))
    assert [m.id for m in manifest.items] == ["ok"]
    assert {p.id for p in manifest.problems} == {"long", "nul"}
    assert all("not a usable path" in p.problem for p in manifest.problems)


def test_a_wikipedia_layout_text_file_over_the_limit_is_skipped(tmp_path, small_limit):
    train = [("a", "a", "1"), ("b", "b", "1")]
    texts = {"a": xml_doc("short"), "b": xml_doc("x" * LIMIT)}
    images = {k: (f"{k}.jpg", "JPEG") for k in "ab"}
    root = write_dataset(tmp_path / "d", train, [("a", "a", "1")], texts, images)
    dataset = load_dataset(str(root))
    assert dataset.train.text_ids == ["a"]
    [problem] = dataset.problems
    assert problem.kind == "text_too_large" and problem.item == "b" and problem.skipped
    assert f"over the limit of {LIMIT} bytes" in problem.detail
