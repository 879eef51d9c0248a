"""The broker wakes thousands of streams in passes; every stream still gets every event.

These drive the broker the way ``approvals.http.stream.subscribe`` does (read
what is new, else wait for the next wake-up), with more streams than one chunk
of a pass, while events arrive in the middle of passes.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from approvals.events.broker import WAKE_CHUNK, Broker

STREAMS = WAKE_CHUNK * 4 + 7


def _event(position: int) -> dict[str, Any]:
    return {"id": str(position), "type": "tick", "title": f"t{position}"}


async def _follow(broker: Broker, got: list[int], writes: list[int]) -> None:
    position = broker.head
    while True:
        items = broker.since(position)
        assert items is not None
        if items:
            got.extend(item.id for item in items)
            writes.append(len(items))
            position = items[-1].id
            continue
        if not await broker.next(position):
            return  # stopped


def test_events_added_during_a_pass_reach_every_stream_once_and_in_order() -> None:
    async def scenario() -> tuple[list[list[int]], list[list[int]], int]:
        broker = Broker(capacity=1000, keepalive=60)
        got: list[list[int]] = [[] for _ in range(STREAMS)]
        writes: list[list[int]] = [[] for _ in range(STREAMS)]
        tasks = [asyncio.create_task(_follow(broker, got[n], writes[n])) for n in range(STREAMS)]
        await asyncio.sleep(0)  # every stream waits
        rng = random.Random(7)
        position = 0
        for _ in range(60):
            # Events land between chunks of a pass, at its start, or after a pause.
            for _ in range(rng.choice([1, 1, 2, 5])):
                position += 1
                broker.offer([_event(position)])
            for _ in range(rng.choice([0, 1, 2, 3, 9])):
                await asyncio.sleep(0)
            if rng.random() < 0.1:
                await asyncio.sleep(0.002)
        for _ in range(200):  # every stream catches up, however the last pass ended
            if all(len(g) == position for g in got):
                break
            await asyncio.sleep(0.005)
        await broker.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
        return got, writes, position

    got, _, last = asyncio.run(scenario())
    expected = list(range(1, last + 1))
    assert all(g == expected for g in got), "a stream missed, repeated or reordered an event"


def test_streams_woken_late_in_a_pass_write_what_arrived_during_it_at_once() -> None:
    async def scenario() -> list[list[int]]:
        broker = Broker(capacity=1000, keepalive=60)
        got: list[list[int]] = [[] for _ in range(STREAMS)]
        writes: list[list[int]] = [[] for _ in range(STREAMS)]
        tasks = [asyncio.create_task(_follow(broker, got[n], writes[n])) for n in range(STREAMS)]
        await asyncio.sleep(0)
        broker.offer([_event(1)])
        await asyncio.sleep(0)  # the pass's first chunk has written event 1
        broker.offer([_event(2)])
        for _ in range(100):
            if all(g == [1, 2] for g in got):
                break
            await asyncio.sleep(0)
        await broker.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
        return writes

    writes = asyncio.run(scenario())
    assert writes[0] == [1, 1]  # woken first: event 1, then 2 in the next pass
    assert writes[-1] == [2]  # woken last: both events in one write


def test_a_stream_that_has_everything_is_not_woken_and_stop_releases_a_pass() -> None:
    async def scenario() -> tuple[int, bool]:
        broker = Broker(capacity=1000, keepalive=60)
        broker.offer([_event(1)])
        waits = [asyncio.ensure_future(broker.next(0)) for _ in range(STREAMS)]
        current = asyncio.ensure_future(broker.next(1))  # already has event 1
        await asyncio.sleep(0)
        woken_at_once = sum(w.done() for w in waits)  # head > 0: no wait at all
        # Streams waiting at the head: a pass of them is cut short by stop().
        behind = [asyncio.ensure_future(broker.next(1)) for _ in range(STREAMS)]
        await asyncio.sleep(0)
        broker.offer([_event(2)])  # starts a pass: chunk by chunk, one per loop turn
        await asyncio.sleep(0)
        partly = sum(w.done() for w in behind)
        await broker.stop()
        await asyncio.sleep(0)
        assert all(w.done() for w in behind) and current.done()
        return woken_at_once, 0 < partly < STREAMS

    woken_at_once, cut_short = asyncio.run(scenario())
    assert woken_at_once == STREAMS
    assert cut_short
