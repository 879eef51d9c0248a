"""Bearer-key authentication and scope checks for the JSON API."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from approvals.auth.keys import KeyExpired, KeyRevoked, Principal, refusal, verify_key
from approvals.core.errors import ApiError, rate_limited

if TYPE_CHECKING:
    from approvals.services import Services


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
    key = bearer_key(connection.headers.get("authorization", ""))
    if key is None:
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
    await take_rate(services, principal)
    connection.state.principal = principal
    return principal


def bearer_key(header: str) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header, or None."""
    scheme, _, key = header.partition(" ")
    key = key.strip()
    return key if scheme.lower() == "bearer" and key else None


def cached_admission(services: Services, header: str, scope: str) -> Principal | None:
    """The fast path's admission: the principal of a key verified lately that holds
    ``scope``, or None, and the documented route then admits or refuses it (401, 403)."""
    key = bearer_key(header)
    principal = services.keys.get(key) if key is not None else None
    return principal if principal is not None and principal.allows(scope) else None


async def take_rate(services: Services, principal: Principal) -> None:
    """Spend one request of the key's rate; 429 with ``Retry-After`` when it is over."""
    wait = await services.rates.take(principal.name, principal.rate)
    if wait:
        rate = principal.rate or services.rates.default
        raise rate_limited(f"the key {principal.name!r} is over its rate of {rate}", wait)


@dataclass(frozen=True)
class Requires:
    """The guard of an API route: admits principals holding ``scope``; 403 names it
    otherwise. ``cached`` routes write only through the log's append, which confirms the
    key (see ``authenticate``); they are exactly the routes the fast path serves."""

    scope: str
    cached: bool = False

    async def __call__(
        self, connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
    ) -> None:
        """Admit the caller or raise 401, 403 or 429."""
        principal = await authenticate(connection, self.cached)
        if not principal.allows(self.scope):
            raise ApiError(
                403,
                "forbidden",
                f"this key lacks the {self.scope!r} scope",
                scope=self.scope,
            )


def requires(scope: str, cached: bool = False) -> Requires:
    """A guard that admits principals holding ``scope`` (see ``Requires``)."""
    return Requires(scope, cached)


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
