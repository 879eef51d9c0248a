"""One follow loop for every SSE stream: ``connected``, history, then live, with keepalives.

The event stream, the inbox feed and the dashboard's stream differ only in what they
make of a run of events (the event's own frame, the approval it changed, an HTML
fragment). Everything else is this loop: the first message and its shape, reading
from the broker's ring or, for a reader that fell behind, from the log a page at a
time, the keepalive on a quiet stream, and the count of open streams
(``approvals_stream_subscribers``). Each frame's ``id`` is the log position of the
event it came from, so a client resumes with ``Last-Event-ID`` where it stopped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from approvals.core.metrics import FANOUT_LAG, SUBSCRIBERS, lag_sampled
from approvals.events.broker import Broker, Item
from approvals.events.filters import EventFilter
from approvals.events.log import EventLog

KEEPALIVE = b": keepalive\n\n"
REPLAY_PAGE = 500


class Frames(Protocol):
    """What one stream makes of events: bytes to send (``b""`` for nothing)."""

    async def replayed(self, events: list[dict[str, Any]]) -> bytes:
        """Frames for events read back from the log (behind the ring)."""
        ...

    async def live(self, items: list[Item]) -> bytes:
        """Frames for events from the broker's ring (each already encoded once)."""
        ...


@dataclass
class Side:
    """A second thing that wakes a quiet stream (the dashboard's presence): its message is
    sent first, then again each time ``changed()`` is set."""

    changed: Callable[[], asyncio.Event]
    message: Callable[[int], bytes]


def connected(
    *, filters: dict[str, Any], position: int, origin: str, head: int, retry_ms: int
) -> bytes:
    """The first message of every stream: the subscription, the log head and the retry hint.

    ``beyondHead`` is true when the client's position lies past the newest event (it
    outlived a database reset): it would otherwise wait silently for ids it has.
    """
    subscription = {
        "filters": filters,
        "from": str(position),
        "origin": origin,
        "head": str(head),
        "beyondHead": position > head,
    }
    data = msgspec.json.encode({"subscription": subscription})
    return b"retry: %d\nevent: connected\ndata: %s\n\n" % (retry_ms, data)


async def follow(
    *,
    log: EventLog,
    broker: Broker,
    position: int,
    frames: Frames,
    where: EventFilter | None = None,
    side: Side | None = None,
) -> AsyncIterator[bytes]:
    """Yield what ``frames`` makes of every event after ``position``, in order, forever.

    ``where`` narrows the log reads of a reader behind the ring (the frames still
    decide what is sent); ``side`` adds a second wake-up to a quiet stream.
    """
    broker.subscribers += 1
    SUBSCRIBERS.inc()
    sampled = lag_sampled()
    changed = None
    try:
        if side is not None:
            changed = side.changed()  # taken before the first message: no change is missed
            yield side.message(position)
        while True:
            items = broker.since(position)
            if items is None:
                upto = broker.head
                events = await log.read_after(position, upto=upto, where=where, limit=REPLAY_PAGE)
                chunk = await frames.replayed(events) if events else b""
                if chunk:
                    yield chunk
                position = int(events[-1]["id"]) if len(events) == REPLAY_PAGE else upto
                continue
            if items:
                chunk = await frames.live(items)
                position = items[-1].id
                if chunk:
                    if sampled:
                        FANOUT_LAG.observe(time.monotonic() - items[-1].added)
                    yield chunk
                continue
            if side is None or changed is None:
                if not await broker.next(position):
                    yield KEEPALIVE
                continue
            woke, other = await _either(broker.next(position), changed.wait())
            if other:
                changed = side.changed()
                yield side.message(position)
            elif woke is False:
                yield KEEPALIVE
    finally:
        broker.subscribers -= 1
        SUBSCRIBERS.dec()


async def _either(first: Awaitable[bool], second: Awaitable[Any]) -> tuple[bool | None, bool]:
    """Wait for whichever comes first: (``first``'s result or None, whether ``second`` came)."""
    one = asyncio.ensure_future(first)
    two = asyncio.ensure_future(second)
    done, _ = await asyncio.wait({one, two}, return_when=asyncio.FIRST_COMPLETED)
    one.cancel()
    two.cancel()
    return (one.result() if one in done else None), two in done
