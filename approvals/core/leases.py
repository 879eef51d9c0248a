"""Leases in the database: one instance at a time holds a named duty, renewing it.

A lease row names its holder (one per server process) and when it lapses. The
holder renews it every few seconds; when the holder dies the row lapses and
the next instance that asks takes it over. Work done under a lease can check
it in its own transaction (``hold``), so a holder that stalled past its lease
cannot write after another has taken over.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import Field, SQLModel

from approvals.core.clock import iso

LEASE_SECONDS = 6.0  # a dead holder's duty is taken over within this plus one look
RENEW_SECONDS = 2.0
_holder: tuple[int, str] | None = None


def holder_id() -> str:
    """This process's name in lease rows: host, pid and a random tag."""
    global _holder
    if _holder is None or _holder[0] != os.getpid():
        _holder = (os.getpid(), f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}")
    return _holder[1]


class LeaseRow(SQLModel, table=True):
    """Who holds the duty ``name`` and until when."""

    __tablename__ = "leases"

    name: str = Field(primary_key=True, max_length=200)
    holder: str = Field(max_length=200)
    expires_at: str = Field(max_length=32)
    acquired_at: str = Field(max_length=32)


leases_table = LeaseRow.__table__  # type: ignore[attr-defined]


class LeaseLost(Exception):
    """Another instance holds the lease now: stop the work it guards."""


def _at(seconds: float = 0.0) -> str:
    return iso(datetime.now(UTC) + timedelta(seconds=seconds))


class Lease:
    """One named lease as seen by this process."""

    def __init__(
        self,
        engine: AsyncEngine,
        name: str,
        *,
        holder: str | None = None,
        seconds: float = LEASE_SECONDS,
        writer: Any = None,
    ) -> None:
        self.engine = engine
        self.name = name
        self.holder = holder or holder_id()
        self.seconds = seconds
        # On SQLite, queue behind this process's appends rather than SQLite's busy handler.
        self.writer = writer if writer is not None else contextlib.nullcontext()

    async def acquire(self) -> bool:
        """Take the lease if it is free, lapsed or already ours; True when held."""
        now = _at()
        async with self.engine.connect() as conn:  # a read first: no write lock when taken
            row = (
                await conn.execute(
                    select(leases_table.c.holder, leases_table.c.expires_at).where(
                        leases_table.c.name == self.name
                    )
                )
            ).first()
        if row is not None and row.holder != self.holder and row.expires_at >= now:
            return False
        async with self.writer, self.engine.begin() as conn:
            if row is None:
                try:
                    async with conn.begin_nested():
                        await conn.execute(
                            insert(leases_table).values(
                                name=self.name,
                                holder=self.holder,
                                expires_at=_at(self.seconds),
                                acquired_at=now,
                            )
                        )
                    return True
                except IntegrityError:
                    pass  # another instance inserted it first; it may still be lapsed
            taken = await conn.execute(
                update(leases_table)
                .where(
                    leases_table.c.name == self.name,
                    (leases_table.c.holder == self.holder) | (leases_table.c.expires_at < now),
                )
                .values(holder=self.holder, expires_at=_at(self.seconds), acquired_at=now)
            )
            return taken.rowcount == 1

    async def renew(self) -> bool:
        """Extend the lease; False when another instance holds it now."""
        async with self.writer, self.engine.begin() as conn:
            return await self._extend(conn)

    async def hold(self, conn: AsyncConnection) -> None:
        """Extend the lease inside the caller's transaction, or raise ``LeaseLost``."""
        if not await self._extend(conn):
            raise LeaseLost(self.name)

    async def _extend(self, conn: AsyncConnection) -> bool:
        result = await conn.execute(
            update(leases_table)
            .where(leases_table.c.name == self.name, leases_table.c.holder == self.holder)
            .values(expires_at=_at(self.seconds))
        )
        return result.rowcount == 1

    async def release(self) -> None:
        """Give the lease up so another instance may take it at once."""
        async with self.writer, self.engine.begin() as conn:
            await conn.execute(
                delete(leases_table).where(
                    leases_table.c.name == self.name, leases_table.c.holder == self.holder
                )
            )
