"""The HTTP service: endpoints, the page, and hostile input (always a clear 4xx, never a 500)."""

from __future__ import annotations

import http.client
import io
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from fglab.search import Limits
from fglab.service import create_app
from tests.index.fakes import COLOURS, build_fake_index, open_fake_retriever
from tests.service.live import live_server


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    return build_fake_index(tmp_path_factory.mktemp("service"))


@pytest.fixture(scope="module")
def app(index_dir):
    return create_app(open_fake_retriever(index_dir, limits=Limits(max_image_bytes=200_000)))


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def _jpeg(colour=COLOURS["boats"], size=(64, 64)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="JPEG")
    return out.getvalue()


def _error(response, status: int, code: str | None = None) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    if code:
        assert error["code"] == code
    return error["message"]


def test_health_page_and_openapi(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["items"] == {"image": 12, "text": 12}
    page = client.get("/")
    assert page.status_code == 200 and 'id="query"' in page.text
    assert client.get("/static/app.js").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/health",
        "/search/text",
        "/search/image",
        "/items/{item_id}",
        "/images/{item_id}",
    } <= set(paths)


def test_text_search_returns_ranked_hits_with_links(client):
    response = client.post("/search/text", json={"query": "dog and horse at the zoo", "k": 3})
    body = response.json()
    assert response.status_code == 200 and body["kind"] == "text" and body["target"] == "image"
    assert [h["category"] for h in body["hits"]] == ["animals"] * 3
    hit = body["hits"][0]
    assert hit["item_url"] == f"/items/{hit['id']}" and hit["image_url"] == f"/images/{hit['id']}"
    assert client.get(hit["image_url"]).headers["content-type"] == "image/jpeg"
    item = client.get(hit["item_url"]).json()
    assert item["category"] == "animals" and item["paired_item_url"].startswith("/items/txt-")


def test_image_search_returns_texts(client):
    files = {"file": ("q.jpg", _jpeg(COLOURS["music"]), "image/jpeg")}
    body = client.post("/search/image", files=files, data={"k": "2"}).json()
    assert [h["category"] for h in body["hits"]] == ["music", "music"]
    assert body["hits"][0]["modality"] == "text"


@pytest.mark.parametrize("query", ["", "    ", "\n"])
def test_empty_query(client, query):
    assert "empty" in _error(client.post("/search/text", json={"query": query}), 400)


def test_one_megabyte_query(client, index_dir):
    response = client.post("/search/text", json={"query": "ship " * 200_000})
    assert "at most" in _error(response, 413, "too_large")  # refused by the body limit
    with TestClient(create_app(open_fake_retriever(index_dir))) as roomy:  # 10 MB uploads
        response = roomy.post("/search/text", json={"query": "ship " * 200_000})
        assert "1000000 characters" in _error(response, 413, "too_large")


@pytest.mark.parametrize("k", [0, -1, 101, 10**30])
def test_k_out_of_range(client, k):
    message = _error(client.post("/search/text", json={"query": "ship", "k": k}), 400)
    assert "k must be between 1 and 100" in message
    files = {"file": ("q.jpg", _jpeg(), "image/jpeg")}
    response = client.post("/search/image", files=files, data={"k": str(k)})
    assert "k must be between" in _error(response, 400)


@pytest.mark.parametrize("body", [{"query": 5}, {"k": 3}, {"query": "x", "k": "many"}, [1]])
def test_malformed_json_bodies(client, body):
    _error(client.post("/search/text", json=body), 422, "invalid_request")
    broken = client.post(
        "/search/text", content=b"{not json", headers={"content-type": "application/json"}
    )
    _error(broken, 422, "invalid_request")


def test_non_image_upload(client):
    files = {"file": ("notes.txt", b"just some words", "text/plain")}
    assert "not an image" in _error(client.post("/search/image", files=files), 415)


def test_truncated_jpeg(client):
    noise = Image.effect_noise((256, 256), 64).convert("RGB")
    out = io.BytesIO()
    noise.save(out, format="JPEG")
    files = {"file": ("cut.jpg", out.getvalue()[: len(out.getvalue()) // 2], "image/jpeg")}
    assert "truncated" in _error(client.post("/search/image", files=files), 422)


def test_decompression_bomb(client):
    bomb = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(bomb, format="PNG")
    files = {"file": ("bomb.png", bomb.getvalue(), "image/png")}
    assert "pixels" in _error(client.post("/search/image", files=files), 413, "too_large")


def test_upload_over_the_size_limit(client):
    big = b"\xff\xd8\xff" + b"\0" * 500_000
    files = {"file": ("big.jpg", big, "image/jpeg")}
    assert "at most" in _error(client.post("/search/image", files=files), 413, "too_large")


def test_missing_upload_and_empty_upload(client):
    _error(client.post("/search/image", data={"k": "3"}), 422, "invalid_request")
    files = {"file": ("empty.jpg", b"", "image/jpeg")}
    _error(client.post("/search/image", files=files), 400)


@pytest.mark.parametrize(
    "item_id", ["%2e%2e", "..%2F..%2Fetc%2Fpasswd", "a%00b", "%252e%252e%252fetc", "x" * 300]
)
def test_tricky_ids_are_refused(client, item_id):
    """Encoded tricks through the test client; raw ``../`` goes over a socket below."""
    for prefix in ("/items/", "/images/"):
        response = client.get(prefix + item_id)
        assert 400 <= response.status_code < 500, (prefix, item_id, response.status_code)
        assert "error" in response.json() and "root:" not in response.text


def test_unknown_items_and_items_without_image(client):
    _error(client.get("/items/img-nothing"), 404, "not_found")
    _error(client.get("/images/img-nothing"), 404, "not_found")
    _error(client.get("/nowhere"), 404, "not_found")
    _error(client.put("/search/text"), 405, "method_not_allowed")


def test_raw_dot_segments_over_a_real_socket_never_reach_a_file(app):
    with live_server(app) as base:
        host = urlsplit(base)
        for path in (
            "/items/../../../../etc/passwd",
            "/images/..%2f..%2f..%2fetc%2fpasswd",
            "/static/../../../../etc/passwd",
            "/static/%2e%2e/%2e%2e/etc/passwd",
            "/images/img-boats-0/../../../etc/passwd",
        ):
            connection = http.client.HTTPConnection(host.hostname, host.port, timeout=10)
            connection.request("GET", path)
            response = connection.getresponse()
            body = response.read()
            connection.close()
            assert 400 <= response.status < 500, (path, response.status)
            assert b"root:" not in body


def test_chunked_upload_over_the_limit_is_refused_while_streaming(app):
    with live_server(app) as base:
        host = urlsplit(base)
        connection = http.client.HTTPConnection(host.hostname, host.port, timeout=10)
        chunks = (b"x" * 65536 for _ in range(8))  # 512 KB without a Content-Length
        connection.request(
            "POST",
            "/search/image",
            body=chunks,
            headers={"Content-Type": "multipart/form-data; boundary=b"},
            encode_chunked=True,
        )
        response = connection.getresponse()
        assert response.status == 413 and b"too_large" in response.read()
        connection.close()
