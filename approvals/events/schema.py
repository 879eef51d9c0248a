"""Validation of posted events and their canonical JSON form."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from approvals.clock import iso, parse_iso
from approvals.errors import ApiError, invalid

# camelCase JSON field -> column, for the optional string fields.
STRING_FIELDS = {
    "category": "category",
    "status": "status",
    "title": "title",
    "source": "source",
    "agentId": "agent_id",
    "threadId": "thread_id",
    "runId": "run_id",
    "externalId": "external_id",
}
TIME_FIELDS = {"createdAt": "created_at", "resolvedAt": "resolved_at"}
ALLOWED = {
    "type",
    "detail",
    "costTokens",
    "costUsd",
    "resolvedBy",
    "id",
    "approvalId",
    *STRING_FIELDS,
    *TIME_FIELDS,
}
MAX_SHORT = 200
MAX_TITLE = 10_000


def _text(where: str, value: Any, limit: int) -> str:
    if not isinstance(value, str):
        raise invalid(where, "must be a string")
    if len(value) > limit:
        raise invalid(where, f"must be at most {limit} characters")
    return value


def parse_event(raw: Any, where: str = "body", *, trusted: bool = False) -> dict[str, Any]:
    """Check one event and return its column values (no id, no createdAt default).

    ``trusted`` is for connectors relaying a platform's own resolution fields.
    """
    if not isinstance(raw, dict):
        raise invalid(where, "each event must be a JSON object")
    unknown = sorted(set(raw) - ALLOWED)
    if unknown:
        raise invalid(f"{where}.{unknown[0]}", "is not an event field (fields are camelCase)")
    owned = ("id", "approvalId") if trusted else ("id", "approvalId", "resolvedBy")
    for server_owned in owned:
        if raw.get(server_owned) is not None:
            raise invalid(f"{where}.{server_owned}", "is set by the service, not by the client")
    if "type" not in raw or raw["type"] in (None, ""):
        raise invalid(f"{where}.type", "is required")
    row: dict[str, Any] = {"type": _text(f"{where}.type", raw["type"], MAX_SHORT)}
    if not row["type"].isprintable() or " " in row["type"]:
        raise invalid(f"{where}.type", "must be a single word without spaces or control characters")
    for key, column in STRING_FIELDS.items():
        value = raw.get(key)
        if value is not None:
            limit = MAX_TITLE if key == "title" else (500 if key == "externalId" else MAX_SHORT)
            row[column] = _text(f"{where}.{key}", value, limit)
    if row.get("source") == "":
        raise invalid(f"{where}.source", "must not be empty")
    detail = raw.get("detail")
    if detail is not None and not isinstance(detail, dict):
        raise invalid(f"{where}.detail", "must be a JSON object")
    row["detail"] = detail
    tokens = raw.get("costTokens")
    if tokens is not None and (isinstance(tokens, bool) or not isinstance(tokens, int)):
        raise invalid(f"{where}.costTokens", "must be a whole number or null")
    row["cost_tokens"] = tokens
    usd = raw.get("costUsd")
    if usd is not None and (isinstance(usd, bool) or not isinstance(usd, int | float)):
        raise invalid(f"{where}.costUsd", "must be a number or null")
    row["cost_usd"] = float(usd) if usd is not None else None
    if trusted and raw.get("resolvedBy") is not None:
        row["resolved_by"] = _text(f"{where}.resolvedBy", raw["resolvedBy"], MAX_SHORT)
    for key, column in TIME_FIELDS.items():
        value = raw.get(key)
        if value is not None:
            text = _text(f"{where}.{key}", value, 64)
            try:
                row[column] = iso(parse_iso(text))
            except ValueError as exc:
                raise invalid(f"{where}.{key}", "must be an ISO-8601 timestamp") from exc
    return row


def parse_batch(raw: Any) -> list[dict[str, Any]]:
    """Check a posted body (one event or a JSON array of them).

    LangGraph and AG-UI interrupt objects are accepted as approval requests.
    """
    if isinstance(raw, list):
        if not raw:
            raise invalid("body", "the array must hold at least one event")
        return [_parse_item(item, f"body[{index}]") for index, item in enumerate(raw)]
    return [_parse_item(raw, "body")]


def _parse_item(raw: Any, where: str) -> dict[str, Any]:
    from approvals.connectors import interrupts

    if interrupts.is_interrupt(raw):
        body, options = interrupts.convert(raw, where)
        row = parse_event(body, where)
        row["_approval"] = options  # read by the approval hook before insert
        return row
    return parse_event(raw, where)


def to_json(row: Any) -> dict[str, Any]:
    """The canonical camelCase JSON of a stored event (a row or a mapping)."""
    get = row.__getitem__ if isinstance(row, Mapping) else row._mapping.__getitem__
    return {
        "id": str(get("id")),
        "type": get("type"),
        "category": get("category"),
        "status": get("status"),
        "title": get("title"),
        "detail": get("detail"),
        "source": get("source"),
        "agentId": get("agent_id"),
        "threadId": get("thread_id"),
        "runId": get("run_id"),
        "externalId": get("external_id"),
        "costTokens": get("cost_tokens"),
        "costUsd": get("cost_usd"),
        "createdAt": get("created_at"),
        "resolvedAt": get("resolved_at"),
        "resolvedBy": get("resolved_by"),
        "approvalId": get("approval_id"),
    }


def parse_position(raw: str | None, name: str) -> int | None:
    """Parse a log position (``Last-Event-ID``, ``after``); 400 when malformed."""
    if raw is None:
        return None
    text = raw.strip()
    if not text.isdigit() or len(text) > 18:
        raise ApiError(
            400,
            "invalid",
            f"{name}: must be an event id (a decimal number) as sent in the stream's id: field",
            field=name,
        )
    return int(text)
