"""Group commit: concurrent appends share transactions yet each is answered as if alone."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from sqlalchemy import text

from approvals.core.db import (
    is_postgres,
    make_async_engine,
    make_sync_engine,
    parse_url,
    sqlite_pragmas,
)
from approvals.events.log import EventLog, LogTransaction
from approvals.events.writer import SqliteWriter
from conftest import Database


class Poison:
    """An append hook that fails the transaction on a row titled ``poison``."""

    def __init__(self) -> None:
        # Appends per transaction, keyed by the transaction itself: keeping it alive means
        # no later transaction can take its id() and merge the counts.
        self.appends: dict[LogTransaction, int] = {}

    def prepare(self, tx: LogTransaction, rows: list[dict[str, Any]]) -> None:
        self.appends[tx] = self.appends.get(tx, 0) + 1

    async def after(self, tx: LogTransaction, rows: list[dict[str, Any]]) -> None:
        if any(row.get("title") == "poison" for row in rows):
            raise RuntimeError("poisoned row")


class Wanders:
    """An append hook that awaits something besides the database (as no hook should)."""

    def prepare(self, tx: LogTransaction, rows: list[dict[str, Any]]) -> None:
        pass

    async def after(self, tx: LogTransaction, rows: list[dict[str, Any]]) -> None:
        await asyncio.sleep(0)


async def _run(url: str, work: Any, *hooks: Any) -> Any:
    parsed = parse_url(url)
    engine = make_async_engine(parsed)
    log = EventLog(engine, postgres=is_postgres(parsed))
    if not is_postgres(parsed):  # as the service runs: whole transactions in one thread
        log.thread_writer = SqliteWriter(parsed, sqlite_pragmas)
    try:
        hook = Poison()
        log.hooks.extend([hook, *hooks])
        return await work(log, hook), engine
    finally:
        if log.thread_writer is not None:
            log.thread_writer.close()
        await engine.dispose()


def _stored(db: Database) -> list[tuple[int, str, str]]:
    engine = make_sync_engine(parse_url(db.url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, title, run_id FROM events ORDER BY id")).all()
    finally:
        engine.dispose()
    return [(int(r[0]), r[1], r[2]) for r in rows]


def test_a_failing_request_fails_alone_and_the_others_are_stored_in_order(
    database: Database,
) -> None:
    async def work(log: EventLog, hook: Poison) -> Any:
        requests = []
        for n in range(40):
            rows = [{"type": "token", "title": f"t{n}", "run_id": f"r{n}"}]
            if n == 17:  # two rows, one bad: neither may be stored
                rows = [
                    {"type": "token", "title": "fine", "run_id": "r17"},
                    {"type": "token", "title": "poison", "run_id": "r17"},
                ]
            requests.append(log.append(rows, actor=f"key:{n}"))
        answers = await asyncio.gather(*requests, return_exceptions=True)
        return answers, max(hook.appends.values())

    (answers, most), _ = asyncio.run(_run(database.url, work))
    assert isinstance(answers[17], RuntimeError)
    good = [a for n, a in enumerate(answers) if n != 17]
    assert all(isinstance(a, list) and len(a) == 1 for a in good)
    assert [a[0]["runId"] for a in good] == [f"r{n}" for n in range(40) if n != 17]
    ids = [int(a[0]["id"]) for a in good]
    assert ids == sorted(ids) and len(set(ids)) == 39  # positions follow arrival
    stored = _stored(database)
    assert [(i, t, r) for i, t, r in stored] == [
        (int(a[0]["id"]), a[0]["title"], a[0]["runId"]) for a in good
    ]
    assert all(title not in ("fine", "poison") for _, title, _ in stored)
    assert most > 1  # requests were grouped: one transaction took several


def test_repeats_of_one_external_id_in_one_group_store_one_event(database: Database) -> None:
    async def work(log: EventLog, hook: Poison) -> Any:
        row = {"type": "tool_call", "title": "once", "external_id": "step-1", "source": "agent"}
        return await asyncio.gather(*(log.append([dict(row)]) for _ in range(10)))

    answers, _ = asyncio.run(_run(database.url, work))
    assert len({a[0]["id"] for a in answers}) == 1
    assert [t for _, t, _ in _stored(database)] == ["once"]


def test_a_write_that_leaves_the_database_still_commits_once(database: Database) -> None:
    # On SQLite the batch first runs in the writer thread, where waiting on the event loop
    # is impossible: it rolls back there and commits on the async path instead.
    async def work(log: EventLog, hook: Poison) -> Any:
        return await asyncio.gather(
            *(log.append([{"type": "token", "title": f"w{n}"}]) for n in range(5))
        )

    answers, _ = asyncio.run(_run(database.url, work, Wanders()))
    assert [a[0]["title"] for a in answers] == [f"w{n}" for n in range(5)]
    assert [t for _, t, _ in _stored(database)] == [f"w{n}" for n in range(5)]


class Sees:
    """An append hook that reads the log in the transaction, as approval opening does."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []

    def prepare(self, tx: LogTransaction, rows: list[dict[str, Any]]) -> None:
        pass

    async def after(self, tx: LogTransaction, rows: list[dict[str, Any]]) -> None:
        latest = (await tx.conn.execute(text("SELECT max(id) FROM events"))).scalar_one()
        self.seen.append((int(latest), max(int(row["id"]) for row in rows)))


def test_statements_in_a_group_see_every_event_appended_before_them(database: Database) -> None:
    # On PostgreSQL appended events are held back and sent as one INSERT before the next
    # statement: each statement must still see them, whatever columns each request set.
    sees = Sees()

    async def work(log: EventLog, hook: Poison) -> Any:
        bodies = [
            {"type": "token", "title": "plain"},
            {"type": "token", "detail": {"k": 1}, "created_at": "2026-01-02T03:04:05.000Z"},
            {"type": "token", "agent_id": "a1", "thread_id": "t1"},
        ]
        return await asyncio.gather(
            *(log.append([dict(bodies[n % 3])]) for n in range(30)), return_exceptions=True
        )

    answers, _ = asyncio.run(_run(database.url, work, sees))
    assert all(isinstance(a, list) for a in answers), answers
    assert sees.seen and all(latest == mine for latest, mine in sees.seen)
    stored = _stored(database)
    assert [i for i, _, _ in stored] == sorted(int(a[0]["id"]) for a in answers)
    assert answers[1][0]["createdAt"] == "2026-01-02T03:04:05.000Z"
    assert answers[1][0]["detail"] == {"k": 1} and answers[2][0]["agentId"] == "a1"


def test_a_process_reads_back_only_what_other_processes_append(
    postgres_database: Database,
) -> None:
    """PostgreSQL: this process's own notifications cost no log read; another's do."""
    from approvals.core.db import libpq_dsn
    from approvals.events.broker import Broker
    from approvals.events.listener import listen

    async def main() -> tuple[int, int, int, list[str]]:
        parsed = parse_url(postgres_database.url)
        engine = make_async_engine(parsed)
        broker = Broker(keepalive=60)
        reads = 0
        ours = EventLog(engine, postgres=True, on_commit=broker.offer)
        theirs = EventLog(engine, postgres=True)  # another process: it tells nobody here

        async def read_after(position: int) -> list[dict[str, Any]]:
            nonlocal reads
            reads += 1
            return await ours.read_after(position)

        broker.start(read_after, poll_seconds=600)
        listener = asyncio.create_task(listen(libpq_dsn(parsed), broker, ours.own_heads))
        try:
            for _ in range(200):  # connected: its first kick has read the (empty) log
                if reads:
                    break
                await asyncio.sleep(0.05)
            before = reads
            for n in range(20):
                await ours.append([{"type": "tick", "title": f"ours {n}"}])
            await asyncio.sleep(0.5)  # every notification has come back by now
            after_ours = reads
            await theirs.append([{"type": "tick", "title": "theirs"}])
            for _ in range(100):
                if broker.head == 21:
                    break
                await asyncio.sleep(0.05)
            titles = [item.event["title"] for item in broker.since(0) or []]
            return before, after_ours, reads, titles
        finally:
            listener.cancel()
            await broker.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            await engine.dispose()

    before, after_ours, after_theirs, titles = asyncio.run(main())
    assert before >= 1
    assert after_ours == before  # twenty commits of our own, not one read back
    assert after_theirs > after_ours  # another process's append is read
    assert titles == [f"ours {n}" for n in range(20)] + ["theirs"]
