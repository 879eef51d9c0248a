"""Validation of posted events and their canonical JSON form."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import msgspec

from approvals.core.clock import iso, parse_iso
from approvals.core.contract import Body, Out, convert
from approvals.core.errors import ApiError, invalid
from approvals.digest import unsignable
from approvals.events import redaction

Short = Annotated[str, msgspec.Meta(max_length=200)]
Timestamp = Annotated[
    str,
    msgspec.Meta(
        max_length=64,
        description="ISO-8601 time, e.g. 2026-11-20T12:00:00.000Z",
        extra_json_schema={"format": "date-time"},
    ),
]
EventType = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=200,
        pattern=r"^[^\s\x00-\x1f\x7f]+$",
        description="one word: steering_request, token, tool_call, status, ...",
    ),
]
MAX_BATCH = 10_000
SERVER_OWNED = ("id", "approvalId", "resolvedBy")


class EventIn(Body):
    """An event as an agent posts it (``id``, ``approvalId``, ``resolvedBy`` are the service's)."""

    type: EventType
    category: Short | None = None
    status: Short | None = None
    title: Annotated[str, msgspec.Meta(max_length=10_000)] | None = None
    detail: dict[str, Any] | None = None
    source: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    agent_id: Short | None = None
    thread_id: Short | None = None
    run_id: Short | None = None
    external_id: Annotated[str, msgspec.Meta(max_length=500)] | None = None
    cost_tokens: Annotated[int, msgspec.Meta(ge=0, le=2**53)] | None = None
    cost_usd: Annotated[float, msgspec.Meta(ge=0, le=1e12)] | None = None
    created_at: Timestamp | None = None
    resolved_at: Timestamp | None = None


class EventOut(Out):
    """An event as stored: the canonical JSON of the log."""

    id: Annotated[str, msgspec.Meta(pattern=r"^[0-9]+$", description="the log position")]
    type: str
    category: str | None
    status: str | None
    title: str | None
    detail: dict[str, Any] | None
    source: str
    agent_id: str | None
    thread_id: str | None
    run_id: str | None
    external_id: str | None
    cost_tokens: int | None
    cost_usd: float | None
    created_at: Timestamp
    resolved_at: Timestamp | None
    resolved_by: str | None
    approval_id: str | None


class EventPage(Out):
    """A JSON page of the log; pass ``nextCursor`` as ``after`` for the next one."""

    events: list[EventOut]
    next_cursor: str


def parse_event(raw: Any, where: str = "body", *, trusted: bool = False) -> dict[str, Any]:
    """Check one event (a decoded JSON value) and return its column values.

    ``trusted`` is for connectors relaying a platform's own resolution fields.
    """
    resolved_by = None
    if trusted and isinstance(raw, dict) and raw.get("resolvedBy") is not None:
        raw = dict(raw)
        resolved_by = convert(raw.pop("resolvedBy"), Short, f"{where}.resolvedBy")
    if isinstance(raw, dict):
        for owned in SERVER_OWNED:
            if raw.get(owned) is not None:
                raise invalid(f"{where}.{owned}", "is set by the service, not by the client")
        raw = {key: value for key, value in raw.items() if key not in SERVER_OWNED}
    event = convert(raw, EventIn, where)
    row = event_row(event, where)
    if resolved_by is not None:
        row["resolved_by"] = resolved_by
    return row


def event_row(event: EventIn, where: str = "body") -> dict[str, Any]:
    """The column values of a checked event (no id, no createdAt default)."""
    if event.type.lower().startswith("audit."):
        raise invalid(
            f"{where}.type", "audit.* events are written by the service itself; use another type"
        )
    if event.source is not None and event.source.lower() == "audit":
        raise invalid(f"{where}.source", "'audit' is the service's own source; use another name")
    if event.category is not None and event.category.lower() == "audit":
        raise invalid(f"{where}.category", "'audit' is the service's own category; use another one")
    if event.type == "steering_request" or event.status == "pending_approval":
        check_request_detail(event.detail, where)
    row: dict[str, Any] = {
        "type": event.type,
        "detail": event.detail,
        "cost_tokens": event.cost_tokens,
        "cost_usd": event.cost_usd,
    }
    for column in ("category", "status", "title", "source", "agent_id", "thread_id", "run_id"):
        value = getattr(event, column)
        if value is not None:
            row[column] = value
    if event.external_id is not None:
        row["external_id"] = event.external_id
    for key, column in (("createdAt", "created_at"), ("resolvedAt", "resolved_at")):
        value = getattr(event, column)
        if value is not None:
            try:
                row[column] = iso(parse_iso(value))
            except (ValueError, OverflowError) as exc:
                raise invalid(f"{where}.{key}", "must be an ISO-8601 timestamp") from exc
    return row


MAX_TOOL = 200  # characters of ``detail.tool``, the approval's tool column


def check_request_detail(detail: dict[str, Any] | None, where: str) -> None:
    """Refuse a request event whose ``detail`` the queue could not serve: every reader of
    the queue (API, feeds, dashboard, CLI) serves ``tool`` as a short string and
    ``arguments`` as an object, so a request that would break them is a 422 here."""
    if detail is None:
        return
    tool = detail.get("tool")
    if isinstance(tool, str) and len(tool) > MAX_TOOL:
        raise invalid(f"{where}.detail.tool", f"must be at most {MAX_TOOL} characters")
    arguments = detail.get("arguments")
    if arguments is not None and not isinstance(arguments, dict):
        raise invalid(
            f"{where}.detail.arguments",
            "must be a JSON object (the tool's arguments by name) or null",
        )
    if arguments is not None and (reason := unsignable(arguments)):
        raise invalid(f"{where}.detail.arguments", reason)


def parse_batch(raw: Any) -> list[dict[str, Any]]:
    """Check a posted body (one event or a JSON array of them).

    LangGraph and AG-UI interrupt objects are accepted as approval requests.
    """
    if isinstance(raw, list):
        if not raw:
            raise invalid("body", "the array must hold at least one event")
        if len(raw) > MAX_BATCH:
            raise invalid("body", f"at most {MAX_BATCH} events per request")
        return [_parse_item(item, f"body[{index}]") for index, item in enumerate(raw)]
    return [_parse_item(raw, "body")]


def _parse_item(raw: Any, where: str) -> dict[str, Any]:
    from approvals.events import interrupts

    if interrupts.is_interrupt(raw):
        body, options = interrupts.convert(raw, where)
        row = parse_event(body, where)
        row["_approval"] = options  # read by the approval hook before insert
        return row
    if not isinstance(raw, dict):
        raise invalid(where, "each event must be a JSON object")
    return parse_event(raw, where)


class EventJson(dict[str, Any]):
    """An event's canonical JSON, holding beside it (never as a field) the redaction
    paths of its approval's policy, for the exits that serve it to people (``shown``)."""

    __slots__ = ("redact",)
    redact: list[str] | None


def shown(event: dict[str, Any]) -> dict[str, Any]:
    """An event's JSON as people and channels see it (its arguments redacted by its
    approval's policy); the agent's own reads and its callback get ``to_json`` whole."""
    paths = getattr(event, "redact", None)
    return redaction.event(event, paths) if paths else event


def to_json(row: Any) -> dict[str, Any]:
    """The canonical camelCase JSON of a stored event (a row or a mapping)."""
    mapping = row if isinstance(row, Mapping) else row._mapping
    get = mapping.__getitem__
    event = EventJson(
        id=str(get("id")),
        type=get("type"),
        category=get("category"),
        status=get("status"),
        title=get("title"),
        detail=get("detail"),
        source=get("source"),
        agentId=get("agent_id"),
        threadId=get("thread_id"),
        runId=get("run_id"),
        externalId=get("external_id"),
        costTokens=get("cost_tokens"),
        costUsd=get("cost_usd"),
        createdAt=get("created_at"),
        resolvedAt=get("resolved_at"),
        resolvedBy=get("resolved_by"),
        approvalId=get("approval_id"),
    )
    event.redact = mapping.get("redact")
    return event


def parse_position(raw: str | None, name: str) -> int | None:
    """Parse a log position (``Last-Event-ID``, ``after``); 400 when malformed."""
    if raw is None:
        return None
    text = raw.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise ApiError(
            400,
            "invalid",
            f"{name}: must be an event id (a decimal number) as sent in the stream's id: field",
            field=name,
        )
    return int(text)
