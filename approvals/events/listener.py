"""PostgreSQL LISTEN: wakes the broker when another process appends."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Container

import psycopg

from approvals.events.broker import Broker
from approvals.events.log import NOTIFY_CHANNEL

log = logging.getLogger("approvals.listener")


async def listen(dsn: str, broker: Broker, own: Container[int] = ()) -> None:
    """Kick the broker on each notification of a head it lacks; reconnect when dropped.

    ``own``: heads this process is committing (``EventLog.own_heads``), which it hands
    to the broker itself.
    """
    delay = 0.5
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                delay = 0.5
                broker.kick()  # catch up on anything appended while not listening
                async for note in conn.notifies():
                    # The payload is the head the notifying commit left (empty from
                    # older versions): a head this process holds needs no read.
                    if not (note.payload.isascii() and note.payload.isdigit()):
                        broker.kick()
                        continue
                    head = int(note.payload)
                    if head > broker.head and head not in own:
                        broker.kick()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("LISTEN connection failed (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
