"""The hottest writes, served as plain ASGI ahead of Litestar in their common form.

Agents post one event per token or tool call (``POST /v1/events``) and open an
approval per risky step (``POST /v1/approvals``), and an incident queue means
hundreds of decisions in minutes (``POST /v1/approvals/{id}/decision``). For
each, Litestar's generic path (routing, a copy of the handler per guard,
response objects, send wrappers) cost about as much CPU as the write itself.
This path takes such a request only when it can answer it without anything
Litestar adds: no query string, a JSON body with a ``Content-Length`` within
the limit, and a key already
verified (cached) that holds the route's scope. It runs the same checks (the
body's, then the key's rate) and the same write as the documented route, and
answers the same JSON. Anything else, and any body the checks refuse, is
handed to Litestar with the body replayed, so every refusal that comes before
the write (401, 403, 413, 415 and every 400 or 422 about the body) is answered
by the one documented route, in its words. Refusals of the write itself (the
rate, a revoked key, 404, 409) are answered here, in the same JSON.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from approvals.core.contract import JSON_TYPES, convert, decode_body
from approvals.core.errors import ApiError, error_body
from approvals.core.outbound import parse as parse_destinations
from approvals.events.schema import parse_batch
from approvals.http.guard import Requires, cached_admission, take_rate
from approvals.queue import service
from approvals.queue.schema import (
    ApprovalCreate,
    ApprovalOut,
    DecisionIn,
    check_decision,
    request_row,
)

if TYPE_CHECKING:
    from approvals.services import Services

log = logging.getLogger("approvals")

Headers = list[tuple[bytes, bytes]]
DECISION_PREFIX, DECISION_SUFFIX = "/v1/approvals/", "/decision"
MAX_ID = 200  # the documented route's limit on an approval id


@dataclass(frozen=True)
class Route:
    """One fast route: the scope its key needs, its body check and its write.

    ``check`` turns the decoded body (the path's id, the services) into what ``write`` takes,
    raising ``ApiError`` or ``msgspec.ValidationError`` to hand the request to
    Litestar; ``write`` answers ``(status, JSON-ready value)`` or raises ``ApiError``.
    """

    name: str
    scope: str
    check: Callable[[Any, str, Any], Any]
    write: Callable[[Any, Any, Any], Awaitable[tuple[int, Any]]]


def _check_events(raw: Any, _: str, __: Any) -> tuple[Any, list[dict[str, Any]]]:
    return raw, parse_batch(raw)


async def _append(services: Services, principal: Any, checked: Any) -> tuple[int, Any]:
    raw, rows = checked
    stored = await services.log.append(rows, principal.name, principal.confirm)
    # Already the canonical JSON (``to_json``: EventOut's fields, in its order), answered
    # as it is: converting it to EventOut first only re-checked what the log just wrote.
    return 201, stored if isinstance(raw, list) else stored[0]


def _check_decision(raw: Any, approval_id: str, _: Any) -> tuple[str, dict[str, Any]]:
    return approval_id, check_decision(msgspec.convert(raw, DecisionIn, strict=True))


async def _decide(services: Services, principal: Any, checked: Any) -> tuple[int, Any]:
    approval_id, values = checked
    approval = await service.decide(
        services.log, approval_id, principal.name, values, confirm=principal.confirm
    )
    return 200, convert(approval, ApprovalOut)


def _check_opening(raw: Any, _: str, services: Services) -> tuple[dict[str, Any], dict[str, Any]]:
    body = msgspec.convert(raw, ApprovalCreate, strict=True)
    return request_row(body, parse_destinations(services.settings.webhook_allowed))


async def _open(services: Services, principal: Any, checked: Any) -> tuple[int, Any]:
    row, options = checked
    approval = await service.open_one(services.log, row, options, principal.name, principal.confirm)
    return 201, convert(approval, ApprovalOut)


EVENTS_PATH = "/v1/events"
OPENING_PATH = "/v1/approvals"
DECISION_PATH = DECISION_PREFIX + "{approval_id:str}" + DECISION_SUFFIX
# The fast writes by the documented route they stand in for; the scope each needs is not
# written here but read from that route's guard (``table``).
WRITES: dict[str, tuple[Callable[[Any, str, Any], Any], Callable[..., Any]]] = {
    "POST " + EVENTS_PATH: (_check_events, _append),
    "POST " + OPENING_PATH: (_check_opening, _open),
    "POST " + DECISION_PATH: (_check_decision, _decide),
}


class Table:
    """The fast routes of one application, by the route each stands in for."""

    def __init__(self, routes: dict[str, Route]) -> None:
        self.routes = routes
        self._events = routes["POST " + EVENTS_PATH]
        self._opening = routes["POST " + OPENING_PATH]
        self._decision = routes["POST " + DECISION_PATH]

    def match(self, scope: dict[str, Any]) -> tuple[Route, str] | None:
        """The fast route this request may take, with the id in its path, or None."""
        if scope["type"] != "http" or scope["method"] != "POST" or scope["query_string"]:
            return None
        path = scope["path"]
        if path == EVENTS_PATH:
            return self._events, ""
        if path == OPENING_PATH:
            return self._opening, ""
        if path.startswith(DECISION_PREFIX) and path.endswith(DECISION_SUFFIX):
            approval_id = path[len(DECISION_PREFIX) : -len(DECISION_SUFFIX)]
            if approval_id and "/" not in approval_id and len(approval_id) <= MAX_ID:
                return self._decision, approval_id
        return None


def table(handlers: Iterable[Any]) -> Table:
    """The fast routes, derived from the routes' own declarations: one for each route whose
    guard is ``requires(scope, cached=True)``, needing that scope. A cached route without
    a fast write, or a fast write whose route is not declared cached, stops start-up."""
    routes: dict[str, Route] = {}
    for handler in handlers:
        cached = [g for g in getattr(handler, "guards", None) or [] if _cached(g)]
        if not cached:
            continue
        for method in handler.http_methods:
            for path in handler.paths:
                name = f"{method} {path}"
                if name not in WRITES:
                    raise RuntimeError(f"{name} is declared cached but has no fast write")
                check, write = WRITES[name]
                routes[name] = Route(name, cached[0].scope, check, write)
    missing = sorted(set(WRITES) - set(routes))
    if missing:
        raise RuntimeError(f"fast writes without a route declared cached: {', '.join(missing)}")
    return Table(routes)


def _cached(guard: Any) -> bool:
    return isinstance(guard, Requires) and guard.cached


async def serve(
    route: Route,
    path_id: str,
    services: Services,
    scope: dict[str, Any],
    receive: Any,
    send: Any,
    headers: Headers,
) -> Any:
    """Answer the request and return None, or return the ``receive`` Litestar should use.

    ``headers`` are the security headers every answer carries.
    """
    authorization = content_type = length = b""
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value
        elif name == b"content-type":
            content_type = value
        elif name == b"content-length":
            length = value
    principal = cached_admission(services, authorization.decode("latin-1"), route.scope)
    if principal is None:
        return receive
    kind = content_type.decode("latin-1").split(";", 1)[0].strip().lower()
    if kind and not (kind == JSON_TYPES[0] or kind.endswith(JSON_TYPES[1])):
        return receive
    if not length.isdigit() or int(length) > services.settings.max_body_bytes:
        return receive
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    try:
        checked = route.check(decode_body(body), path_id, services)
    except (ApiError, msgspec.ValidationError):
        return _replay(body, receive)
    try:
        await take_rate(services, principal)
        status, value = await route.write(services, principal, checked)
    except ApiError as exc:
        extra = [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
        refused = msgspec.json.encode(error_body(exc.code, exc.message, **exc.extra))
        await answer(send, exc.status, refused, headers + extra)
        return None
    except Exception:
        log.exception("unhandled error on %s", route.name)
        failed = msgspec.json.encode(
            error_body("internal", "the service failed; the error is in its log")
        )
        await answer(send, 500, failed, headers)
        return None
    await answer(send, status, msgspec.json.encode(value), headers)
    return None


async def answer(send: Any, status: int, body: bytes, headers: Headers) -> None:
    """Send a whole JSON answer straight to the server (no Litestar on this path)."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                *headers,
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _replay(body: bytes, receive: Any) -> Any:
    """A ``receive`` that gives Litestar the body already read, then the server's messages."""
    sent = False

    async def replay() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
