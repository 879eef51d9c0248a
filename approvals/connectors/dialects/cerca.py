"""Cerca thread streams: an envelope ``{"event": {...}, "seq": N}`` whose SSE id is ``seq``."""

from __future__ import annotations

from typing import Any

from approvals.connectors.dialects import DialectError, Mapped, Upstream, load_object, obj, text

PENDING = ("pending_approval", "awaiting_approval", "approval_required")


class Cerca:
    """``GET /agents/{agentId}/threads/{threadId}/events/stream``."""

    name = "cerca"

    def to_events(self, msg: Upstream) -> Mapped:
        """Map one envelope; an event awaiting approval opens one."""
        envelope = load_object(msg)
        inner = envelope.get("event")
        if not isinstance(inner, dict):
            raise DialectError("a Cerca message has no event object")
        seq = envelope.get("seq")
        cursor = msg.id or (str(seq) if isinstance(seq, int) else None)
        external = text(inner.get("id")) or cursor
        if external is None:
            raise DialectError("a Cerca event has neither an id nor a seq")
        kind = text(inner.get("type")) or (msg.event if msg.event != "message" else "cerca.event")
        data = obj(inner.get("data"))
        status = text(inner.get("status")) or text(data.get("status"))
        event: dict[str, Any] = {
            "type": kind,
            "category": "approval" if status in PENDING else "activity",
            "status": "pending_approval" if status in PENDING else status,
            "title": text(inner.get("title")) or text(data.get("title")) or kind,
            "agentId": text(inner.get("agentId")),
            "threadId": text(inner.get("threadId")),
            "runId": text(inner.get("runId")),
            "externalId": external,
            "createdAt": text(inner.get("timestamp")),
            "detail": {**inner, "seq": seq},
        }
        if isinstance(data.get("tool"), str):
            event["detail"]["tool"] = data["tool"]
            event["detail"]["arguments"] = data.get("arguments")
        return Mapped([event], cursor=cursor)
