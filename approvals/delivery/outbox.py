"""The outbox: delivery rows written in the transaction of the event they carry."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

import msgspec
from sqlalchemy import select

from approvals.core.clock import now_iso
from approvals.delivery.models import Delivery, Endpoint
from approvals.events.log import LogTransaction, new_id
from approvals.events.schema import shown, to_json
from approvals.events.writer import prepared

endpoints_table = Endpoint.__table__  # type: ignore[attr-defined]
deliveries_table = Delivery.__table__  # type: ignore[attr-defined]


def envelope(event: dict[str, Any]) -> str:
    """The body sent for an event: ``{"type", "timestamp", "data"}``."""
    return msgspec.json.encode(
        {"type": event["type"], "timestamp": event["createdAt"], "data": event}
    ).decode()


def matches(patterns: list[str], event_type: str) -> bool:
    """Tell whether an endpoint's filter (exact types, ``*``, ``approval.*``) takes a type.

    ``audit.*`` events go only to endpoints that name them (``audit.*`` or an exact
    type): a ``*`` endpoint built for agent events is not sent the admin trail.
    """
    if event_type.startswith("audit."):
        patterns = [pattern for pattern in patterns if pattern.startswith("audit.")]
    return any(fnmatch.fnmatchcase(event_type, pattern) for pattern in patterns)


def delivery_row(
    *,
    kind: str,
    url: str,
    event: dict[str, Any],
    endpoint_id: str | None = None,
    source_id: str | None = None,
) -> dict[str, Any]:
    """A new pending delivery of ``event`` to ``url``, due now."""
    target = endpoint_id or source_id or kind
    return pending_row(
        kind=kind,
        msg_id=f"msg_{event['id']}_{target}",
        url=url,
        event_id=int(event["id"]),
        event_type=event["type"],
        payload=envelope(event),
        endpoint_id=endpoint_id,
        source_id=source_id,
    )


def pending_row(
    *,
    kind: str,
    msg_id: str,
    url: str,
    event_id: int,
    event_type: str,
    payload: str,
    due: str | None = None,
    endpoint_id: str | None = None,
    source_id: str | None = None,
    approval_id: str | None = None,
) -> dict[str, Any]:
    """The one builder of outbox rows (webhooks, callbacks, resumes, notifications): pending,
    no attempt yet, due at ``due`` (now by default)."""
    now = now_iso()
    return {
        "id": new_id("dlv"),
        "msg_id": msg_id,
        "kind": kind,
        "endpoint_id": endpoint_id,
        "source_id": source_id,
        "approval_id": approval_id,
        "url": url,
        "event_id": event_id,
        "event_type": event_type,
        "payload": payload,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": due or now,
        "next_trigger": "scheduled",
        "created_at": now,
        "updated_at": now,
    }


ENDPOINTS = "outbox.endpoints"
ACTIVE_ENDPOINTS = prepared(
    select(endpoints_table.c.id, endpoints_table.c.url, endpoints_table.c.event_types).where(
        endpoints_table.c.disabled_reason.is_(None)
    )
)


class Outbox:
    """The append hook that queues deliveries for matching endpoints and callbacks."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self.wake = wake
        # Feature code (connectors) adds deliveries for resolved approvals here.
        self.on_resolved: list[Any] = []

    def prepare(self, tx: LogTransaction, rows: list[dict[str, Any]]) -> None:
        """Nothing to adjust before insert."""

    async def after(self, tx: LogTransaction, rows: list[dict[str, Any]]) -> None:
        """Queue one delivery per matching endpoint and event."""
        # Read once per transaction: a group-committed batch appends many times.
        endpoints = tx.extras.get(ENDPOINTS)
        if endpoints is None:
            endpoints = tx.extras[ENDPOINTS] = (await tx.conn.execute(ACTIVE_ENDPOINTS)).all()
        if not endpoints:
            return
        deliveries = []
        for row in rows:
            event = shown(to_json(row))  # endpoints are channels: redacted as people see it
            for endpoint_id, url, patterns in endpoints:
                if matches(patterns, event["type"]):
                    deliveries.append(
                        delivery_row(kind="endpoint", url=url, event=event, endpoint_id=endpoint_id)
                    )
        await self._queue(tx, deliveries)

    async def resolved(
        self, tx: LogTransaction, approval: dict[str, Any], resolution: dict[str, Any]
    ) -> None:
        """Queue the approval's callback, and whatever feature hooks add."""
        deliveries = []
        if approval.get("callback_url"):
            deliveries.append(
                delivery_row(kind="callback", url=approval["callback_url"], event=resolution)
            )
        for hook in self.on_resolved:
            deliveries.extend(await hook(tx, approval, resolution))
        await self._queue(tx, deliveries)

    async def _queue(self, tx: LogTransaction, deliveries: list[dict[str, Any]]) -> None:
        if not deliveries:
            return
        await tx.insert(deliveries_table, deliveries)
        if self.wake not in tx.after_commit:
            tx.after_commit.append(self.wake)
