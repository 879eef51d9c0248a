"""In-process fan-out: a shared ring of recent events, each encoded once.

The broker carries positions, not subscriber buffers. Every subscriber keeps
its own cursor and reads from the ring while the ring still covers it, or
from the log when it has fallen behind, so a slow reader costs no memory and
never skips. The ring is fed in commit order: local appends whose first
position follows the ring's head go straight in; anything else (another
process's appends, out-of-order local commits) wakes the tailer, which reads
the log after the head.

Streams are woken in passes of ``WAKE_CHUNK`` at a time, the server reading
its sockets between chunks: with thousands of streams a pass takes tens of
milliseconds, and events committed meanwhile reach the streams not yet woken
in the same write as the earlier ones (and the others in the next pass)
instead of waiting for a whole pass each. A stream whose position is already
the head stays asleep.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from approvals.events.schema import shown

log = logging.getLogger("approvals.broker")

WAKE_CHUNK = 256  # streams woken per loop iteration in a wake pass


@dataclass(frozen=True, slots=True)
class Item:
    """One event in the ring: its position, canonical JSON and encoded SSE frame."""

    id: int
    event: dict[str, Any]
    frame: bytes
    added: float


def encode_frame(event: dict[str, Any]) -> bytes:
    """Encode one event as an SSE message (``id``, ``event``, one ``data`` line), as
    people see it (its arguments redacted by its approval's policy)."""
    data = msgspec.json.encode(shown(event))
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (
        event["id"].encode(),
        event["type"].encode(),
        data,
    )


class Broker:
    """Holds the recent tail of the log and wakes subscribers when it grows."""

    def __init__(self, capacity: int = 10_000, keepalive: float = 15.0) -> None:
        self.capacity = max(capacity, 100)
        self.keepalive = keepalive
        self.head = 0  # every event with floor < id <= head is in the ring
        self.floor = 0
        self._ids: list[int] = []
        self._items: list[Item] = []
        self._waiters: set[asyncio.Future[bool]] = set()
        # Streams wait without a timer each: one shared tick per keepalive period wakes them.
        # Each waiting stream's future and the position it has sent up to.
        self._streams: dict[asyncio.Future[bool], int] = {}
        self._pass: list[tuple[asyncio.Future[bool], int]] = []  # yet to wake in this pass
        self._pass_at = 0  # the next index in ``_pass``
        self._again = False  # the head grew during the pass: another pass follows
        self._ticker: asyncio.TimerHandle | None = None
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.subscribers = 0
        self.on_added: Callable[[list[Item]], None] | None = None

    def reset(self, head: int) -> None:
        """Start empty at ``head`` (the last committed position)."""
        self.head = self.floor = head
        self._ids.clear()
        self._items.clear()

    def offer(self, events: list[dict[str, Any]]) -> None:
        """Take events a local transaction just committed, or fetch what precedes them."""
        if events and int(events[0]["id"]) == self.head + 1:
            self._add(events)
        elif events and int(events[-1]["id"]) > self.head:
            self.kick()

    def kick(self) -> None:
        """Ask the tailer to read the log after the head."""
        self._kick.set()

    def _add(self, events: list[dict[str, Any]]) -> None:
        now = time.monotonic()
        items = []
        for event in events:
            position = int(event["id"])
            if position <= self.head:
                continue
            item = Item(position, event, encode_frame(event), now)
            items.append(item)
            self._ids.append(position)
            self._items.append(item)
            self.head = position
        if not items:
            return
        if len(self._ids) > self.capacity + self.capacity // 4:
            cut = len(self._ids) - self.capacity
            self.floor = self._ids[cut - 1]
            del self._ids[:cut]
            del self._items[:cut]
        if self.on_added is not None:
            self.on_added(items)
        self._release(True)

    def _release(self, grew: bool) -> None:
        if not grew:  # the keepalive tick: every stream asleep now sends one
            streams, self._streams = self._streams, {}
            for waiter in streams:
                if not waiter.done():
                    waiter.set_result(False)
            return
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(True)
        self._start_pass()

    def _start_pass(self) -> None:
        if self._pass:  # a pass is under way: streams it already woke get these next pass
            self._again = True
            return
        self._again = False
        self._pass, self._streams = list(self._streams.items()), {}
        self._pass_at = 0
        self._wake_chunk()

    def _wake_chunk(self) -> None:
        end = min(self._pass_at + WAKE_CHUNK, len(self._pass))
        head = self.head
        for waiter, position in self._pass[self._pass_at : end]:
            if waiter.done():
                continue
            if position < head:
                waiter.set_result(True)
            else:
                self._streams[waiter] = position  # nothing new for it: back to sleep
        self._pass_at = end
        loop = asyncio.get_running_loop()
        if end < len(self._pass):
            loop.call_soon(self._wake_chunk)
            return
        self._pass = []
        if self._again:
            # After the last chunk's streams have run: they have taken what there is.
            loop.call_soon(self._start_pass)

    def since(self, position: int) -> list[Item] | None:
        """Ring items after ``position``, or None when the ring no longer covers it."""
        if position < self.floor:
            return None
        start = bisect.bisect_right(self._ids, position)
        return self._items[start:]

    async def wait(self, position: int, timeout: float) -> bool:
        """Wait until the head passes ``position``; False on timeout."""
        if self.head > position:
            return True
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiters.add(waiter)
        handle = loop.call_later(timeout, _expire, waiter)
        try:
            return await waiter
        finally:
            handle.cancel()
            self._waiters.discard(waiter)

    async def next(self, position: int) -> bool:
        """Wait until the head passes ``position`` (True) or the next keepalive tick (False).

        The tick is shared: every stream idle at that moment sends its keepalive then, so
        no stream goes longer than ``keepalive`` seconds without a write, and waiting costs
        no timer per wake-up.
        """
        if self.head > position:
            return True
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._streams[waiter] = position
        try:
            return await waiter
        finally:
            self._streams.pop(waiter, None)

    def _tick(self) -> None:
        self._release(False)
        self._ticker = asyncio.get_running_loop().call_later(self.keepalive, self._tick)

    def start(
        self,
        read_after: Callable[[int], Awaitable[list[dict[str, Any]]]],
        poll_seconds: float,
    ) -> None:
        """Run the tailer (on a kick or every ``poll_seconds``, read what follows the head)
        and the keepalive tick."""
        self._task = asyncio.create_task(self._tail(read_after, poll_seconds))
        self._ticker = asyncio.get_running_loop().call_later(self.keepalive, self._tick)

    async def stop(self) -> None:
        """Stop the tailer and release every waiting subscriber."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        pending = [waiter for waiter, _ in self._pass[self._pass_at :]]
        self._pass = []
        for waiter in (*self._waiters, *self._streams, *pending):
            if not waiter.done():
                waiter.set_result(False)

    async def _tail(
        self,
        read_after: Callable[[int], Awaitable[list[dict[str, Any]]]],
        poll_seconds: float,
    ) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), poll_seconds)
            self._kick.clear()
            try:
                while True:
                    events = await read_after(self.head)
                    if not events:
                        break
                    self._add(events)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reading the log after %s failed; retrying", self.head)
                await asyncio.sleep(min(poll_seconds, 1.0))


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)
