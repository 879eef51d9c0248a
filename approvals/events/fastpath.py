"""``POST /v1/events`` for the common case, served as plain ASGI ahead of Litestar.

Agents post one event per token or tool call, so this request is the one the
service serves most. Litestar's generic path (routing, a copy of the handler
per guard, response objects, send wrappers) cost as much CPU as the append
itself. This path takes a request only when it can answer it without anything
Litestar adds: no query string, a JSON body with a ``Content-Length`` within
the limit, and a key already verified (cached) that holds ``events:write``.
It runs the same checks (``decode_body``, ``parse_batch``, the key's rate) and
the same append as ``approvals.events.routes.post_events``. Anything else is
handed to Litestar with the body replayed, so every refusal that needs more
than the cached key (401, 403, 413, 415 and every 400 or 422 about the body) is
answered by the one documented route, in its words.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from approvals.contract import JSON_TYPES, convert, decode_body
from approvals.errors import ApiError, error_body, rate_limited
from approvals.events.schema import EventOut, parse_batch

log = logging.getLogger("approvals")

PATH = "/v1/events"
SCOPE = "events:write"
_MANY = list[EventOut]


def takes(scope: dict[str, Any]) -> bool:
    """Whether this request is one the fast path may try."""
    return (
        scope["type"] == "http"
        and scope["path"] == PATH
        and scope["method"] == "POST"
        and not scope["query_string"]
    )


Headers = list[tuple[bytes, bytes]]


async def serve(
    services: Any, scope: dict[str, Any], receive: Any, send: Any, headers: Headers
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
    scheme, _, token = authorization.decode("latin-1").partition(" ")
    principal = services.keys.get(token.strip()) if scheme.lower() == "bearer" else None
    if principal is None or not principal.allows(SCOPE):
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
        raw = decode_body(body)
        rows = parse_batch(raw)
    except ApiError:
        return _replay(body, receive)
    try:
        wait = await services.rates.take(principal.name, principal.rate)
        if wait:
            rate = principal.rate or services.rates.default
            raise rate_limited(f"the key {principal.name!r} is over its rate of {rate}", wait)
        stored = await services.log.append(rows, principal.name, principal.confirm)
    except ApiError as exc:
        extra = [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
        answer = msgspec.json.encode(error_body(exc.code, exc.message, **exc.extra))
        await _answer(send, exc.status, answer, headers + extra)
        return None
    except Exception:
        log.exception("unhandled error on POST %s", PATH)
        answer = msgspec.json.encode(
            error_body("internal", "the service failed; the error is in its log")
        )
        await _answer(send, 500, answer, headers)
        return None
    events = convert(stored, _MANY)
    answer = msgspec.json.encode(events if isinstance(raw, list) else events[0])
    await _answer(send, 201, answer, headers)
    return None


async def _answer(send: Any, status: int, body: bytes, headers: Headers) -> None:
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
