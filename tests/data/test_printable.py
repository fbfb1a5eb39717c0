"""Strings a collection provides (ids, paths, labels, excerpts) reach the terminal escaped:
no control character of a manifest or a list file is ever printed or logged raw."""

from __future__ import annotations

import json
import logging

import pytest

from fglab.data import load_dataset
from fglab.data.collection import CollectionError, load_training_collection
from fglab.data.manifest import load_manifest
from fglab.data.problems import Problem, printable, summarize
from tests.data.fixtures import write_dataset, write_manifest_collection, xml_doc

#: ESC (a colour sequence), BEL, NUL, right-to-left override, zero-width space, DEL, C1 CSI.
HOSTILE = ("\x1b[31m", "\x07", "\x00", "\u202e", "\u200b", "\x7f", "\x9b")
ESCAPED = ("\\x1b[31m", "\\x07", "\\x00", "\\u202e", "\\u200b", "\\x7f", "\\x9b")


def assert_clean(*texts: str) -> None:
    """No text holds a control or format character (Unicode Cc, Cf) or a line separator."""
    for text in texts:
        for line in text.splitlines():
            bad = [c for c in line if not c.isprintable() and c not in "\t"]
            assert not bad, f"raw {bad!r} in {line!r}"


def logged(caplog) -> str:
    return "\n".join(record.getMessage() for record in caplog.records)


def test_printable_escapes_control_and_format_characters_as_repr_does():
    for raw, escaped in zip(HOSTILE, ESCAPED, strict=True):
        assert printable(f"a{raw}b") == f"a{escaped}b"
    assert printable("line\nbreak\ttab\u2028") == "line\\nbreak\\ttab\\u2028"
    assert printable("café 海军舰艇 id-1.jpg") == "café 海军舰艇 id-1.jpg"  # printable: kept


def test_printable_cuts_long_values_with_an_ellipsis_never_inside_an_escape():
    assert printable("x" * 80) == "x" * 80
    assert printable("x" * 81) == "x" * 79 + "\u2026"
    cut = printable("ab" + "\x1b" * 100, limit=10)
    assert cut == "ab\\x1b\u2026" and len(cut) <= 10  # a second "\\x1b" would not fit
    assert printable("y" * 500, limit=None) == "y" * 500
    assert printable(printable("a\x1bb")) == "a\\x1bb"  # escaping twice changes nothing


def _hostile_rows() -> list[dict]:
    rows = [{"id": f"bad{raw}id", "text": "some text"} for raw in HOSTILE]
    rows += [
        {"id": "list", "text": [f"x{raw}" for raw in HOSTILE]},
        {"id": "split", "text": "t", "split": "tr\u202eain"},
        {"id": "path", "image_path": "photos/\x1b[31mred\x00.jpg"},
        {"id": "textpath", "text_path": "notes\u202e.txt"},
    ]
    return rows


def test_manifest_problems_and_warnings_show_hostile_values_escaped(tmp_path, caplog):
    path = tmp_path / "m.jsonl"
    rows = [*_hostile_rows(), {"id": "good", "text": "fine"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        manifest = load_manifest(path)
    assert [m.id for m in manifest.items] == ["good"]
    assert len(manifest.problems) == len(rows) - 1
    shown = "\n".join(str(p) for p in manifest.problems)
    assert_clean(shown, logged(caplog))
    for escaped in ESCAPED:
        assert f"bad{escaped}id" in shown and f"bad{escaped}id" in logged(caplog)
    assert "\\x1b[31mred\\x00.jpg" in shown and "tr\\u202eain" in shown


def test_csv_manifest_ids_and_labels_with_control_characters_are_escaped(tmp_path, caplog):
    path = tmp_path / "m.csv"
    lines = ["id,text,label"] + [f'"bad{raw}id",some text,x' for raw in HOSTILE[:2]]
    path.write_text("\n".join([*lines, "good,fine,\u202elabel\x07"]) + "\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        manifest = load_manifest(path)
    assert manifest.items[0].label == "\u202elabel\x07"  # the data itself is kept as given
    shown = "\n".join(str(p) for p in manifest.problems)
    assert_clean(shown, logged(caplog))
    assert "bad\\x1b[31mid" in shown and "bad\\x07id" in logged(caplog)


def test_a_label_with_a_single_pair_is_named_escaped(tmp_path):
    manifest = write_manifest_collection(tmp_path / "photos", fmt="jsonl")
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    rows[0]["label"] = "lonely\x1b[31m\u202e" + "x" * 500
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(CollectionError) as error:
        load_training_collection(f"manifest:{manifest}")
    assert_clean(str(error.value))
    assert "lonely\\x1b[31m\\u202e" in str(error.value) and len(str(error.value)) < 400


def test_wikipedia_layout_problems_show_list_ids_escaped(tmp_path, caplog):
    train = [("a", "a", "1"), ("t\x1b[31m", "t", "1"), ("b", "b\u202e", "1"),
             ("c", "c", "\x07"), ("d\x00", "d", "1")]
    texts = {k: xml_doc(f"text {k}") for k in "abcd"}
    root = write_dataset(tmp_path / "d", train, [("a", "a", "1")], texts,
                         {"a": ("a.jpg", "JPEG")})
    with caplog.at_level(logging.INFO):
        dataset = load_dataset(str(root))
    assert dataset.train.text_ids == ["a"]
    shown = "\n".join([*map(str, dataset.problems), *summarize(dataset.problems, "d")])
    assert_clean(shown, logged(caplog))
    for escaped in ("t\\x1b[31m", "b\\u202e", "d\\x00"):  # ids: in the log's summary too
        assert escaped in shown and escaped in logged(caplog)
    assert "category '\\x07'" in shown


def test_a_problem_prints_its_item_and_detail_escaped():
    problem = Problem("missing_text", "train", "id\x1b]0;title\x07", "detail \u202e")
    assert str(problem) == "[train] missing_text: id\\x1b]0;title\\x07 (detail \\u202e; skipped)"
