"""Headers on every response (no sniffing, no framing, a content security policy for the
page) and the ``Host`` names the service answers to (against DNS rebinding)."""

from __future__ import annotations

from collections.abc import Sequence

#: What a browser may be asked for by name when the service runs on this machine.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
#: The page loads its own script, style sheet and thumbnails, and talks to its own API only.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"referrer-policy", b"no-referrer"),
)


def allowed_hosts(extra: Sequence[str] = ()) -> list[str]:
    """The loopback names plus ``extra`` (``*`` allows any), lower-cased, IPv6 in brackets."""
    hosts = list(LOOPBACK_HOSTS)
    for host in extra:
        host = host.strip().lower()
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # a bare IPv6 address, as the Host header brackets it
        if host and host not in hosts:
            hosts.append(host)
    return hosts


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every HTTP response that does not set them itself."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in SECURITY_HEADERS if n not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
