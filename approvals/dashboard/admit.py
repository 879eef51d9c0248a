"""Who may change things from the dashboard: the one rule every form post goes through.

A dashboard route that changes state is declared with ``change(path, role=…)``,
which attaches the ``admitted`` guard: the CSRF token matches the session, the
session is live (its reviewer's session generation, which signing out, disabling
or changing the reviewer moves on), the reviewer is active, and holds the role
(``reviewer`` decides; ``admin`` also retries deliveries). ``check_routes`` runs
when the application is built and refuses any other state-changing route outside
the API, so a new form post cannot be registered without the rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal

from litestar import Request, post
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler, HTTPRouteHandler

from approvals.auth import sessions as session
from approvals.auth.users import live, reviewer
from approvals.core.errors import ApiError

Role = Literal["reviewer", "admin"]
ROLE = "dashboard_role"  # the handler option that records the role a route needs
ADMITTED = "approvals.admitted"  # where the guard leaves the session for the handler
# State-changing routes with their own rule: the API (keys and scopes), sign-in and
# sign-out (CSRF only: they change no data), and signed callbacks and links.
EXEMPT_PREFIXES = ("/v1/", "/hooks/")  # the API, and agent hooks with API keys
EXEMPT_PATHS = frozenset(
    {
        "/login",
        "/logout",
        "/slack/interactions",
        "/discord/interactions",
        "/teams/messages",
        "/email/{token:str}",
    }
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def admit(request: Request[Any, Any, Any], role: Role) -> session.Session:
    """The session of a live, active reviewer holding ``role`` who sent the right CSRF
    token; 403 for a bad token or a missing role, 401 for a session that has ended."""
    form = await request.form()
    current = await session.read(request)
    presented = request.headers.get(session.CSRF_HEADER) or form.get(session.CSRF_FIELD)
    session.check_csrf(current, str(presented) if presented is not None else None)
    assert current is not None
    found = await reviewer(request.app.state.services.engine, current.user or "")
    if found is None or not current.user or not live(found, current.generation):
        raise ApiError(401, "unauthorized", "your session has ended: sign in again")
    if role == "admin" and not found["is_admin"]:
        raise ApiError(
            403,
            "forbidden",
            "this needs an admin reviewer; an admin can grant it with: "
            "approvals users update NAME --admin",
        )
    return current


async def admitted(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """The guard ``change`` attaches: ``admit`` with the route's role."""
    request: Request[Any, Any, Any] = Request(connection.scope, connection.receive)
    connection.scope["state"][ADMITTED] = await admit(request, handler.opt[ROLE])


def current(request: Request[Any, Any, Any]) -> session.Session:
    """The session the guard admitted for this request."""
    found: session.Session = request.scope["state"][ADMITTED]
    return found


def change(path: str, *, role: Role = "reviewer", **options: Any) -> Callable[[Any], Any]:
    """A dashboard form post: ``litestar.post`` with the admission rule for ``role``."""
    opt = {**options.pop("opt", {}), ROLE: role}
    return post(path, include_in_schema=False, guards=[admitted], opt=opt, **options)


def check_routes(handlers: Iterable[Any]) -> None:
    """Refuse to build an application with a state-changing dashboard route that does not
    go through ``change`` (raised at start-up, so it is found by any test)."""
    for handler in handlers:
        if not isinstance(handler, HTTPRouteHandler) or handler.http_methods <= SAFE_METHODS:
            continue
        for path in handler.paths:
            if path.startswith(EXEMPT_PREFIXES) or path in EXEMPT_PATHS:
                continue
            if ROLE not in handler.opt or admitted not in (handler.guards or []):
                raise RuntimeError(
                    f"{sorted(handler.http_methods)} {path} changes state from the dashboard "
                    "but is not declared with approvals.dashboard.admit.change"
                )
