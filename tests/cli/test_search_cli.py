"""``fglab index``, ``index-add``, ``index-remove`` and ``search`` end to end.

The trained run is a stand-in pipeline (tests/index/fakes.py) so that these tests stay fast;
tests/test_queries.py runs the same commands on a real trained model.
"""

from __future__ import annotations

import json

import pytest

from fglab.cli import main
from fglab.index.store import EmbeddingIndex
from tests.index.fakes import (
    COLOURS,
    FakePipeline,
    colour_image,
    fake_featurizer,
    fake_upload_featurizer,
    write_collection,
)


@pytest.fixture()
def fakes(monkeypatch, tmp_path):
    monkeypatch.setattr("fglab.cli.search.load_pipeline", FakePipeline.load)
    monkeypatch.setattr("fglab.index.build.default_image_featurizer", lambda: fake_featurizer)
    monkeypatch.setattr(
        "fglab.search.default_upload_featurizer", lambda: fake_upload_featurizer
    )
    run = tmp_path / "run"
    FakePipeline().save(run)
    return run


def test_index_then_search_by_text_and_image(fakes, tmp_path, capsys):
    manifest = write_collection(tmp_path / "photos")
    index = tmp_path / "index"
    args = ["index", str(fakes), "--dataset", f"manifest:{manifest}", "--out", str(index)]
    assert main([*args, "--kind", "hnsw"]) == 0
    assert "12 images, 12 texts (image: hnsw, text: hnsw)" in capsys.readouterr().out

    assert main(["search", str(index), "--text", "a guitar concert", "-k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6 and lines[0].split()[:1] == ["1"] and "music" in lines[0]

    query = colour_image(tmp_path / "query.jpg", "boats")
    assert main(["search", str(index), "--image", str(query), "-k", "4", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert [h["category"] for h in hits] == ["boats"] * 4
    assert {h["modality"] for h in hits} == {"text"} and hits[0]["rank"] == 1


def test_add_and_remove_items_in_place(fakes, tmp_path, capsys):
    index = tmp_path / "index"
    main(
        [
            "index",
            str(fakes),
            "--dataset",
            f"manifest:{write_collection(tmp_path / 'a', 1)}",
            "--out",
            str(index),
        ]
    )
    extra = tmp_path / "a" / "more.jsonl"
    extra.write_text(
        '{"id": "new", "text": "horse", "image_path": "images/animals-0.jpg"}\n'
        '{"id": "bad", "image_path": "missing.jpg"}\n'
    )
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in index.rglob("*") if p.is_file()}
    assert main(["index-add", str(index), "--dataset", f"manifest:{extra}"]) == 0
    out = capsys.readouterr().out
    assert "4 images, 4 texts" in out
    assert main(["index-remove", str(index), "img-new", "txt-boats-0"]) == 0
    for path, stat in before.items():  # appended as segments: no earlier file was rewritten
        if path.name != "index.json":
            assert (path.stat().st_ino, path.stat().st_mtime_ns) == stat, path
    assert len(list((index / "segments").iterdir())) == 2
    loaded = EmbeddingIndex.load(index)
    assert "img-new" not in loaded.by_id and "txt-new" in loaded.by_id
    assert loaded.count("text") == 3 and (index / "model" / "config.json").is_file()


def test_errors_are_reported_not_raised(fakes, tmp_path, capsys):
    manifest = write_collection(tmp_path / "p", 1)
    index = tmp_path / "index"
    main(["index", str(fakes), "--dataset", f"manifest:{manifest}", "--out", str(index)])
    capsys.readouterr()
    assert main(["search", str(index), "--text", "   "]) == 2
    assert "query is empty" in capsys.readouterr().err
    assert main(["search", str(index), "--text", "ship", "-k", "0"]) == 2
    assert "k must be between 1 and 100" in capsys.readouterr().err
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("hello")
    assert main(["search", str(index), "--image", str(not_image)]) == 2
    assert "not an image" in capsys.readouterr().err
    assert main(["search", str(tmp_path / "nowhere"), "--text", "ship"]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["index-remove", str(index), "img-unknown"]) == 2
    assert "img-unknown" in capsys.readouterr().err
    assert COLOURS  # the fake collection is coloured by category
