"""A running server follows its index: ``index-add``, ``index-remove`` and a rebuild are
served within seconds, a removed item is 404 (its thumbnail too), and no request fails while
the state is switched."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from fglab.cli import main
from fglab.data.manifest import load_manifest
from fglab.index.store import EmbeddingIndex
from fglab.ingest.build import build_index
from fglab.service import create_app
from tests.index.fakes import FakePipeline, build_fake_index, fake_featurizer, open_fake_retriever

BASE = "http://localhost"


@pytest.fixture()
def served(tmp_path):
    index_dir = build_fake_index(tmp_path)
    retriever = open_fake_retriever(index_dir)
    retriever.watch(0.05)
    with TestClient(create_app(retriever), base_url=BASE) as client:
        yield index_dir, client
    retriever.stop_watching()


def _until(predicate, seconds: float = 5.0) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        if predicate():
            return time.perf_counter() - started
        time.sleep(0.02)
    raise AssertionError(f"not within {seconds} s")


class Traffic:
    """Queries in a loop on another thread, every status kept."""

    def __init__(self, client: TestClient):
        self.client, self.statuses, self.stop = client, [], threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self.stop.is_set():
            response = self.client.post("/search/text", json={"query": "ship sail", "k": 5})
            self.statuses.append(response.status_code)
            self.statuses.append(self.client.get("/health").status_code)

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


def test_a_removed_item_is_404_within_seconds_and_no_request_fails(served):
    index_dir, client = served
    assert client.get("/items/img-boats-1").status_code == 200
    assert client.get("/images/img-boats-1").status_code == 200  # now in the thumbnail cache
    with Traffic(client) as traffic:
        assert main(["index-remove", str(index_dir), "img-boats-1", "txt-boats-1"]) == 0
        _until(lambda: client.get("/items/img-boats-1").status_code == 404)
    assert client.get("/images/img-boats-1").status_code == 404
    assert client.get("/items/txt-boats-1").status_code == 404
    assert client.get("/health").json()["items"] == {"image": 11, "text": 11}
    assert traffic.statuses and set(traffic.statuses) == {200}


def test_added_items_are_served(served, tmp_path):
    index_dir, client = served
    photo = tmp_path / "collection" / "images" / "extra.jpg"
    Image.new("RGB", (40, 40), (30, 200, 40)).save(photo)
    (tmp_path / "collection" / "more.csv").write_text(
        "id,text,image_path\nextra,a naval harbour full of sail boats,images/extra.jpg\n"
    )
    index = EmbeddingIndex.load(index_dir, vectors=False)
    build_index(FakePipeline(), load_manifest(tmp_path / "collection" / "more.csv"),
                featurizer=fake_featurizer, index=index)
    with Traffic(client) as traffic:
        index.save_changes(index_dir)
        _until(lambda: client.get("/items/img-extra").status_code == 200)
    hits = client.post("/search/text", json={"query": "naval harbour sail", "k": 20}).json()
    assert "img-extra" in {hit["id"] for hit in hits["hits"]}  # searched, not only listed
    assert set(traffic.statuses) == {200}


def test_a_rebuild_over_the_served_index_is_served(served):
    index_dir, client = served
    index = EmbeddingIndex.load(index_dir)
    index.remove(["txt-music-2"])
    with Traffic(client) as traffic:
        index.save(index_dir)  # a full rewrite: the directory is swapped
        _until(lambda: client.get("/items/txt-music-2").status_code == 404)
    assert set(traffic.statuses) == {200}


def test_a_damaged_change_keeps_the_previous_state(served, caplog):
    index_dir, client = served
    faiss_file = index_dir / "text.faiss"
    index = EmbeddingIndex.load(index_dir)
    index.remove(["txt-music-3"])
    index.save(index_dir)
    faiss_file.write_bytes(faiss_file.read_bytes()[:-8])  # damaged after it was published
    _until(lambda: any("could not be loaded" in r.getMessage() for r in caplog.records))
    assert client.get("/health").status_code == 200
    assert client.post("/search/text", json={"query": "ship"}).status_code == 200


def test_a_retriever_not_opened_from_a_directory_cannot_watch():
    from fglab.retriever import Retriever

    index = EmbeddingIndex(3)
    index.add([], np.zeros((0, 3), np.float32))
    with pytest.raises(RuntimeError, match="opened from a directory"):
        Retriever(FakePipeline(), index).watch()
