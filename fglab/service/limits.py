"""A pure ASGI middleware that refuses request bodies over a size limit before they are read."""

from __future__ import annotations

import json


class BodySizeLimit:
    """413 for a body over ``max_bytes``, by its Content-Length or while it streams in."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                await _error(send, 400, "bad_request", "Content-Length is not a number")
                return
            if int(length) > self.max_bytes:
                await _error(send, 413, "too_large", self._message(int(length)))
                return
            await self.app(scope, receive, send)
            return
        await self._buffered(scope, receive, send)

    async def _buffered(self, scope, receive, send) -> None:
        """A body without Content-Length (chunked) is read up to the limit, then replayed."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await _error(send, 413, "too_large", self._message(size, "at least "))
                return
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def _message(self, size: int, prefix: str = "") -> str:
        return f"request body has {prefix}{size} bytes; at most {self.max_bytes} accepted"


async def _error(send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
