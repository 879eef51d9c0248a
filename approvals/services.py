"""The long-lived parts of a running service, built at start-up and shared."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from approvals.config import Settings
from approvals.connectors.resume import resume_deliveries, resume_secret
from approvals.connectors.runner import Connectors
from approvals.db import is_postgres, libpq_dsn, make_async_engine
from approvals.events.broker import Broker
from approvals.events.listener import listen
from approvals.events.log import EventLog
from approvals.metrics import EVENTS_APPENDED, LOG_HEAD
from approvals.queue.routes import expiry_loop
from approvals.queue.service import OpenApprovals
from approvals.webhooks.outbox import Outbox
from approvals.webhooks.secrets import LOOKUPS
from approvals.webhooks.worker import DeliveryWorker


@dataclass
class Services:
    """Settings, engine, log and broker of one service process."""

    settings: Settings
    url: URL
    engine: AsyncEngine
    log: EventLog
    broker: Broker
    webhooks: DeliveryWorker
    connectors: Any = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    @classmethod
    def build(cls, settings: Settings, url: URL) -> Services:
        """Create the engine, log and broker (nothing runs until ``start``)."""
        engine = make_async_engine(url)
        broker = Broker(settings.broker_buffer)
        log = EventLog(engine, postgres=is_postgres(url), on_commit=_counted(broker))
        broker.on_added = lambda items: LOG_HEAD.set(items[-1].id)
        webhooks = DeliveryWorker(engine, settings, postgres=is_postgres(url), writer=log.writer())
        outbox = Outbox(webhooks.wake)
        outbox.on_resolved.append(resume_deliveries)
        LOOKUPS["resume"] = resume_secret
        log.hooks.append(OpenApprovals())
        log.hooks.append(outbox)
        services = cls(settings, url, engine, log, broker, webhooks)
        services.connectors = Connectors(services)
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
            self.tasks.append(asyncio.create_task(listen(libpq_dsn(self.url), self.broker)))
        self.tasks.append(asyncio.create_task(expiry_loop(self)))
        self.tasks.append(asyncio.create_task(self.webhooks.run()))
        self.tasks.append(asyncio.create_task(self.connectors.run()))

    async def stop(self) -> None:
        """Stop background work and close the engine."""
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.tasks.clear()
        await self.broker.stop()
        await self.engine.dispose()


def _counted(broker: Broker) -> Any:
    def on_commit(events: list[dict[str, Any]]) -> None:
        EVENTS_APPENDED.inc(len(events))
        broker.offer(events)

    return on_commit
