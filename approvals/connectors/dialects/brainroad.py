"""Brainroad: ``connected`` first, then ``activity`` events mapped field for field."""

from __future__ import annotations

from typing import Any

from approvals.connectors.dialects import DialectError, Mapped, Upstream, load_object, obj, text


class Brainroad:
    """``GET /api/v1/events``; frames carry no ``id:``, the data's id is the cursor."""

    name = "brainroad"

    def to_events(self, msg: Upstream) -> Mapped:
        """Map an activity; ``connected`` maps to nothing."""
        if msg.event == "connected":
            return Mapped([], None)
        data = load_object(msg)
        event_id = data.get("id")
        if isinstance(event_id, bool) or not isinstance(event_id, int | str) or event_id == "":
            raise DialectError(f"{msg.event}: a Brainroad activity has no id")
        kind = text(data.get("eventType")) or (msg.event if msg.event != "message" else None)
        if kind is None:
            raise DialectError(f"activity {event_id} has no eventType")
        detail = obj(data.get("detail"))
        tokens = data.get("costTokens")
        cost = data.get("costUsd")
        event: dict[str, Any] = {
            "type": kind,
            "category": text(data.get("category")),
            "status": text(data.get("status")),
            "title": text(data.get("title")),
            "agentId": text(data.get("agentId")),
            "externalId": str(event_id),
            "costTokens": tokens
            if isinstance(tokens, int) and not isinstance(tokens, bool)
            else None,
            "costUsd": float(cost)
            if isinstance(cost, int | float) and not isinstance(cost, bool)
            else None,
            "createdAt": text(data.get("createdAt")),
            "resolvedAt": text(data.get("resolvedAt")),
            "resolvedBy": text(data.get("resolvedBy")),
            # The platform's own ``source`` (api, webhook, log) clashes with ours: keep it here.
            "detail": {**detail, "upstreamSource": data.get("source")},
        }
        return Mapped([event], cursor=str(event_id))
