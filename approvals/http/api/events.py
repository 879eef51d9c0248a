"""HTTP handlers of the event log: ingest, the stream and the JSON page."""

from __future__ import annotations

from typing import Annotated, Any, Literal, cast

from litestar import Request, get, post
from litestar.enums import MediaType
from litestar.params import HeaderParameter, PathParameter, QueryParameter
from litestar.response import Response

from approvals.core.clock import iso, parse_iso
from approvals.core.contract import WRITE_ERRORS, convert, errors
from approvals.core.errors import invalid, not_found
from approvals.events.filters import EventFilter
from approvals.events.schema import EventOut, EventPage, parse_batch, parse_position, shown
from approvals.http.guard import hold_stream, requires
from approvals.http.sse import EventStream
from approvals.http.stream import (
    NDJSON_HEADERS,
    Ndjson,
    Start,
    exported,
    page_json,
    resolve_start,
    subscribe,
)

MAX_PAGE = 1000
TAGS = ["events"]

Position = Annotated[
    str | None,
    QueryParameter(
        pattern=r"^[0-9]{1,18}$",
        description="an event id (decimal digits) as sent in the stream's id: field",
    ),
]
Flag = Annotated[bool | None, QueryParameter(description="true or false")]


def _list(name: str, what: str) -> Any:
    return QueryParameter(
        name=name,
        max_length=2000,
        description=f"only events whose {what} is one of these (comma-separated)",
    )


@post(
    "/v1/events",
    guards=[requires("events:write", cached=True)],
    status_code=201,
    operation_id="appendEvents",
    tags=TAGS,
    summary="Append one event or an array of events",
    description=(
        "One event object answers one stored event; an array answers an array, stored in one "
        "transaction. A pair of `source` and `externalId` already stored returns the first "
        "event and appends nothing. LangGraph `HumanInterrupt` and AG-UI interrupt objects "
        "are also accepted and open approvals (see docs/api.md)."
    ),
    responses=errors(*WRITE_ERRORS),
)
async def post_events(request: Request[Any, Any, Any]) -> EventOut | list[EventOut]:
    """Append one event or a JSON array of events in one transaction."""
    # The body is EventIn | list[EventIn] (documented by approvals.http.openapi) or an interrupt,
    # which a struct union cannot tell apart, so the items are converted one by one.
    body = await request.json()
    rows = parse_batch(body)
    principal = request.state.principal
    stored = await request.app.state.services.log.append(rows, principal.name, principal.confirm)
    events: list[EventOut] = convert(stored, list[EventOut])
    return events if isinstance(body, list) else events[0]


# Litestar's Stream takes the handler's media type over its own, so the handler names
# the SSE type and the JSON page sets its own.
@get(
    "/v1/events",
    guards=[requires("events:read")],
    media_type="text/event-stream",
    operation_id="readEvents",
    tags=TAGS,
    summary="Stream the event log over SSE, or read a JSON page",
    description=(
        "With `Accept: text/event-stream` (or `follow=true`) an SSE stream: `connected`, then "
        "each event as `id:`, `event:`, `data:`; keepalive comments. Where it starts, first "
        "match wins: `Last-Event-ID`, `after`, `history=true`, `tail=N`, else live. Without "
        "SSE, a JSON page of the last `tail` (default 100) events or those after `after`."
    ),
    responses=errors(),
)
async def get_events(
    request: Request[Any, Any, Any],
    thread_id: Annotated[str | None, _list("thread_id", "threadId")] = None,
    run_id: Annotated[str | None, _list("run_id", "runId")] = None,
    agent_id: Annotated[str | None, _list("agent_id", "agentId")] = None,
    source: Annotated[str | None, _list("source", "source")] = None,
    category: Annotated[str | None, _list("category", "category")] = None,
    type_: Annotated[str | None, _list("type", "type")] = None,
    status: Annotated[str | None, _list("status", "status")] = None,
    after: Position = None,
    history: Flag = None,
    tail: Annotated[
        int | None, QueryParameter(ge=0, le=100_000, schema_extra={"minimum": 0})
    ] = None,
    limit: Annotated[int | None, QueryParameter(ge=1, le=MAX_PAGE)] = None,
    follow: Flag = None,
    format_: Annotated[
        Literal["json", "ndjson"] | None,
        QueryParameter(
            name="format",
            description="ndjson: the whole matching log up to now as one JSON event per line, "
            "streamed (resume with after=<the last id>)",
        ),
    ] = None,
    since: Annotated[str | None, _moment("since", "at or after")] = None,
    until: Annotated[str | None, _moment("until", "before")] = None,
    last_event_id: Annotated[
        str | None,
        HeaderParameter(name="Last-Event-ID", max_length=40, description="resume after this id"),
    ] = None,
) -> Response[EventPage]:
    """Stream events over SSE, or answer a JSON page."""
    services = request.app.state.services
    where = EventFilter.from_params(
        {
            "thread_id": thread_id,
            "run_id": run_id,
            "agent_id": agent_id,
            "source": source,
            "category": category,
            "type": type_,
            "status": status,
        }
    )
    resume = parse_position(last_event_id, "Last-Event-ID")
    after_id = parse_position(after, "after")
    if format_ != "ndjson" and (since is not None or until is not None):
        field = "query.since" if since is not None else "query.until"
        raise invalid(field, "applies to format=ndjson only", status=400)
    if format_ == "ndjson":
        export = exported(
            services.log,
            where,
            after=after_id if after_id is not None else (resume or 0),
            upto=services.broker.head,  # the log as it stands now: the export ends
            since=_timestamp(since, "since"),
            until=_timestamp(until, "until"),
        )
        headers = {**NDJSON_HEADERS, "X-Log-Head": str(services.broker.head)}
        return cast("Response[EventPage]", Ndjson(export, headers=headers))
    accept = request.headers.get("accept", "")
    streaming = follow if follow is not None else "text/event-stream" in accept
    if not streaming:
        start_after = after_id if after_id is not None else resume
        page = await _page(request, where, start_after, tail, limit or 100)
        return Response(convert(page, EventPage), media_type=MediaType.JSON)
    if resume is not None:
        start = Start(after=resume, origin="last-event-id")
    elif after_id is not None:
        start = Start(after=after_id, origin="after")
    elif history:
        start = Start(after=0, origin="history")
    elif tail is not None:
        start = Start(tail=tail, origin="tail")
    else:
        start = Start(origin="live")
    position = await resolve_start(start, services.log, services.broker, where)
    release = hold_stream(request)
    stream = EventStream(
        subscribe(
            log=services.log,
            broker=services.broker,
            where=where,
            position=position,
            origin=start.origin,
            retry_ms=services.settings.retry_ms,
        ),
        release=release,
    )
    return cast("Response[EventPage]", stream)


def _moment(name: str, how: str) -> Any:
    return QueryParameter(
        name=name,
        max_length=40,
        description=f"with format=ndjson: only events created {how} this time (ISO 8601)",
    )


def _timestamp(raw: str | None, name: str) -> str | None:
    """A query timestamp in the log's canonical form (naive means UTC); 400 when unreadable."""
    if raw is None:
        return None
    try:
        return iso(parse_iso(raw))
    except ValueError:
        raise invalid(
            f"query.{name}",
            "must be an ISO 8601 time such as 2026-12-01 or 2026-12-01T09:30:00Z",
            status=400,
        ) from None


async def _page(
    request: Request[Any, Any, Any],
    where: EventFilter,
    after: int | None,
    tail: int | None,
    limit: int,
) -> dict[str, Any]:
    services = request.app.state.services
    head = services.broker.head
    if after is not None:
        events = await services.log.read_after(after, upto=head, where=where, limit=limit)
        cursor = int(events[-1]["id"]) if len(events) == limit else max(head, after)
        return page_json(events, cursor)
    count = tail if tail is not None else 100
    events = await services.log.tail(count, upto=head, where=where) if count else []
    return page_json(events, head)


@get(
    "/v1/events/{event_id:str}",
    guards=[requires("events:read")],
    operation_id="getEvent",
    tags=TAGS,
    summary="One event by id",
    responses=errors(404),
)
async def get_event(
    request: Request[Any, Any, Any],
    event_id: Annotated[str, PathParameter(max_length=40, description="the event's id")],
) -> EventOut:
    """One event by id."""
    position = parse_position(event_id, "id")
    assert position is not None
    event = await request.app.state.services.log.get(position)
    if event is None:
        raise not_found(f"event {event_id}")
    return cast(EventOut, convert(shown(event), EventOut))
