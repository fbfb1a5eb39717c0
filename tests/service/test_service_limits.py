"""What one client may cost the service, and what every answer carries: Host names answered,
security headers, body limits per endpoint, deadlines for slow clients, bounded uploads."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from fglab.service import create_app
from fglab.service.headers import CONTENT_SECURITY_POLICY
from fglab.service.limits import ServiceLimits
from fglab.service.server import server_config
from tests.index.fakes import build_fake_index, open_fake_retriever
from tests.service.live import live_server


@pytest.fixture(scope="module")
def retriever(tmp_path_factory):
    return open_fake_retriever(build_fake_index(tmp_path_factory.mktemp("limits")))


@pytest.fixture(scope="module")
def app(retriever):
    return create_app(retriever)


def _connect(base: str) -> socket.socket:
    url = urlsplit(base)
    return socket.create_connection((url.hostname, url.port), timeout=10)


def _closed(sock: socket.socket) -> bool:
    """Whether the server closed the connection without answering."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]", "localhost:8000"])
def test_loopback_names_are_answered(app, host):
    with TestClient(app, base_url=f"http://{host}") as client:
        assert client.get("/health").status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "testserver", "localhost.evil.example"])
def test_other_host_names_are_refused_against_dns_rebinding(app, host):
    with TestClient(app, base_url=f"http://{host}") as client:
        response = client.get("/health")
        assert response.status_code == 400 and "host" in response.text.lower()


def test_allowed_hosts_are_configurable(retriever):
    app = create_app(retriever, hosts=["search.example", "10.0.0.5", "fe80::1"])
    for host in ("search.example", "10.0.0.5:8000", "[fe80::1]:8000", "localhost"):
        with TestClient(app, base_url=f"http://{host}") as client:
            assert client.get("/health").status_code == 200, host
    with TestClient(app, base_url="http://other.example") as client:
        assert client.get("/health").status_code == 400
    with TestClient(create_app(retriever, hosts=["*"]), base_url="http://any.example") as client:
        assert client.get("/health").status_code == 200


def test_every_answer_carries_the_security_headers(app):
    with TestClient(app, base_url="http://localhost") as client:
        for response in (
            client.get("/"),
            client.get("/static/app.js"),
            client.get("/health"),
            client.get("/nowhere"),
            client.post("/search/text", content=b"x" * 100_000),
        ):
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY


def test_docs_are_not_served_but_the_openapi_document_is(app):
    with TestClient(app, base_url="http://localhost") as client:
        assert client.get("/docs").status_code == 404 and client.get("/redoc").status_code == 404
        assert client.get("/openapi.json").json()["paths"]


def test_each_endpoint_has_its_own_body_limit(app):
    with TestClient(app, base_url="http://localhost") as client:
        response = client.post("/search/text", json={"query": "ship " * 10_000})
        assert response.status_code == 413
        assert "at most 28096" in response.json()["error"]["message"]
        response = client.post("/search/text", json={"query": "\U0001f6a2" * 2000})
        assert response.status_code == 200  # the longest query, every character escaped
        response = client.request("GET", "/health", content=b"x" * 10_000)
        assert response.status_code == 413
        upload = {"file": ("big.jpg", b"\xff\xd8\xff" + b"\0" * 1_000_000, "image/jpeg")}
        response = client.post("/search/image", files=upload)  # 10 MB uploads here
        assert response.json()["error"]["code"] == "not_an_image"


def test_a_body_that_does_not_arrive_in_time_gets_408(retriever):
    app = create_app(retriever, service=ServiceLimits(body_timeout_s=0.5))
    with live_server(app) as base, _connect(base) as sock:
        sock.sendall(
            b"POST /search/text HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{\"query\": "
        )
        started = time.monotonic()
        answer = _read_all(sock)
        assert answer.startswith(b"HTTP/1.1 408") and b'"timeout"' in answer
        assert time.monotonic() - started < 5


def test_a_request_head_that_does_not_arrive_in_time_closes_the_connection(app):
    config = server_config(
        app, "127.0.0.1", 0, ServiceLimits(head_timeout_s=0.5), log_level="warning"
    )
    config.lifespan = "off"
    with live_server(app, config) as base:
        silent, trickling = _connect(base), _connect(base)
        with silent, trickling:
            started = time.monotonic()
            try:
                for byte in b"GET /health HTTP/1.1\r\nX: y\r\n" * 10:  # a byte per 0.1 s
                    trickling.sendall(bytes([byte]))
                    time.sleep(0.1)
            except (BrokenPipeError, ConnectionResetError):
                pass
            assert _closed(silent) and _closed(trickling)
            assert time.monotonic() - started < 5
        with _connect(base) as prompt:  # a prompt client is served as before
            prompt.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            assert _read_all(prompt).startswith(b"HTTP/1.1 200")


def test_uploads_at_once_are_bounded_and_text_search_goes_on(retriever):
    app = create_app(retriever, service=ServiceLimits(max_uploads=1))
    with live_server(app) as base, _connect(base) as slow:
        slow.sendall(  # an upload whose body is slow to come holds the only slot
            b"POST /search/image HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 1000\r\n\r\n--b"
        )
        time.sleep(0.3)
        with httpx.Client(base_url=base, headers={"host": "localhost"}, timeout=10) as other:
            files = {"file": ("q.jpg", b"\xff\xd8\xff", "image/jpeg")}
            busy = other.post("/search/image", files=files)
            assert busy.status_code == 503 and busy.json()["error"]["code"] == "busy"
            assert busy.headers["retry-after"] == "1"
            assert other.post("/search/text", json={"query": "ship"}).status_code == 200


def test_server_config_sets_the_deadlines_and_connection_limits(app):
    service = ServiceLimits()
    config = server_config(app, "127.0.0.1", 8000, service)
    assert config.timeout_keep_alive == service.keep_alive_s
    assert config.limit_concurrency == service.max_connections
    assert config.h11_max_incomplete_event_size == 16 * 1024
    assert issubclass(config.http, object) and config.http.__name__ == "TimedH11Protocol"


def test_served_hosts_add_the_address_served_on():
    from fglab.cli.search import served_hosts

    assert served_hosts("127.0.0.1", "") == []
    assert served_hosts("0.0.0.0", "") == []
    assert served_hosts("192.168.1.5", "") == ["192.168.1.5"]
    assert served_hosts("0.0.0.0", "search.lan, other.lan") == ["search.lan", "other.lan"]


def _still_open(sock: socket.socket) -> bool:
    """Whether the server keeps the connection open (nothing to read within 0.3 s)."""
    sock.settimeout(0.3)
    try:
        return sock.recv(1) != b""
    except TimeoutError:
        return True
    except ConnectionResetError:
        return False


def _served_config(app, service: ServiceLimits):
    config = server_config(app, "127.0.0.1", 0, service, log_level="warning")
    config.lifespan = "off"
    return config


def _health_over(sock: socket.socket) -> bytes:
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    return _read_all(sock)


def test_a_new_client_is_answered_while_100_idle_connections_are_held(app):
    """All from 127.0.0.1: the idle ones of that address yield, longest idle first."""
    with live_server(app, _served_config(app, ServiceLimits())) as base:
        idle = [_connect(base) for _ in range(100)]
        try:
            time.sleep(0.3)
            for _ in range(3):
                with _connect(base) as fresh:
                    assert _health_over(fresh).startswith(b"HTTP/1.1 200")
            assert sum(not _still_open(sock) for sock in idle) >= 80  # 20 per address at most
        finally:
            for sock in idle:
                sock.close()


def test_a_request_in_progress_is_never_cut_to_make_room(retriever):
    service = ServiceLimits(max_connections_per_client=2, max_uploads=4)
    app = create_app(retriever, service=service)
    with live_server(app, _served_config(app, service)) as base:
        busy = [_connect(base) for _ in range(2)]
        for sock in busy:  # two requests whose bodies are still coming
            sock.sendall(b"POST /search/text HTTP/1.1\r\nHost: localhost\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 30\r\n\r\n{")
        time.sleep(0.3)
        with _connect(base) as third:  # no idle one to close: this one is told to come back
            answer = _read_all(third)
        assert answer.startswith(b"HTTP/1.1 503") and b"retry-after: 1" in answer.lower()
        for sock in busy:
            sock.sendall(b'"query": "ship", "k": 3}' + b" " * 5)
            assert _read_all(sock).startswith(b"HTTP/1.1 200")
            sock.close()


def test_the_server_wide_limit_closes_the_longest_idle_connection_of_anyone(app):
    service = ServiceLimits(max_connections=5, max_connections_per_client=50)
    with live_server(app, _served_config(app, service)) as base:
        idle = [_connect(base) for _ in range(4)]
        time.sleep(0.2)
        try:
            with _connect(base) as fresh:
                assert _health_over(fresh).startswith(b"HTTP/1.1 200")
            assert not _still_open(idle[0]) and all(_still_open(s) for s in idle[2:])
        finally:
            for sock in idle:
                sock.close()
