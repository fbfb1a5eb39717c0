"""``fglab index``, ``index-add``, ``index-remove`` and ``search`` end to end.

The trained run is a stand-in pipeline (tests/index/fakes.py) so that these tests stay fast;
tests/test_queries.py runs the same commands on a real trained model.
"""

from __future__ import annotations

import hashlib
import json
import shutil

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
    monkeypatch.setattr("fglab.cli.index.load_pipeline", FakePipeline.load)
    monkeypatch.setattr("fglab.cli.search.load_pipeline", FakePipeline.load)
    monkeypatch.setattr("fglab.ingest.embedder.default_image_featurizer", lambda: fake_featurizer)
    monkeypatch.setattr(
        "fglab.retriever.default_upload_featurizer", lambda: fake_upload_featurizer
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


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("fglab: error: ") and err.count("\n") == 1, err
    return err


def _relist(index, name: str) -> None:
    """Record ``name``'s new size and SHA-256 in index.json, as a hand edit would."""
    listing = json.loads((index / "index.json").read_text())
    data = (index / name).read_bytes()
    listing["files"][name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (index / "index.json").write_text(json.dumps(listing))


def test_repeated_ids_and_damaged_indexes_are_one_line_errors(fakes, tmp_path, capsys):
    manifest = write_collection(tmp_path / "p", 1)
    good = tmp_path / "good"
    main(["index", str(fakes), "--dataset", f"manifest:{manifest}", "--out", str(good)])
    capsys.readouterr()
    assert main(["index-remove", str(good), "img-boats-0", "txt-music-0", "img-boats-0"]) == 2
    assert "'img-boats-0' is given twice" in _one_line_error(capsys)
    assert EmbeddingIndex.load(good).count("image") == 3  # nothing removed

    def damaged(name: str, damage) -> str:
        index = tmp_path / name
        shutil.copytree(good, index)
        damage(index)
        assert main(["search", str(index), "--text", "ship"]) == 2
        return _one_line_error(capsys)

    def garbage_faiss(index, relist: bool) -> None:
        (index / "image.faiss").write_bytes(b"not a faiss index at all")
        if relist:
            _relist(index, "image.faiss")

    def edit_listing(change):
        def edit(index):
            listing = json.loads((index / "index.json").read_text())
            (index / "index.json").write_text(json.dumps(change(listing)))

        return edit

    message = damaged("faiss", lambda index: garbage_faiss(index, False))
    assert "image.faiss" in message and "does not match" in message
    message = damaged("faiss-relisted", lambda index: garbage_faiss(index, True))
    assert "image.faiss is not a readable faiss index" in message
    message = damaged("no-dim", edit_listing(lambda listing: {
        key: value for key, value in listing.items() if key != "dim"}))
    assert "index.json is malformed (no field 'dim')" in message
    message = damaged("list", edit_listing(lambda listing: [listing]))
    assert "index.json" in message
    message = damaged("no-sha", edit_listing(lambda listing: {**listing, "files": {
        name: {"bytes": entry["bytes"]} for name, entry in listing["files"].items()}}))
    assert "index.json is malformed" in message and "'sha256'" in message
    message = damaged("dim", edit_listing(lambda listing: {**listing, "dim": 4}))
    assert ".faiss holds 3-d vectors, index.json says 4" in message


def test_serve_answers_allowed_hosts_with_deadlines(fakes, tmp_path, monkeypatch, capsys):
    import uvicorn
    from fastapi.testclient import TestClient

    manifest = write_collection(tmp_path / "p", 1)
    index = tmp_path / "index"
    main(["index", str(fakes), "--dataset", f"manifest:{manifest}", "--out", str(index)])
    served = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda server: served.append(server.config))
    args = ["serve", str(index), "--host", "0.0.0.0", "--allowed-hosts", "search.lan"]
    assert main([*args, "--max-uploads", "2"]) == 0
    [config] = served
    assert config.timeout_keep_alive == 5 and config.limit_concurrency == 100
    for host, status in (("search.lan", 200), ("localhost", 200), ("evil.example", 400)):
        with TestClient(config.app, base_url=f"http://{host}") as client:
            assert client.get("/health").status_code == status, host
    assert main([*args, "--max-uploads", "0"]) == 2
    assert "--max-uploads must be at least 1" in capsys.readouterr().err


def test_a_second_writer_is_refused_before_any_embedding(fakes, tmp_path, capsys, monkeypatch):
    from fglab.index.locks import writer_lock

    manifest = write_collection(tmp_path / "photos")
    index = tmp_path / "index"
    args = ["index", str(fakes), "--dataset", f"manifest:{manifest}", "--out", str(index)]
    assert main(args) == 0
    embedded = []
    monkeypatch.setattr("fglab.ingest.embedder.default_image_featurizer",
                        lambda: embedded.append(1) or fake_featurizer)
    capsys.readouterr()
    with writer_lock(index):  # another index-add, still embedding
        assert main(["index-add", str(index), "--dataset", f"manifest:{manifest}"]) == 2
        assert main(["index-remove", str(index), "img-boats-1"]) == 2
    error = capsys.readouterr().err
    assert "run this one again" in error and error.count("\n") == 2 and not embedded
    assert main(["index-remove", str(index), "img-boats-1"]) == 0  # free again


def test_serve_warms_up_and_follows_the_index(fakes, tmp_path, monkeypatch):
    import uvicorn

    from fglab.retriever import Retriever

    manifest = write_collection(tmp_path / "p", 1)
    index = tmp_path / "index"
    main(["index", str(fakes), "--dataset", f"manifest:{manifest}", "--out", str(index)])
    calls = []
    monkeypatch.setattr(Retriever, "warm_up", lambda self: calls.append("warm up"))
    monkeypatch.setattr(Retriever, "watch", lambda self, every: calls.append(("watch", every)))

    def run(server):
        calls.append("serving")

    monkeypatch.setattr(uvicorn.Server, "run", run)
    assert main(["serve", str(index), "--reload-interval", "0.5"]) == 0
    assert calls == [("watch", 0.5), "warm up", "serving"]
    calls.clear()
    assert main(["serve", str(index), "--reload-interval", "0"]) == 0
    assert calls == ["warm up", "serving"]


def test_search_prints_a_collections_titles_without_raw_control_characters(fakes, tmp_path,
                                                                         capsys):
    folder = tmp_path / "c"
    folder.mkdir()
    rows = [{"id": f"t{i}", "text": f"guitar \x1b[2J\x1b]0;owned\x07 concert {i}",
             "label": "mu\x1bsic"} for i in range(3)]
    (folder / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    index = tmp_path / "index"
    assert main(["index", str(fakes), "--dataset", f"manifest:{folder / 'm.jsonl'}",
                 "--out", str(index)]) == 0
    assert "checking: 3row" in capsys.readouterr().err  # the manifest's first pass, shown
    assert main(["search", str(index), "--text", "guitar", "--target", "text", "-k", "2"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "guitar \\x1b[2J\\x1b]0;owned\\x07 concert" in out and "mu\\x1bsic" in out
