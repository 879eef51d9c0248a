"""The ASGI application: Litestar, keeping the server's ``send`` and serving one route ahead.

``App`` is the Litestar application with two additions, both for the hot paths:
the server's own ``send`` is kept in each HTTP scope (``approvals.http.sse`` writes
stream bodies with it), and ``POST /v1/events`` and a decision, in their common
form, are answered by ``approvals.http.fastpath`` before Litestar routes them.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import msgspec
from litestar import Litestar

from approvals.core.errors import error_body
from approvals.http import fastpath

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


MAX_HEADER_BYTES = 64 * 1024  # request headers in all, names and values


def refusal(scope: Any) -> tuple[int, dict[str, Any]] | None:
    """What no route can serve, answered before routing (the same on both databases and
    on the fast path): headers over ``MAX_HEADER_BYTES`` in all (431), and a NUL character
    in the path or a query parameter (400 naming it), which PostgreSQL cannot compare."""
    if sum(len(name) + len(value) for name, value in scope["headers"]) > MAX_HEADER_BYTES:
        return 431, error_body(
            "too_large", f"the request headers exceed {MAX_HEADER_BYTES // 1024} KiB in all"
        )
    if "\x00" in scope["path"]:
        return 400, _nul("path")
    query: bytes = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if "\x00" in name or "\x00" in value:
                return 400, _nul(name.replace("\x00", "")[:100] or "query")
        return 400, _nul("query")
    return None


def _nul(field: str) -> dict[str, Any]:
    return error_body("invalid", f"{field}: must not contain NUL", field=field)


class App(Litestar):
    """The service's Litestar application (see the module's description)."""

    fast: fastpath.Table | None = None  # set by create_app from the routes' declarations

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Serve one ASGI connection."""
        if scope["type"] == "http":
            refused = refusal(scope)
            if refused is not None:
                status, body = refused
                await fastpath.answer(send, status, msgspec.json.encode(body), _ENCODED)
                return
            scope[RAW_SEND] = send
            fast = self.fast.match(scope) if self.fast is not None else None
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
