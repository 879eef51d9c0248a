"""Prism Agents: ``event:`` is the type, ``id: evt_…``, JSON data with run and thread ids."""

from __future__ import annotations

from typing import Any

from approvals.connectors.dialects import DialectError, Mapped, Upstream, load_object, text

CATEGORIES = {
    "token": "output",
    "tool_call": "tool_use",
    "tool_result": "tool_use",
    "steering_request": "approval",
    "run_status": "lifecycle",
    "filesystem": "filesystem",
}


class Prism:
    """The deployment event stream (``GET /v1/deployments/:id/events``)."""

    name = "prism"

    def to_events(self, msg: Upstream) -> Mapped:
        """Map one Prism message; every message needs its ``id:``."""
        if not msg.id:
            raise DialectError(f"{msg.event}: a Prism event has no id")
        data = load_object(msg)
        event: dict[str, Any] = {
            "type": msg.event,
            "category": CATEGORIES.get(msg.event, "other"),
            "externalId": msg.id,
            "runId": text(data.get("run_id")),
            "threadId": text(data.get("thread_id")),
            "detail": data,
        }
        if msg.event == "steering_request":
            event["status"] = "pending_approval"
            event["title"] = text(data.get("summary")) or "The agent asks for approval"
            if "tool" in data:
                event["detail"] = {**data, "tool": data["tool"]}
        elif msg.event == "run_status":
            event["status"] = text(data.get("status"))
            event["title"] = f"Run {event['status'] or 'status changed'}"
        elif msg.event == "token":
            event["title"] = text(data.get("delta"))
        elif msg.event in ("tool_call", "tool_result"):
            tool = text(data.get("tool")) or "a tool"
            event["title"] = f"{'Calling' if msg.event == 'tool_call' else 'Result of'} {tool}"
        return Mapped([event], cursor=msg.id)
