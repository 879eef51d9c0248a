"""The inbox feed: the approval queue as a snapshot, then one message per change.

It rides the event stream's machinery: the broker's ring (or the log, for a reader
that fell behind) gives every event after a position in order; an event that names
an approval is a change of that approval. The approval's JSON is read once per
change and shared by every subscriber (a small cache keyed by the event's position).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
from sqlalchemy import select

from approvals.auth.keys import Principal
from approvals.events import redaction
from approvals.events.broker import Item
from approvals.events.follow import connected, follow
from approvals.events.log import head_table
from approvals.events.running import Running
from approvals.queue import policy, service

SNAPSHOT_TRIES = 20
KINDS = {
    "approval.vote": "approval.updated",
    "approval.assigned": "approval.updated",
    "approval.resolved": "approval.resolved",
    "approval.expired": "approval.expired",
}


class FeedParts(Running, Protocol):
    """What the feed reads: the running parts and the shared change cache."""

    @property
    def feed_cache(self) -> ChangeCache: ...


def change_kind(event: dict[str, Any]) -> str | None:
    """The feed message an event causes: opened, updated, resolved, expired, or none."""
    if not event.get("approvalId"):
        return None
    kind = event["type"]
    if kind in KINDS:
        return KINDS[kind]
    if kind.startswith("approval."):
        return "approval.updated"  # claims and any later change of an approval
    return "approval.opened"  # the request event itself


@dataclass(frozen=True)
class FeedFilter:
    """Which approvals a subscriber follows."""

    agent_ids: frozenset[str] = frozenset()
    run_ids: frozenset[str] = frozenset()
    thread_ids: frozenset[str] = frozenset()
    tools: frozenset[str] = frozenset()
    decidable_by: Principal | None = None

    def matches(self, approval: dict[str, Any]) -> bool:
        """Tell whether an approval's JSON passes the filter."""
        for values, key in (
            (self.agent_ids, "agentId"),
            (self.run_ids, "runId"),
            (self.thread_ids, "threadId"),
            (self.tools, "tool"),
        ):
            if values and approval.get(key) not in values:
                return False
        return self.decidable_by is None or may_decide(self.decidable_by, approval)

    def describe(self) -> dict[str, Any]:
        """The filter as JSON, for the ``connected`` message."""
        out: dict[str, Any] = {
            name: sorted(values)
            for name, values in (
                ("agent_id", self.agent_ids),
                ("run_id", self.run_ids),
                ("thread_id", self.thread_ids),
                ("tool", self.tools),
            )
            if values
        }
        if self.decidable_by is not None:
            out["decidable"] = True
        return out


def may_decide(principal: Principal, approval: dict[str, Any]) -> bool:
    """Tell whether ``principal`` may decide ``approval`` under its policy (votes aside)."""
    if not principal.allows("approvals:resolve"):
        return False
    return (
        policy.refusal(
            principal=principal.name,
            requested_by=approval.get("requestedBy"),
            allow_self_approval=bool(approval.get("allowSelfApproval")),
            reviewers=approval.get("reviewers"),
        )
        is None
    )


def message(kind: str, position: int, data: Any) -> bytes:
    """One SSE message with one ``data`` line."""
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (
        position,
        kind.encode(),
        msgspec.json.encode(data),
    )


class ChangeCache:
    """The approval JSON after each change, read once and shared by subscribers.

    Subscribers reach a change together, so the cache holds the read itself: the first
    starts it and the others await the same task.
    """

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._items: OrderedDict[int, asyncio.Task[dict[str, Any]]] = OrderedDict()

    async def get(self, engine: Any, position: int, approval_id: str) -> dict[str, Any]:
        """The approval as it stands once the event at ``position`` committed (or later)."""
        task = self._items.get(position)
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            task = asyncio.ensure_future(service.fetch(engine, approval_id, full=True))
            self._items[position] = task
            if len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return await asyncio.shield(task)


async def snapshot(services: FeedParts, where: FeedFilter) -> tuple[int, list[dict[str, Any]]]:
    """The pending approvals matching ``where`` and the log position they reflect.

    The head is read before and after the queue; when no append committed in between
    (every change of an approval appends an event) the queue is exactly the state at
    that position. Under a steady stream of writes the read is repeated inside a write
    transaction, which holds the head still.
    """
    for _ in range(SNAPSHOT_TRIES):
        async with services.engine.connect() as conn:
            before = await _head(conn)
            rows = await _pending(conn)
            after = await _head(conn)
        if before == after:
            return before, _matching(rows, where)
    async with services.log.transaction() as tx:
        head = tx.head
        rows = await _pending(tx.conn)
    return head, _matching(rows, where)


async def _head(conn: Any) -> int:
    value = (await conn.execute(select(head_table.c.last_id))).scalar()
    return int(value or 0)


async def _pending(conn: Any) -> list[dict[str, Any]]:
    table = service.approvals_table
    query = select(table).where(table.c.status == "pending").order_by(table.c.event_id)
    rows = (await conn.execute(query)).mappings().all()
    votes_table = service.votes_table
    ids = [row["id"] for row in rows]
    votes: dict[str, list[dict[str, Any]]] = {approval_id: [] for approval_id in ids}
    if ids:
        for vote in (
            await conn.execute(
                select(votes_table)
                .where(votes_table.c.approval_id.in_(ids))
                .order_by(votes_table.c.id)
            )
        ).mappings():
            votes[vote["approval_id"]].append(dict(vote))
    return [service.approval_json(row, votes[row["id"]]) for row in rows]


def _matching(rows: list[dict[str, Any]], where: FeedFilter) -> list[dict[str, Any]]:
    return [row for row in rows if where.matches(row)]


class _FeedFrames:
    """The feed's frames: each event that changed a matching approval, as that approval."""

    def __init__(self, services: FeedParts, where: FeedFilter) -> None:
        self.engine, self.cache, self.where = services.engine, services.feed_cache, where

    async def replayed(self, events: list[dict[str, Any]]) -> bytes:
        frames = [await _change(self.engine, self.cache, event, self.where) for event in events]
        return b"".join(frame for frame in frames if frame)

    async def live(self, items: list[Item]) -> bytes:
        return await self.replayed([item.event for item in items])


async def feed(
    services: FeedParts,
    where: FeedFilter,
    *,
    after: int | None,
    origin: str,
    retry_ms: int,
) -> AsyncIterator[bytes]:
    """Yield the feed: ``connected``, a snapshot unless resuming, then every change."""
    broker = services.broker
    if after is None:
        position, pending = await snapshot(services, where)
        head = max(broker.head, position)  # the snapshot may be ahead of this process's ring
    else:
        position, pending, head = after, None, broker.head
    yield connected(
        filters=where.describe(), position=position, origin=origin, head=head, retry_ms=retry_ms
    )
    if pending is not None:
        yield message("snapshot", position, {"approvals": [redaction.approval(a) for a in pending]})
    async for chunk in follow(
        log=services.log, broker=broker, position=position, frames=_FeedFrames(services, where)
    ):
        yield chunk


async def _change(
    engine: Any, cache: ChangeCache, event: dict[str, Any], where: FeedFilter
) -> bytes | None:
    kind = change_kind(event)
    if kind is None:
        return None
    position = int(event["id"])
    approval = await cache.get(engine, position, event["approvalId"])
    if not where.matches(approval):
        return None
    return message(kind, position, redaction.approval(approval))
