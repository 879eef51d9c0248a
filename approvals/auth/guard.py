"""Bearer-key authentication and scope checks for the JSON API."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from approvals.auth.keys import Principal, verify_key
from approvals.errors import ApiError


async def authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """The caller's principal from ``Authorization: Bearer``; 401 when absent or wrong."""
    cached = connection.scope.get("state", {}).get("principal")
    if isinstance(cached, Principal):
        return cached
    header = connection.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(401, "unauthorized", "send an API key as 'Authorization: Bearer <key>'")
    services = connection.app.state.services
    principal = await verify_key(services.engine, key.strip())
    if principal is None:
        raise ApiError(401, "unauthorized", "the API key is unknown or revoked")
    connection.state.principal = principal
    return principal


def requires(scope: str) -> Any:
    """A guard that admits principals holding ``scope``; 403 names it otherwise."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = await authenticate(connection)
        if not principal.allows(scope):
            raise ApiError(
                403,
                "forbidden",
                f"this key lacks the {scope!r} scope",
                scope=scope,
            )

    return guard
