"""One SSE subscription: where it starts, what it passes, how it stays alive."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import msgspec

from approvals.core.metrics import FANOUT_LAG, SUBSCRIBERS, lag_sampled
from approvals.events.broker import Broker, encode_frame
from approvals.events.filters import EventFilter
from approvals.events.log import EventLog

KEEPALIVE = b": keepalive\n\n"
REPLAY_PAGE = 500


@dataclass(frozen=True)
class Start:
    """Where a subscription begins: after a position, the last N matches, or live."""

    after: int | None = None
    tail: int | None = None
    origin: str = "live"


async def resolve_start(start: Start, log: EventLog, broker: Broker, where: EventFilter) -> int:
    """Turn a start into the position after which events are sent."""
    if start.after is not None:
        return start.after
    head = broker.head
    if start.tail is not None:
        if start.tail == 0:
            return head
        last = await log.tail(start.tail, upto=head, where=where)
        return int(last[0]["id"]) - 1 if last else head
    return head


async def subscribe(
    *,
    log: EventLog,
    broker: Broker,
    where: EventFilter,
    position: int,
    origin: str,
    retry_ms: int,
) -> AsyncIterator[bytes]:
    """Yield SSE bytes: ``connected``, then every matching event after ``position``."""
    subscription: dict[str, Any] = {
        "filters": where.describe(),
        "from": str(position),
        "origin": origin,
    }
    # The log head lets a client whose Last-Event-ID lies beyond it (it outlived a database
    # reset) notice at once instead of waiting silently: see docs/api.md.
    subscription.update(head=str(broker.head), beyondHead=position > broker.head)
    hello = {"subscription": subscription}
    yield b"retry: %d\nevent: connected\ndata: %s\n\n" % (retry_ms, msgspec.json.encode(hello))
    broker.subscribers += 1
    SUBSCRIBERS.inc()
    sampled = lag_sampled()
    try:
        while True:
            items = broker.since(position)
            if items is None:
                # Behind the ring: replay from the log, a page at a time.
                upto = broker.head
                events = await log.read_after(position, upto=upto, where=where, limit=REPLAY_PAGE)
                if events:
                    yield b"".join(encode_frame(event) for event in events)
                position = int(events[-1]["id"]) if len(events) == REPLAY_PAGE else upto
                continue
            if items:
                chunk = [item.frame for item in items if where.matches(item.event)]
                position = items[-1].id
                if chunk:
                    if sampled:
                        FANOUT_LAG.observe(time.monotonic() - items[-1].added)
                    yield b"".join(chunk)
                continue
            if not await broker.next(position):
                yield KEEPALIVE
    finally:
        broker.subscribers -= 1
        SUBSCRIBERS.dec()


def page_json(events: list[dict[str, Any]], cursor: int) -> dict[str, Any]:
    """The JSON page answer: events and the cursor to pass as ``after`` next."""
    return {"events": events, "nextCursor": str(cursor)}
