"""The long-lived parts of a running service, built at start-up and shared."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from itsdangerous import URLSafeTimedSerializer
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from approvals.auth import audit
from approvals.auth.keys import KeyCache
from approvals.auth.rates import RateError, RateLimiter, StreamCounter, parse_rate
from approvals.connectors.resume import resume_deliveries, resume_secret
from approvals.connectors.runner import Connectors
from approvals.core.beats import Beats
from approvals.core.config import Settings
from approvals.core.db import is_postgres, libpq_dsn, make_async_engine, sqlite_pragmas
from approvals.core.metrics import EVENTS_APPENDED, LOG_HEAD
from approvals.delivery.channels.notices import KIND as NOTIFY
from approvals.delivery.channels.notices import OpenNotifications, message_updates
from approvals.delivery.channels.pager import KIND as PAGE
from approvals.delivery.channels.pager import Pager, page_resolves
from approvals.delivery.channels.push import KIND as PUSH
from approvals.delivery.channels.push import push_decided, push_requests
from approvals.delivery.channels.pusher import Pusher
from approvals.delivery.channels.sender import Notifier
from approvals.delivery.outbox import Outbox
from approvals.delivery.secrets import LOOKUPS
from approvals.delivery.worker import DeliveryWorker
from approvals.events.broker import Broker
from approvals.events.listener import listen
from approvals.events.log import EventLog
from approvals.events.wakeup import Wakeup, wake_dir
from approvals.events.writer import SqliteWriter
from approvals.queue.expiry import expiry_loop
from approvals.queue.feed import ChangeCache
from approvals.queue.rollup import fold_loop
from approvals.queue.service import OpenApprovals

T = TypeVar("T")


@dataclass
class Services:
    """Settings, engine, log and broker of one service process."""

    settings: Settings
    url: URL
    engine: AsyncEngine
    log: EventLog
    broker: Broker
    webhooks: DeliveryWorker
    connectors: Connectors = field(init=False)  # made in build(): they need the services
    wakeup: Wakeup | None = None
    notifier: Notifier = field(init=False)
    pusher: Pusher = field(init=False)  # Web Push: its VAPID keys serve the dashboard too
    feed_cache: ChangeCache = field(default_factory=ChangeCache)
    rates: RateLimiter = field(default_factory=RateLimiter)
    keys: KeyCache = field(default_factory=KeyCache)
    streams: StreamCounter = field(default_factory=StreamCounter)
    signers: dict[str, URLSafeTimedSerializer] = field(default_factory=dict)  # by salt
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    beats: Beats = field(default_factory=Beats)  # background loops' turns, for /readyz

    @classmethod
    def build(cls, settings: Settings, url: URL) -> Services:
        """Create the engine, log and broker (nothing runs until ``start``)."""
        engine = make_async_engine(url, settings.database_pool_size)
        broker = Broker(settings.broker_buffer, settings.keepalive_seconds)
        # SQLite has no LISTEN: processes on one file wake each other with datagrams.
        folder = None if is_postgres(url) else wake_dir(url)
        wakeup = Wakeup(folder, broker) if folder is not None else None
        log = EventLog(engine, postgres=is_postgres(url), on_commit=_counted(broker, wakeup))
        if not is_postgres(url):
            log.thread_writer = SqliteWriter(url, sqlite_pragmas)
        broker.on_added = lambda items: LOG_HEAD.set(items[-1].id)
        webhooks = DeliveryWorker(engine, settings, postgres=is_postgres(url), writer=log.writer())
        outbox = Outbox(webhooks.wake)
        outbox.on_resolved.append(resume_deliveries)
        outbox.on_resolved.append(message_updates)
        outbox.on_resolved.append(page_resolves)
        outbox.on_resolved.append(push_decided)
        notices = OpenNotifications(webhooks.wake)
        notices.on_open.append(push_requests)
        LOOKUPS["resume"] = resume_secret
        # The log's append hooks, the one place they are wired, in the order they run:
        # OpenApprovals inserts each request's approval (and applies auto/deny policies),
        # OpenNotifications then reads those approvals to queue each channel's notices
        # and Web Push requests, and the Outbox last queues webhook deliveries for every
        # event, resolutions included.
        log.hooks = [OpenApprovals(), notices, outbox]
        try:
            default_rate = parse_rate(settings.rate_limit)
        except RateError as exc:
            raise SystemExit(f"APPROVALS_RATE_LIMIT: {exc}") from exc
        services = cls(
            settings,
            url,
            engine,
            log,
            broker,
            webhooks,
            wakeup=wakeup,
            rates=RateLimiter(engine, is_postgres(url), default_rate),
            streams=StreamCounter(settings.max_streams_per_key),
        )
        log.confirm_keys = services.keys.confirm
        services.connectors = Connectors(services)
        services.notifier = Notifier(services)
        webhooks.senders[NOTIFY] = services.notifier
        webhooks.senders[PAGE] = Pager(services)
        services.pusher = Pusher(services, services.notifier.signer)  # SystemExit: bad keys
        webhooks.senders[PUSH] = services.pusher
        webhooks.beat = lambda: services.beats.beat("deliveries")
        return services

    async def start(self) -> None:
        """Load the log head and start the tailer (and LISTEN on PostgreSQL)."""
        self.broker.reset(await self.log.last_position())
        LOG_HEAD.set(self.broker.head)
        self.broker.start(
            lambda position: self.log.read_after(position, limit=1000),
            self.settings.poll_seconds,
        )
        if is_postgres(self.url):
            self.tasks.append(
                asyncio.create_task(listen(libpq_dsn(self.url), self.broker, self.log.own_heads))
            )
        if self.wakeup is not None:
            self.wakeup.start()
            self.broker.kick()  # catch up on what was appended before the socket was bound
        loops = {
            "expiry": expiry_loop(self),
            "deliveries": self.webhooks.run(),
            "connectors": self.connectors.run(),
            "stats": fold_loop(self),
        }
        for name, loop in loops.items():
            self.tasks.append(self.beats.watch(name, asyncio.create_task(loop, name=name)))

    async def stop(self) -> None:
        """Stop background work and close the engine."""
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.tasks.clear()
        with contextlib.suppress(Exception):
            await self.notifier.close()
        if self.wakeup is not None:
            self.wakeup.stop()
        await self.broker.stop()
        if self.log.thread_writer is not None:
            await asyncio.to_thread(self.log.thread_writer.close)
        await self.engine.dispose()


def _counted(broker: Broker, wakeup: Wakeup | None) -> Any:
    def on_commit(events: list[dict[str, Any]]) -> None:
        EVENTS_APPENDED.inc(len(events))
        if wakeup is not None:
            wakeup.notify(int(events[-1]["id"]))
        broker.offer(events)

    return on_commit


def run_audited(url: URL, work: Callable[[Connection, audit.Record], T]) -> T:
    """Run a command-line change and its audit events in one log transaction.

    ``work`` gets a connection in the transaction and ``record(action, title,
    **detail)``; what it records is appended before the commit, and a running
    service learns of it at once (LISTEN on PostgreSQL, a wake-up on SQLite).
    """
    actor = audit.cli_actor()

    async def main() -> T:
        engine = make_async_engine(url, 1)
        postgres = is_postgres(url)
        folder = None if postgres else wake_dir(url)
        wakeup = Wakeup(folder, Broker()) if folder is not None else None

        def woken(events: list[dict[str, Any]]) -> None:
            if wakeup is not None:
                wakeup.notify(int(events[-1]["id"]))

        log = EventLog(engine, postgres=postgres, on_commit=woken)
        log.hooks.append(Outbox(lambda: None))  # webhooks that name audit.* get these too
        rows: list[dict[str, Any]] = []

        def note(action: str, title: str, /, **detail: Any) -> None:
            rows.append(audit.row(action, actor, title, **detail))

        try:
            async with log.transaction(actor) as tx:
                result = await tx.conn.run_sync(lambda conn: work(conn, note))
                if rows:
                    await tx.append(rows)
        finally:
            if wakeup is not None:
                wakeup.stop()
            await engine.dispose()
        return result

    return asyncio.run(main())
