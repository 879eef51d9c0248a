"""The one writer of events (``EventLog.transaction``) and the resume reader.

Ordering: every write transaction first updates the single ``log_head`` row.
That row lock is held until commit, so transactions that append take their
positions one after another and commit in that same order; a reader that has
seen position N and reads ``id > N`` can never miss a row committed later with
a smaller id. On SQLite the update also takes the write lock up front, so
concurrent writers queue on ``busy_timeout`` instead of failing.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

from sqlalchemy import bindparam, func, insert, select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from approvals.core.clock import now_iso
from approvals.events.filters import EventFilter
from approvals.events.models import Event, LogHead
from approvals.events.schema import to_json
from approvals.events.writer import SqliteWriter, Suspended, ThreadConnection, drive, prepared

events_table = Event.__table__  # type: ignore[attr-defined]
head_table = LogHead.__table__  # type: ignore[attr-defined]
NOTIFY_CHANNEL = "approvals_log"
# SET takes the columns the parameters name (built once: see queue.service).
EVENT_UPDATE = prepared(update(events_table).where(events_table.c.id == bindparam("event_id")))
_INSERTS: dict[str, Any] = {}
# The payload is the new head, so a process that already holds it (its own commit) skips
# the read a notification would otherwise cost.
# The first statement of every write transaction: takes the head row's lock (see above).
HEAD_LOCK = (
    update(head_table)
    .where(head_table.c.id == 1)
    .values(last_id=head_table.c.last_id)
    .returning(head_table.c.last_id)
)
HEAD_UPDATE = update(head_table).where(head_table.c.id == 1).values(last_id=bindparam("head"))
NOTIFY = text(f"SELECT pg_notify('{NOTIFY_CHANNEL}', :head)")
logger = logging.getLogger("approvals.log")


class AppendHook(Protocol):
    """Feature code that acts on events as they are appended, in the same transaction."""

    def prepare(self, tx: LogTransaction, rows: list[dict[str, Any]]) -> None:
        """Adjust rows (ids assigned) before they are inserted."""

    async def after(self, tx: LogTransaction, rows: list[dict[str, Any]]) -> None:
        """Write related rows after the events are inserted."""


class LogTransaction:
    """A database transaction that holds the log head; appends go through it."""

    def __init__(
        self,
        conn: AsyncConnection,
        head: int,
        hooks: Sequence[AppendHook],
        actor: str | None = None,
    ) -> None:
        self.conn = conn
        self.actor = actor  # the principal on whose behalf this transaction writes
        self.start = head
        self.head = head
        self.hooks = hooks
        self.appended: list[dict[str, Any]] = []
        self.extras: dict[str, Any] = {}  # per-transaction state of append hooks
        self.after_commit: list[Callable[[], Awaitable[None] | None]] = []
        self.committed = False

    async def append(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Append rows (column values); return each stored event's canonical JSON.

        A row whose ``(source, external_id)`` is already stored is not appended
        again: the first stored event is returned in its place.
        """
        now = now_iso()
        for row in rows:
            row.setdefault("source", "api")
        existing = await self._existing(rows)
        fresh: list[dict[str, Any]] = []
        results: list[dict[str, Any] | None] = []
        for row in rows:
            key = (row["source"], row.get("external_id"))
            if key[1] is not None and key in existing:
                results.append(existing[key])
                continue
            self.head += 1
            stored = {
                "category": None,
                "status": None,
                "title": None,
                "detail": None,
                "agent_id": None,
                "thread_id": None,
                "run_id": None,
                "external_id": None,
                "cost_tokens": None,
                "cost_usd": None,
                "resolved_at": None,
                "resolved_by": None,
                "approval_id": None,
                "redact": None,
                **row,
                "id": self.head,
            }
            stored.setdefault("created_at", now)
            if stored["created_at"] is None:
                stored["created_at"] = now
            fresh.append(stored)
            results.append(None)
            if key[1] is not None:
                existing[key] = stored  # a repeat inside the same batch
        if fresh:
            for hook in self.hooks:
                ready = getattr(hook, "before", None)  # async reads that prepare needs
                if ready is not None:
                    await ready(self, fresh)
            for hook in self.hooks:
                hook.prepare(self, fresh)
        if fresh:
            deferred = getattr(self.conn, "defer_events", None)
            if deferred is not None:
                deferred(fresh)
            else:
                await self.insert(events_table, fresh)
            for hook in self.hooks:
                await hook.after(self, fresh)
            self.appended.extend(fresh)
        out = []
        fresh_iter = iter(fresh)
        for result in results:
            out.append(to_json(result if result is not None else next(fresh_iter)))
        return out

    async def _existing(self, rows: list[dict[str, Any]]) -> dict[tuple[Any, Any], Any]:
        keys = {(r["source"], r["external_id"]) for r in rows if r.get("external_id") is not None}
        if not keys:
            return {}
        found: dict[tuple[Any, Any], Any] = {}
        ordered = sorted(keys)
        for start in range(0, len(ordered), 200):
            chunk = ordered[start : start + 200]
            result = await self.conn.execute(
                select(events_table).where(
                    tuple_(events_table.c.source, events_table.c.external_id).in_(chunk)
                )
            )
            for row in result.mappings():
                found[(row["source"], row["external_id"])] = dict(row)
        return found

    async def insert(self, table: Any, rows: list[dict[str, Any]]) -> None:
        """INSERT rows (a column left out takes its default) in this transaction.

        In SQLite's writer thread, straight through the sqlite3 cursor; elsewhere
        with one INSERT per table built once.
        """
        if not rows:
            return
        fast = getattr(self.conn, "insert_rows", None)
        if fast is not None:
            fast(table, rows)
            return
        await self.conn.execute(_insert_statement(table), rows)

    async def update_event(self, event_id: int, **values: Any) -> None:
        """Set an event's resolution fields (the one sanctioned change to a stored event)."""
        await self.conn.execute(EVENT_UPDATE, {"event_id": event_id, **values})


def _insert_statement(table: Any) -> Any:
    statement = _INSERTS.get(table.name)
    if statement is None:
        statement = _INSERTS[table.name] = insert(table)
    return statement


def _after_flush(name: str) -> Any:
    async def method(self: DeferringConnection, *args: Any, **kwargs: Any) -> Any:
        await self.flush()
        return await getattr(self.conn, name)(*args, **kwargs)

    method.__name__ = name
    method.__doc__ = f"``AsyncConnection.{name}``, after the held events."
    return method


class DeferringConnection:
    """An async connection that holds appended events until anything else runs.

    On PostgreSQL each statement is a round trip, and a group commit of single
    posts made one INSERT per request. Event rows wait here until the next
    statement of any kind (or the commit) and then go as one multi-row INSERT
    per column set, first: every statement still sees every event appended
    before it, and a failing INSERT still fails the transaction before commit.
    """

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self._events: list[dict[str, Any]] = []

    def defer_events(self, rows: list[dict[str, Any]]) -> None:
        """Hold event rows for the next flush."""
        self._events.extend(rows)

    async def flush(self) -> None:
        """INSERT the held events."""
        if not self._events:
            return
        rows, self._events = self._events, []
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in rows:
            groups.setdefault(tuple(row), []).append(row)
        for group in groups.values():
            await self.conn.execute(_insert_statement(events_table), group)

    # Every way of running a statement flushes the held events first.
    execute = _after_flush("execute")
    scalar = _after_flush("scalar")
    scalars = _after_flush("scalars")
    exec_driver_sql = _after_flush("exec_driver_sql")
    run_sync = _after_flush("run_sync")
    stream = _after_flush("stream")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


class EventLog:
    """The append-only log: one writer path, one resume reader."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        postgres: bool,
        on_commit: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> None:
        self.engine = engine
        self.postgres = postgres
        self.on_commit = on_commit
        self.hooks: list[AppendHook] = []
        # SQLite allows one writer; queueing here avoids its busy handler's sleeps.
        self._local_writer: Any = contextlib.nullcontext() if postgres else asyncio.Lock()
        self._queue: collections.deque[_Pending] = collections.deque()
        # PostgreSQL: heads this process is committing and has not yet handed to the broker.
        # Their notifications come back to this process's listener, often before the commit
        # returns here; the listener skips them instead of reading back our own events.
        self.own_heads: set[int] = set()
        self._committer: asyncio.Task[None] | None = None
        # Checks API keys admitted from a cache, in the append transaction: refusals by hash.
        self.thread_writer: SqliteWriter | None = None  # SQLite: whole transactions, one hop
        self.confirm_keys: (
            Callable[[AsyncConnection, set[str]], Awaitable[Mapping[str, Exception]]] | None
        ) = None

    def writer(self) -> Any:
        """Hold this while writing outside the log on SQLite (no-op on PostgreSQL)."""
        return self._local_writer

    @asynccontextmanager
    async def transaction(self, actor: str | None = None) -> AsyncIterator[LogTransaction]:
        """Open a write transaction that holds the log head until it commits."""
        notified: int | None = None
        try:
            async with self._local_writer, self.engine.connect() as conn:
                await conn.begin()
                try:
                    head = (await conn.execute(HEAD_LOCK)).scalar_one()
                    deferring = DeferringConnection(conn) if self.postgres else None
                    tx = LogTransaction(cast(Any, deferring or conn), head, self.hooks, actor)
                    yield tx
                    if deferring is not None:
                        await deferring.flush()
                    if tx.head != tx.start:
                        await conn.execute(HEAD_UPDATE, {"head": tx.head})
                        if self.postgres:
                            notified = tx.head
                            self.own_heads.add(notified)
                            await conn.execute(
                                NOTIFY, {"channel": NOTIFY_CHANNEL, "head": str(tx.head)}
                            )
                    await conn.commit()
                    tx.committed = True
                except BaseException:
                    await conn.rollback()
                    raise
            await self._publish(tx)
        finally:
            # Only now: the broker holds the events (or knows to read them). A head that did
            # not commit is dropped here; in the moment before, another process's
            # notification of the same head would be skipped and left to the broker's poll.
            if notified is not None:
                self.own_heads.discard(notified)

    async def _publish(self, tx: LogTransaction) -> None:
        """Hand a committed transaction's events to the broker; run its after-commit steps."""
        if tx.appended and self.on_commit is not None:
            self.on_commit([to_json(row) for row in tx.appended])
        for callback in tx.after_commit:
            result = callback()
            if result is not None:
                await result

    async def append(
        self, rows: list[dict[str, Any]], actor: str | None = None, confirm: str | None = None
    ) -> list[dict[str, Any]]:
        """Append rows atomically and return the stored events.

        Group commit: appends that arrive while a transaction is in flight wait
        in a queue, and the next transaction takes them all, each in arrival
        order (so positions follow arrival), each answered with its own events.
        A batch that fails is retried one request per transaction, so a bad
        request fails alone. A request's rows are all stored or none are.

        ``confirm``: the hash of the API key the caller was admitted with from
        the key cache; the transaction checks every such key of the batch in
        one query first and refuses the requests whose key is no longer good.
        """
        return await self.run(
            # Hooks take options out of the rows they are given: each attempt gets copies,
            # so a batch that must be retried still has the request's own rows.
            lambda tx: tx.append([dict(row) for row in rows]),
            actor,
            confirm,
            size=len(rows),
        )

    async def run(
        self,
        work: Callable[[LogTransaction], Awaitable[T]],
        actor: str | None = None,
        confirm: str | None = None,
        size: int = 1,
    ) -> T:
        """Run ``work`` in a group-committed log transaction and return its result.

        ``work`` may run more than once (a failed batch is retried a request at a
        time) and, on SQLite, in the writer thread: it must only use ``tx`` (its
        connection, ``append``, ``after_commit``), never the event loop.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(work, actor, future, confirm, size))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_queued())
        return cast(T, await future)

    async def _commit_queued(self) -> None:
        """Commit queued appends in batches until the queue is empty."""
        while self._queue:
            batch: list[_Pending] = []
            size = 0
            while self._queue and len(batch) < GROUP_ITEMS and size < GROUP_ROWS:
                item = self._queue.popleft()
                batch.append(item)
                size += item.size
            try:
                await self._commit(batch)
            except Exception as exc:
                if len(batch) == 1:
                    _settle(batch[0], error=exc)
                    continue
                for item in batch:  # find the one that fails; the others commit
                    try:
                        await self._commit([item])
                    except Exception as alone:
                        _settle(item, error=alone)
            except BaseException:
                for item in batch:
                    item.future.cancel()
                raise

    async def _commit(self, batch: list[_Pending]) -> None:
        """One transaction for the whole batch; raises only when nothing was committed."""
        results: list[Any]
        refused: dict[str, Exception]
        if self.thread_writer is not None:
            try:
                async with self._local_writer:
                    tx, results, refused = await asyncio.get_running_loop().run_in_executor(
                        self.thread_writer.thread, self._commit_in_thread, batch
                    )
            except Suspended:
                logger.debug("a write left the database; running it on the async path")
            else:
                await self._committed(tx)
                _settle_all(batch, results, refused)
                return
        results = []
        opened: list[LogTransaction] = []
        refused = {}
        try:
            async with self.transaction(batch[0].actor) as tx:
                opened.append(tx)
                keys = {item.confirm for item in batch if item.confirm}
                if keys and self.confirm_keys is not None:
                    refused.update(await self.confirm_keys(tx.conn, keys))
                for item in batch:
                    if item.confirm in refused:
                        results.append(None)
                        continue
                    tx.actor = item.actor
                    results.append(await item.work(tx))
        except Exception:
            if not (opened and opened[0].committed):
                raise
            # Stored: a failing after-commit step must not make the batch look unwritten
            # (a retry would append it twice).
            logger.exception("an after-commit step failed; the writes are stored")
        _settle_all(batch, results, refused)

    def _commit_in_thread(
        self, batch: list[_Pending]
    ) -> tuple[LogTransaction, list[Any], dict[str, Exception]]:
        """In the SQLite writer thread: the batch's whole transaction, committed or not."""
        assert self.thread_writer is not None
        conn = self.thread_writer.connection()
        results: list[Any] = []
        refused: dict[str, Exception] = {}
        with conn.begin():  # BEGIN IMMEDIATE: the write lock, so the head cannot move
            fast = ThreadConnection(conn)
            head = int(fast.scalar_sql("SELECT last_id FROM log_head WHERE id = 1"))
            tx = LogTransaction(cast(Any, fast), head, self.hooks, None)
            keys = {item.confirm for item in batch if item.confirm}
            if keys and self.confirm_keys is not None:
                refused.update(drive(self.confirm_keys(tx.conn, keys)))
            for item in batch:
                if item.confirm in refused:
                    results.append(None)
                    continue
                tx.actor = item.actor
                results.append(drive(item.work(tx)))
            if tx.head != tx.start:
                fast.run_sql("UPDATE log_head SET last_id = ? WHERE id = 1", (tx.head,))
        tx.committed = True
        return tx, results, refused

    async def _committed(self, tx: LogTransaction) -> None:
        """``_publish``, where a failure must not look like an unwritten batch."""
        try:
            await self._publish(tx)
        except Exception:
            logger.exception("an after-commit step failed; the writes are stored")

    async def get(self, event_id: int) -> dict[str, Any] | None:
        """One event by position."""
        async with self.engine.connect() as conn:
            row = (
                (await conn.execute(select(events_table).where(events_table.c.id == event_id)))
                .mappings()
                .first()
            )
        return to_json(row) if row is not None else None

    async def last_position(self) -> int:
        """The highest committed position (0 for an empty log)."""
        async with self.engine.connect() as conn:
            value = (await conn.execute(select(func.max(events_table.c.id)))).scalar()
        return int(value or 0)

    async def read_after(
        self,
        position: int,
        *,
        upto: int | None = None,
        where: EventFilter | None = None,
        limit: int = 500,
        since: str | None = None,
        until: str | None = None,
    ) -> list[dict[str, Any]]:
        """Events after ``position`` (and up to ``upto``), oldest first; ``since`` and
        ``until`` (canonical timestamps) bound ``createdAt``, ``until`` excluded."""
        query = select(events_table).where(events_table.c.id > position)
        if upto is not None:
            query = query.where(events_table.c.id <= upto)
        if where is not None:
            query = query.where(where.where())
        if since is not None:
            query = query.where(events_table.c.created_at >= since)
        if until is not None:
            query = query.where(events_table.c.created_at < until)
        query = query.order_by(events_table.c.id).limit(limit)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [to_json(row) for row in rows]

    async def tail(
        self, count: int, *, upto: int | None = None, where: EventFilter | None = None
    ) -> list[dict[str, Any]]:
        """The last ``count`` matching events, oldest first."""
        query = select(events_table)
        if upto is not None:
            query = query.where(events_table.c.id <= upto)
        if where is not None:
            query = query.where(where.where())
        query = query.order_by(events_table.c.id.desc()).limit(count)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [to_json(row) for row in reversed(rows)]


GROUP_ITEMS = 256  # requests per group-committed transaction
GROUP_ROWS = 2000  # events per group-committed transaction (a larger request goes alone)


T = TypeVar("T")


@dataclass(slots=True)
class _Pending:
    work: Callable[[LogTransaction], Awaitable[Any]]
    actor: str | None
    future: asyncio.Future[Any]
    confirm: str | None = None
    size: int = 1


def _settle(item: _Pending, result: Any = None, error: BaseException | None = None) -> None:
    if item.future.done():  # the caller went away; its events are stored all the same
        return
    if error is not None:
        item.future.set_exception(error)
    else:
        item.future.set_result(result)


def _settle_all(batch: list[_Pending], results: list[Any], refused: dict[str, Exception]) -> None:
    for item, result in zip(batch, results, strict=True):
        if item.confirm in refused:
            _settle(item, error=refused[item.confirm])
        else:
            _settle(item, result=result)


def new_id(prefix: str) -> str:
    """A random public id such as ``apr_3kX9…``."""
    return f"{prefix}_{secrets.token_urlsafe(12).replace('-', 'x').replace('_', 'y')}"
