"""A shard with no live replica is a retryable outage: 503 with ``Retry-After``, documented in
the OpenAPI document; other unavailable searches stay 400. No Ray: the index's vectors are
shard parts that fail as a cluster shard with no replica fails."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from fglab.index.shards import sharded_modalities
from fglab.retriever import ShardUnavailableError, UnavailableError
from fglab.service import create_app
from tests.index.fakes import COLOURS, build_fake_index, open_fake_retriever

BASE = "http://localhost"


class DownShard:
    """A shard part whose every replica is gone."""

    def submit(self, queries: np.ndarray, k: int):
        def wait():
            raise ShardUnavailableError("shard 1 did not answer within 10 s: no live replica")

        return wait


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    retriever = open_fake_retriever(build_fake_index(tmp_path_factory.mktemp("down")))
    index = retriever.index
    parts = {m: [DownShard()] for m in index.kinds}
    index.attach_vectors(sharded_modalities(parts, index.kinds,
                                            {m: index.count(m) for m in index.kinds}))
    with TestClient(create_app(retriever), base_url=BASE, raise_server_exceptions=False) as c:
        yield c


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), COLOURS["boats"]).save(out, format="JPEG")
    return out.getvalue()


def _assert_retry_later(response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "2"
    error = response.json()["error"]
    assert error["code"] == "shard_unavailable" and "no live replica" in error["message"]


def test_a_shard_that_is_down_is_503_with_retry_after(client):
    _assert_retry_later(client.post("/search/text", json={"query": "dog at the zoo", "k": 3}))
    files = {"file": ("q.jpg", _jpeg(), "image/jpeg")}
    _assert_retry_later(client.post("/search/image", files=files, data={"k": "2"}))
    assert client.get("/health").status_code == 200  # the rest of the service answers


def test_other_unavailable_searches_stay_400(client, monkeypatch):
    retriever = client.app.state.retriever

    def cannot_embed(query, k=10, target="image"):
        raise UnavailableError("text search is not available: this run embeds no text")

    monkeypatch.setattr(retriever, "search_text", cannot_embed)
    response = client.post("/search/text", json={"query": "dog", "k": 3})
    assert response.status_code == 400 and "retry-after" not in response.headers
    assert response.json()["error"]["code"] == "unavailable"


def test_the_openapi_document_states_the_503(client):
    paths = client.get("/openapi.json").json()["paths"]
    for route in ("/search/text", "/search/image"):
        answer = paths[route]["post"]["responses"]["503"]
        assert "shard_unavailable" in answer["description"]
        assert answer["headers"]["Retry-After"]["schema"] == {"type": "integer"}
