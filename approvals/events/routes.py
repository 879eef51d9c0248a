"""HTTP handlers of the event log: ingest, the stream and the JSON page."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get, post
from litestar.enums import MediaType
from litestar.params import FromPath
from litestar.response import Response, Stream

from approvals.auth.guard import requires
from approvals.errors import ApiError, invalid, not_found
from approvals.events.filters import EventFilter
from approvals.events.schema import parse_batch, parse_position
from approvals.events.stream import Start, page_json, resolve_start, subscribe

MAX_PAGE = 1000


async def read_json(request: Request[Any, Any, Any]) -> Any:
    """Read and parse a JSON body within the size limit; 413 or 400 otherwise."""
    services = request.app.state.services
    limit = services.settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "too_large", f"the body is over {limit} bytes; send smaller batches")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(
                413, "too_large", f"the body is over {limit} bytes; send smaller batches"
            )
    if not body.strip():
        raise invalid("body", "a JSON body is required", status=400)
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise invalid("body", f"is not valid JSON ({exc})", status=400) from exc


def _int_param(request: Request[Any, Any, Any], name: str, default: int | None, most: int) -> Any:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit():
        raise ApiError(400, "invalid", f"{name}: must be a whole number", field=name)
    value = int(raw)
    if value > most:
        raise ApiError(400, "invalid", f"{name}: must be at most {most}", field=name)
    return value


def _flag(request: Request[Any, Any, Any], name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise ApiError(400, "invalid", f"{name}: must be true or false", field=name)


@post("/v1/events", guards=[requires("events:write")], status_code=201)
async def post_events(request: Request[Any, Any, Any]) -> Any:
    """Append one event or a JSON array of events in one transaction."""
    body = await read_json(request)
    rows = parse_batch(body)
    stored = await request.app.state.services.log.append(rows, request.state.principal.name)
    return stored if isinstance(body, list) else stored[0]


# Litestar's Stream takes the handler's media type over its own, so the handler names
# the SSE type and the JSON page sets its own.
@get("/v1/events", guards=[requires("events:read")], media_type="text/event-stream")
async def get_events(request: Request[Any, Any, Any]) -> Any:
    """Stream events over SSE, or answer a JSON page."""
    services = request.app.state.services
    params = {key: request.query_params.get(key) for key in request.query_params}
    where = EventFilter.from_params(params)
    last_event_id = parse_position(request.headers.get("last-event-id"), "Last-Event-ID")
    after = parse_position(request.query_params.get("after"), "after")
    history = _flag(request, "history")
    tail = _int_param(request, "tail", None, 100_000)
    follow = _flag(request, "follow")
    accept = request.headers.get("accept", "")
    streaming = follow if follow is not None else "text/event-stream" in accept
    if not streaming:
        page = await _page(request, where, after if after is not None else last_event_id, tail)
        return Response(page, media_type=MediaType.JSON)
    if last_event_id is not None:
        start = Start(after=last_event_id, origin="last-event-id")
    elif after is not None:
        start = Start(after=after, origin="after")
    elif history:
        start = Start(after=0, origin="history")
    elif tail is not None:
        start = Start(tail=tail, origin="tail")
    else:
        start = Start(origin="live")
    position = await resolve_start(start, services.log, services.broker, where)
    return Stream(
        subscribe(
            log=services.log,
            broker=services.broker,
            where=where,
            position=position,
            origin=start.origin,
            keepalive=services.settings.keepalive_seconds,
            retry_ms=services.settings.retry_ms,
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _page(
    request: Request[Any, Any, Any], where: EventFilter, after: int | None, tail: int | None
) -> dict[str, Any]:
    services = request.app.state.services
    head = services.broker.head
    if after is not None:
        limit = _int_param(request, "limit", 100, MAX_PAGE) or 100
        events = await services.log.read_after(after, upto=head, where=where, limit=limit)
        cursor = int(events[-1]["id"]) if len(events) == limit else max(head, after)
        return page_json(events, cursor)
    count = tail if tail is not None else 100
    events = await services.log.tail(count, upto=head, where=where) if count else []
    return page_json(events, head)


@get("/v1/events/{event_id:str}", guards=[requires("events:read")])
async def get_event(request: Request[Any, Any, Any], event_id: FromPath[str]) -> Any:
    """One event by id."""
    position = parse_position(event_id, "id")
    assert position is not None
    event = await request.app.state.services.log.get(position)
    if event is None:
        raise not_found(f"event {event_id}")
    return event
