"""What the service spends on one client: body sizes per endpoint, time to send a body, and
how many image uploads run at once. Pure ASGI middlewares, so they act before a body is parsed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import anyio

#: JSON escapes one character in at most 12 bytes (a surrogate pair, ``\\ud83d\\ude00``).
JSON_BYTES_PER_CHAR = 12
#: Multipart framing around an uploaded image, allowed on top of the image byte limit.
UPLOAD_OVERHEAD = 64 * 1024


@dataclass(frozen=True)
class ServiceLimits:
    """Per-client limits of the HTTP service (the retriever's :class:`Limits` bound queries)."""

    body_timeout_s: float = 30.0  # a request body must arrive within this time
    head_timeout_s: float = 10.0  # a request line and headers must arrive within this time
    keep_alive_s: int = 5  # idle time after a response before the connection is closed
    max_uploads: int = 4  # image searches in progress at once; more get 503
    max_connections: int = 100  # open connections and tasks; more get uvicorn's 503
    max_connections_per_client: int = 20  # per client address; its longest-idle one yields
    other_body_bytes: int = 4 * 1024  # requests other than the two searches carry no body


def text_body_bytes(max_query_chars: int) -> int:
    """The largest JSON body a text query of ``max_query_chars`` characters needs."""
    return JSON_BYTES_PER_CHAR * max_query_chars + 4 * 1024


class RequestBodyLimits:
    """Reads each request body before the app does: 413 once it is over its path's limit
    (by Content-Length or while it streams in), 408 if it does not arrive within
    ``timeout_s``. The app then reads the buffered body."""

    def __init__(self, app, limits: dict[str, int], default: int, timeout_s: float) -> None:
        self.app = app
        self.limits = limits
        self.default = default
        self.timeout_s = timeout_s

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.default)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and not length.isdigit():
            await send_error(send, 400, "bad_request", "Content-Length is not a number")
            return
        if length is not None and int(length) > limit:
            await send_error(send, 413, "too_large", _too_large(int(length), limit))
            return
        body, size = None, 0
        with anyio.move_on_after(self.timeout_s) as deadline:
            body, size = await _read_body(receive, limit)
        if deadline.cancelled_caught:
            message = f"the request body did not arrive within {self.timeout_s:g} s"
            await send_error(send, 408, "timeout", message, [(b"connection", b"close")])
            return
        if body is None:
            await send_error(send, 413, "too_large", _too_large(size, limit, "at least "))
            return
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def _read_body(receive, limit: int) -> tuple[bytes | None, int]:
    """(the whole body, its size), or (None, bytes read) once it exceeds ``limit``."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > limit:
            return None, size
        if not message.get("more_body", False):
            break
    return b"".join(chunks), size


def _too_large(size: int, limit: int, prefix: str = "") -> str:
    return f"request body has {prefix}{size} bytes; at most {limit} accepted"


class ConcurrencyLimit:
    """At most ``max_active`` requests to ``path`` at once, counted from their first byte (a
    slow upload holds its slot); the next one gets 503 at once instead of queueing."""

    def __init__(self, app, path: str, max_active: int) -> None:
        self.app = app
        self.path = path
        self.max_active = max_active
        self.active = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        if self.active >= self.max_active:
            message = f"{self.max_active} image searches are already running; try again shortly"
            await send_error(send, 503, "busy", message, [(b"retry-after", b"1")])
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1


async def send_error(send, status: int, code: str, message: str, headers=()) -> None:
    """A JSON error response ``{"error": {code, message}}`` sent straight over ASGI."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
