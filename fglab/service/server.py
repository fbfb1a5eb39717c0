"""Serving the app with uvicorn, with deadlines for slow clients.

uvicorn closes a connection only when it idles after a response (``timeout_keep_alive``): one
that never finishes its request line and headers, a byte at a time or not at all, stays open.
:func:`timed_protocol` adds that deadline; the body's is :class:`RequestBodyLimits`'s.
"""

from __future__ import annotations

import asyncio

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from fglab.service.limits import ServiceLimits

#: The largest request line plus headers accepted (h11's own default, stated here).
MAX_HEAD_BYTES = 16 * 1024


def timed_protocol(head_timeout_s: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol closing a connection whose request line and headers have not
    all arrived ``head_timeout_s`` seconds after it opened or after its previous response."""

    class TimedH11Protocol(H11Protocol):
        _head_deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

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


def server_config(app, host: str, port: int, service: ServiceLimits, **kwargs) -> uvicorn.Config:
    """A uvicorn configuration for ``app`` with ``service``'s connection limits and deadlines."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=timed_protocol(service.head_timeout_s),
        timeout_keep_alive=service.keep_alive_s,
        limit_concurrency=service.max_connections,
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        **kwargs,
    )
