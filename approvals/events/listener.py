"""PostgreSQL LISTEN: wakes the broker when another process appends."""

from __future__ import annotations

import asyncio
import logging

import psycopg

from approvals.events.broker import Broker
from approvals.events.log import NOTIFY_CHANNEL

log = logging.getLogger("approvals.listener")


async def listen(dsn: str, broker: Broker) -> None:
    """Kick the broker on every notification; reconnect when the connection drops."""
    delay = 0.5
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                delay = 0.5
                broker.kick()  # catch up on anything appended while not listening
                async for _ in conn.notifies():
                    broker.kick()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("LISTEN connection failed (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
