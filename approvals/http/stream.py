"""One SSE subscription: where it starts, what it passes, how it stays alive."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar.response import Stream

from approvals.events.broker import Broker, Item, encode_frame
from approvals.events.filters import EventFilter
from approvals.events.follow import connected, follow
from approvals.events.log import EventLog
from approvals.events.schema import shown


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


class _EventFrames:
    """The event stream's frames: each matching event's own, encoded once by the broker."""

    def __init__(self, where: EventFilter) -> None:
        self.where = where

    async def replayed(self, events: list[dict[str, Any]]) -> bytes:
        return b"".join(encode_frame(event) for event in events)  # the log read applied where

    async def live(self, items: list[Item]) -> bytes:
        where = self.where
        return b"".join([item.frame for item in items if where.matches(item.event)])


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
    yield connected(
        filters=where.describe(),
        position=position,
        origin=origin,
        head=broker.head,
        retry_ms=retry_ms,
    )
    async for chunk in follow(
        log=log, broker=broker, position=position, frames=_EventFrames(where), where=where
    ):
        yield chunk


def page_json(events: list[dict[str, Any]], cursor: int) -> dict[str, Any]:
    """The JSON page answer: events and the cursor to pass as ``after`` next."""
    return {"events": [shown(event) for event in events], "nextCursor": str(cursor)}


EXPORT_PAGE = 1000
NDJSON_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def exported(
    log: EventLog,
    where: EventFilter,
    *,
    after: int,
    upto: int,
    since: str | None,
    until: str | None,
) -> AsyncIterator[bytes]:
    """The matching log after ``after`` up to ``upto`` as NDJSON, a page at a time (memory
    stays flat however long the log); each line is the event's canonical JSON, the same
    bytes as its ``data:`` on the stream."""
    position = after
    while position < upto:
        events = await log.read_after(
            position, upto=upto, where=where, limit=EXPORT_PAGE, since=since, until=until
        )
        if not events:
            return
        yield b"".join(msgspec.json.encode(shown(event)) + b"\n" for event in events)
        position = int(events[-1]["id"])
        if len(events) < EXPORT_PAGE:
            return


class Ndjson(Stream):
    """A streamed ``application/x-ndjson`` body (the route's own media type is SSE)."""

    def to_asgi_response(self, *args: Any, **kwargs: Any) -> Any:
        """Litestar's streamed response, with this body's media type."""
        return super().to_asgi_response(*args, **{**kwargs, "media_type": "application/x-ndjson"})
