"""The HTTP service: endpoints, the page, and hostile input (always a clear 4xx, never a 500)."""

from __future__ import annotations

import http.client
import io
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from fglab.index.store import ITEM_ID
from fglab.retriever import Limits
from fglab.service import create_app
from tests.index.fakes import COLOURS, build_fake_index, open_fake_retriever
from tests.service.live import live_server

BASE = "http://localhost"  # the service answers loopback names only, unless told otherwise


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    return build_fake_index(tmp_path_factory.mktemp("service"))


@pytest.fixture(scope="module")
def app(index_dir):
    return create_app(open_fake_retriever(index_dir, limits=Limits(max_image_bytes=200_000)))


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as test_client:
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


@pytest.mark.parametrize("query", ["", "    ", "\n", "\u200b", "\ufeff\u200b ", "\u00a0"])
def test_empty_query(client, query):
    assert "empty" in _error(client.post("/search/text", json={"query": query}), 400)


def test_one_megabyte_query(client, index_dir):
    response = client.post("/search/text", json={"query": "ship " * 200_000})
    assert "at most" in _error(response, 413, "too_large")  # refused by the body limit
    with TestClient(create_app(open_fake_retriever(index_dir)), base_url=BASE) as roomy:
        # 10 MB uploads, yet a text query's body is held to what 2,000 characters need
        response = roomy.post("/search/text", json={"query": "ship " * 200_000})
        assert "at most 28096 accepted" in _error(response, 413, "too_large")
        response = roomy.post("/search/text", json={"query": "s" * 2001})
        assert "at most 2000 characters" in _error(response, 422, "invalid_request")


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


@pytest.mark.parametrize("k", [True, False, 3.5, "3", None, [3]])
def test_k_must_be_a_json_integer(client, k):
    response = client.post("/search/text", json={"query": "ship", "k": k})
    assert "body.k" in _error(response, 422, "invalid_request")


def test_k_may_be_written_as_an_integral_number(client):
    response = client.post("/search/text", json={"query": "ship", "k": 3.0})  # JSON Schema's
    assert response.status_code == 200 and response.json()["k"] == 3


def test_method_not_allowed_names_the_allowed_methods(client):
    response = client.delete("/search/text")
    _error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "POST"
    assert client.post("/health").headers["allow"] == "GET"


def test_openapi_states_what_the_server_enforces(client):
    document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    query = schemas["TextQuery"]
    assert query["additionalProperties"] is False
    text = query["properties"]["query"]
    assert (text["minLength"], text["maxLength"]) == (1, 2000) and "pattern" in text
    assert (query["properties"]["k"]["minimum"], query["properties"]["k"]["maximum"]) == (1, 100)
    upload_ref = document["paths"]["/search/image"]["post"]["requestBody"]["content"]
    upload = schemas[upload_ref["multipart/form-data"]["schema"]["$ref"].split("/")[-1]]
    assert upload["properties"]["file"]["minLength"] == 1
    assert upload["properties"]["k"]["maximum"] == 100
    assert upload["properties"]["target"]["enum"] == ["image", "text"]
    for path in ("/items/{item_id}", "/images/{item_id}"):
        [parameter] = document["paths"][path]["get"]["parameters"]
        assert parameter["schema"]["pattern"] == ITEM_ID.pattern


def test_whitespace_queries_match_the_documented_pattern_exactly():
    import re

    from fglab.retriever import is_blank
    from fglab.service.schemas import QUERY_PATTERN

    pattern = re.compile(QUERY_PATTERN)
    for code in range(0x110000):  # the pattern finds a character iff the retriever keeps it
        assert (pattern.search(chr(code)) is None) == is_blank(chr(code)), hex(code)


def test_16_bit_and_float_uploads_are_searched(index_dir):
    from fglab.retriever import Retriever
    from tests.index.fakes import FakePipeline, decoding_upload_featurizer

    retriever = Retriever.open(index_dir, FakePipeline.load, featurizer=decoding_upload_featurizer)
    with TestClient(create_app(retriever), base_url=BASE) as local:
        for mode, value, fmt in (("I;16", 40000, "PNG"), ("I", 40000, "TIFF"), ("F", 0.5, "TIFF")):
            out = io.BytesIO()
            Image.new(mode, (64, 64), value).save(out, format=fmt)
            files = {"file": (f"deep.{fmt.lower()}", out.getvalue(), "image/png")}
            response = local.post("/search/image", files=files)
            assert response.status_code == 200, (mode, response.text)


def test_image_over_the_pixel_limit_below_pillows_is_too_large(client):
    image = io.BytesIO()
    Image.new("1", (8_000, 6_000)).save(image, format="PNG")  # 48 megapixels: ours is 40
    files = {"file": ("big.png", image.getvalue(), "image/png")}
    message = _error(client.post("/search/image", files=files), 413, "too_large")
    assert "8000 x 6000 pixels" in message


@pytest.mark.parametrize("field", ["k", "target"])
def test_empty_form_fields_are_refused_not_defaulted(client, field):
    files = {"file": ("q.jpg", _jpeg(), "image/jpeg")}
    response = client.post("/search/image", files=files, data={field: ""})
    assert f"body.{field}: must not be empty" in _error(response, 422, "invalid_request")


def test_form_fields_sent_twice_are_refused_not_last_one_wins(client):
    files = [("file", ("q.jpg", _jpeg(), "image/jpeg")), ("k", (None, "abc")), ("k", (None, "2"))]
    response = client.post("/search/image", files=files)
    assert "body.k: given 2 times" in _error(response, 422, "invalid_request")
    files = [("file", ("a.jpg", _jpeg(), "image/jpeg")), ("file", ("b.jpg", _jpeg(), "image/jpeg"))]
    assert "body.file: given 2 times" in _error(client.post("/search/image", files=files), 422)


def test_a_query_the_model_cannot_read_says_so_in_the_response(client):
    unread = client.post("/search/text", json={"query": "\U0001f642\U0001f642 !!"}).json()
    assert unread["hits"] and "known to the model" in unread["note"]
    assert client.post("/search/text", json={"query": "ship"}).json()["note"] is None
