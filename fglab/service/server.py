"""Serving the app with uvicorn, with deadlines for slow clients and room for new ones.

uvicorn closes a connection only when it idles after a response (``timeout_keep_alive``): one
that never finishes its request line and headers, a byte at a time or not at all, stays open.
:func:`timed_protocol` adds that deadline; the body's is :class:`RequestBodyLimits`'s.

uvicorn answers 503 to every request once ``limit_concurrency`` connections are open, idle
ones included: 100 idle sockets locked everyone out. The protocol here makes room as a
connection opens: a client address holding ``max_per_client`` connections loses its
longest-idle one, and at the server's limit the longest-idle connection of anyone is closed.
Idle means no request in progress (waiting for a request head, or kept alive after a
response); a request in progress is never cut. A new connection that finds no idle one to
close beside its own address's busy ones gets a 503 with ``Retry-After`` at once.
"""

from __future__ import annotations

import asyncio
import time

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from fglab.service.limits import ServiceLimits

#: The largest request line plus headers accepted (h11's own default, stated here).
MAX_HEAD_BYTES = 16 * 1024


BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"retry-after: 1\r\nconnection: close\r\ncontent-length: 88\r\n\r\n"
    b'{"error": {"code": "unavailable", "message": "too many connections from this address"}}'
    b"\n"
)


def timed_protocol(
    head_timeout_s: float, max_per_client: int | None = None, max_connections: int | None = None
) -> type[H11Protocol]:
    """uvicorn's h11 protocol closing a connection whose request line and headers have not
    all arrived ``head_timeout_s`` seconds after it opened or after its previous response,
    and making room for new connections (module docstring)."""

    class TimedH11Protocol(H11Protocol):
        _head_deadline: asyncio.TimerHandle | None = None
        _idle_since: float = 0.0

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()
            make_room(self, max_per_client, max_connections)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def handle_events(self) -> None:
            super().handle_events()
            if self._in_request():
                self._disarm()  # the head is in: the body has its own deadline

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _in_request(self) -> bool:
            return self.cycle is not None and not self.cycle.response_complete

        def _arm(self) -> None:
            self._disarm()
            self._idle_since = time.monotonic()
            self._head_deadline = self.loop.call_later(head_timeout_s, self._head_timed_out)

        def _disarm(self) -> None:
            if self._head_deadline is not None:
                self._head_deadline.cancel()
                self._head_deadline = None

        def _head_timed_out(self) -> None:
            self._head_deadline = None
            if not self._in_request() and not self.transport.is_closing():
                self.transport.close()

    return TimedH11Protocol


def make_room(new, max_per_client: int | None, max_connections: int | None) -> None:
    """Close idle connections for the ``new`` one (module docstring); a 503 to ``new`` when
    its address holds ``max_per_client`` connections and none of them is idle."""
    others = [c for c in new.connections if c is not new]
    if max_per_client is not None:
        host = new.client[0] if new.client else None
        same = [c for c in others if (c.client[0] if c.client else None) == host]
        excess = len(same) + 1 - max_per_client
        if excess > 0 and _close_idle(new.connections, same, excess) < excess:
            new.transport.write(BUSY_RESPONSE)
            new.transport.close()
            new.connections.discard(new)
            return
    if max_connections is not None:  # uvicorn's 503 starts at max_connections open
        excess = len(new.connections) + 1 - max_connections
        if excess > 0:
            _close_idle(new.connections, others, excess)


def _close_idle(connections: set, candidates: list, count: int) -> int:
    """Close up to ``count`` of ``candidates`` idle longest; how many were closed."""
    idle = sorted((c for c in candidates if not c._in_request()),
                  key=lambda c: c._idle_since)[:count]
    for connection in idle:
        connection._disarm()
        connection.transport.close()
        connections.discard(connection)
    return len(idle)


def server_config(app, host: str, port: int, service: ServiceLimits, **kwargs) -> uvicorn.Config:
    """A uvicorn configuration for ``app`` with ``service``'s connection limits and deadlines."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=timed_protocol(service.head_timeout_s, service.max_connections_per_client,
                            service.max_connections),
        timeout_keep_alive=service.keep_alive_s,
        limit_concurrency=service.max_connections,
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        **kwargs,
    )
