"""The agent-container platform: container and inference events, ids inside the data."""

from __future__ import annotations

from typing import Any

from approvals.connectors.dialects import DialectError, Mapped, Upstream, load_json, obj, text

ERROR_SUFFIXES = ("_error", "_rate_limited", "_budget_exceeded")


def _category(kind: str, tool: str | None) -> str:
    if kind.endswith(ERROR_SUFFIXES):
        return "error"
    if kind.startswith("inference"):
        return "inference"
    if tool == "filesystem" or kind.startswith(("file_", "directory_")):
        return "filesystem"
    return "tool_use" if tool == "shell" else "lifecycle"


def map_one(item: Any) -> dict[str, Any]:
    """Map one event object (as in the JSON array of the non-follow mode)."""
    if not isinstance(item, dict):
        raise DialectError("an agent event is not a JSON object")
    event_id = item.get("id")
    if not isinstance(event_id, str | int) or event_id == "":
        raise DialectError("an agent event has no id")
    kind = text(item.get("type"))
    if kind is None:
        raise DialectError(f"agent event {event_id} has no type")
    metadata = obj(item.get("metadata"))
    tokens = None
    if isinstance(metadata.get("input_tokens"), int) or isinstance(
        metadata.get("output_tokens"), int
    ):
        tokens = int(metadata.get("input_tokens") or 0) + int(metadata.get("output_tokens") or 0)
    cost = metadata.get("cost_usd")
    summary = text(item.get("input_summary"))
    return {
        "type": kind,
        "category": _category(kind, text(item.get("tool"))),
        "status": "failed" if item.get("success") is False else None,
        "title": f"{kind}: {summary}" if summary else kind,
        "externalId": str(event_id),
        "createdAt": text(item.get("timestamp")),
        "costTokens": tokens,
        "costUsd": float(cost) if isinstance(cost, int | float) else None,
        "detail": item,
    }


class AgentEvents:
    """``GET /agents/{id}/events?follow=true``: one event object per message."""

    name = "agent-events"

    def to_events(self, msg: Upstream) -> Mapped:
        """Map one message (an object, or an array of them)."""
        data = load_json(msg)
        items = data if isinstance(data, list) else [data]
        events = [map_one(item) for item in items]
        return Mapped(events, cursor=events[-1]["externalId"] if events else None)
