"""Bearer-key authentication and scope checks for the JSON API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from approvals.auth.keys import KeyExpired, KeyRevoked, Principal, refusal, verify_key
from approvals.errors import ApiError, rate_limited


async def authenticate(
    connection: ASGIConnection[Any, Any, Any, Any], cached: bool = False
) -> Principal:
    """The caller's principal from ``Authorization: Bearer``; 401 when absent or wrong.

    ``cached``: the route writes only through the log's append, which confirms a
    cached key in its own transaction, so a key verified lately needs no lookup.
    """
    found = connection.scope.get("state", {}).get("principal")
    if isinstance(found, Principal):
        return found
    header = connection.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise ApiError(401, "unauthorized", "send an API key as 'Authorization: Bearer <key>'")
    services = connection.app.state.services
    principal = services.keys.get(key) if cached else None
    if principal is None:
        try:
            principal = await verify_key(services.engine, key)
        except (KeyExpired, KeyRevoked) as exc:
            raise refusal(exc) from None
        if principal is None:
            raise refusal(KeyRevoked())
        services.keys.put(key, principal)
    wait = await services.rates.take(principal.name, principal.rate)
    if wait:
        rate = principal.rate or services.rates.default
        raise rate_limited(f"the key {principal.name!r} is over its rate of {rate}", wait)
    connection.state.principal = principal
    return principal


def requires(scope: str, cached: bool = False) -> Any:
    """A guard that admits principals holding ``scope``; 403 names it otherwise.

    ``cached=True`` only on routes whose one write is the log's append, which
    confirms the key (see ``authenticate``).
    """

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = await authenticate(connection, cached)
        if not principal.allows(scope):
            raise ApiError(
                403,
                "forbidden",
                f"this key lacks the {scope!r} scope",
                scope=scope,
            )

    return guard


def hold_stream(connection: ASGIConnection[Any, Any, Any, Any]) -> Callable[[], None]:
    """Count one more open stream for the caller, or refuse it with 429; return the release.

    ``APPROVALS_MAX_STREAMS_PER_KEY`` caps the SSE streams one key holds open on
    one instance; the stream's response calls the release when it ends for any reason.
    """
    services = connection.app.state.services
    name = connection.state.principal.name
    if not services.streams.enter(name):
        raise rate_limited(
            f"the key {name!r} already holds {services.streams.limit} open streams "
            "(APPROVALS_MAX_STREAMS_PER_KEY); close one",
            5,
        )

    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            services.streams.leave(name)

    return release
