"""The ASGI application: Litestar, keeping the server's ``send`` and serving one route ahead.

``App`` is the Litestar application with two additions, both for the hot paths:
the server's own ``send`` is kept in each HTTP scope (``approvals.sse`` writes
stream bodies with it), and ``POST /v1/events`` and a decision, in their common
form, are answered by ``approvals.events.fastpath`` before Litestar routes them.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar

from approvals.events import fastpath

RAW_SEND = "approvals.raw_send"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
_ENCODED = [(name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS.items()]


class App(Litestar):
    """The service's Litestar application (see the module's description)."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Serve one ASGI connection."""
        if scope["type"] == "http":
            scope[RAW_SEND] = send
            fast = fastpath.route_of(scope)
            if fast is not None:
                route, path_id = fast
                headers = [*_ENCODED, HSTS] if scope.get("scheme") == "https" else _ENCODED
                services = self.state.services
                receive = await fastpath.serve(
                    route, path_id, services, scope, receive, send, headers
                )
                if receive is None:
                    return
        await super().__call__(scope, receive, send)
