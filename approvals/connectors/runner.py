"""One long-lived SSE client per source, and the manager that keeps them running.

Each runner connects with the stored cursor as ``Last-Event-ID``, maps every
message through its dialect, and appends the events together with the new
cursor in one log transaction, so a crash never advances the cursor past an
event that was not stored (nor stores one twice: ``externalId`` dedups).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
from httpx_sse import SSEError, aconnect_sse
from prometheus_client import Counter
from sqlalchemy import select, update

from approvals.connectors.dialects import DIALECTS, DialectError, Mapped, Upstream
from approvals.connectors.models import Source
from approvals.core.clock import now_iso
from approvals.core.errors import ApiError
from approvals.core.leases import RENEW_SECONDS, Lease, LeaseLost
from approvals.core.metrics import REGISTRY
from approvals.core.secretbox import decrypt, service_key
from approvals.events.running import Running
from approvals.events.schema import parse_event

log = logging.getLogger("approvals.connectors")
sources_table = Source.__table__  # type: ignore[attr-defined]
RECEIVED = Counter(
    "approvals_connector_events",
    "Events ingested from upstream sources",
    ["source"],
    registry=REGISTRY,
)
SKIPPED = Counter(
    "approvals_connector_skipped",
    "Upstream messages skipped as bad data",
    ["source"],
    registry=REGISTRY,
)
FATAL_STATUSES = (401, 403, 404)
MAX_BACKOFF = 60.0


class Fatal(Exception):
    """Upstream refused us for good (401, 403, 404): stop until the source is updated."""


class Retry(Exception):
    """A failure worth retrying after a backoff (network, 5xx, silence)."""


def backoff(failures: int, rng: random.Random, hint: float | None = None) -> float:
    """Exponential backoff with full jitter, starting from the stream's ``retry:`` hint."""
    base = hint if hint is not None else 0.5
    ceiling = min(MAX_BACKOFF, base * (2 ** max(failures - 1, 0)))
    return max(base / 2, rng.uniform(0, ceiling))


def with_history(url: str) -> str:
    """The URL with ``history=true`` added (for a first connection that wants history)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "history"]
    query.append(("history", "true"))
    return urlunsplit(parts._replace(query=urlencode(query)))


class SourceRunner:
    """Keeps one source's stream connected until it fails for good or is removed."""

    def __init__(self, services: Running, source_id: str) -> None:
        self.services = services
        self.source_id = source_id
        self.rng = random.Random()
        self.retry_hint: float | None = None
        settings = services.settings
        self.silence = settings.connector_silence_seconds
        self.max_event_bytes = settings.connector_max_event_bytes
        self.lease: Lease | None = None  # set by Connectors: checked with every store

    async def _load(self) -> dict[str, Any] | None:
        async with self.services.engine.connect() as conn:
            row = (
                (
                    await conn.execute(
                        select(sources_table).where(sources_table.c.id == self.source_id)
                    )
                )
                .mappings()
                .first()
            )
        return dict(row) if row is not None else None

    async def _set(self, **values: Any) -> None:
        values["updated_at"] = now_iso()
        async with self.services.engine.begin() as conn:
            await conn.execute(
                update(sources_table).where(sources_table.c.id == self.source_id).values(**values)
            )

    async def run(self) -> None:
        """Connect, ingest, and reconnect with backoff until told to stop."""
        failures = 0
        while True:
            source = await self._load()
            if source is None or source["status"] in ("failed", "finished"):
                return
            await self._set(status="connecting")
            try:
                finished = await self._stream(source)
            except Fatal as exc:
                log.warning("source %s failed: %s", source["name"], exc)
                await self._set(status="failed", last_error=str(exc))
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # network trouble, or anything else: back off, retry
                failures += 1
                reason = str(exc) or type(exc).__name__
                if not isinstance(exc, Retry | httpx.HTTPError | SSEError | OSError):
                    log.exception("source %s failed unexpectedly", source["name"])
                    reason = f"{type(exc).__name__}: {reason}"
                if isinstance(exc, httpx.ReadTimeout):
                    reason = f"no bytes for {self.silence:g}s: treated as dead"
                delay = backoff(failures, self.rng, self.retry_hint)
                log.info("source %s: %s; reconnecting in %.1fs", source["name"], reason, delay)
                await self._set(status="backoff", last_error=reason[:500])
                await asyncio.sleep(delay)
                continue
            if finished:
                await self._set(status="finished", last_error=None)
                return
            # The upstream closed the stream without saying the run ended: reconnect.
            failures += 1
            await self._set(status="backoff", last_error="upstream closed the stream")
            await asyncio.sleep(backoff(failures, self.rng, self.retry_hint))

    async def _stream(self, source: dict[str, Any]) -> bool:
        async with self.services.engine.begin() as conn:
            key = await conn.run_sync(
                lambda sync: service_key(sync, self.services.settings.secret_key)
            )
        try:
            token = decrypt(key, source["token_encrypted"])
        except ValueError as exc:
            raise Fatal(str(exc)) from exc
        dialect = DIALECTS[source["dialect"]]
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        url = source["url"]
        if source["cursor"]:
            headers["Last-Event-ID"] = source["cursor"]
        elif source["history"]:
            url = with_history(url)
        timeout = httpx.Timeout(10.0, read=self.silence)
        finished = False
        async with (
            httpx.AsyncClient(timeout=timeout, follow_redirects=True) as client,
            aconnect_sse(client, "GET", url, headers=headers) as events,
        ):
            status = events.response.status_code
            if status in FATAL_STATUSES:
                await events.response.aread()
                raise Fatal(f"upstream answered {status}: {events.response.text[:200]}")
            if status >= 400:
                raise Retry(f"upstream answered {status}")
            await self._set(status="connected", last_error=None)
            position = 0
            previous_id = None
            async for message in events.aiter_sse():
                # SSE carries the last id over to frames without one: such a frame has none.
                own_id = message.id if message.id and message.id != previous_id else None
                previous_id = message.id or previous_id
                if message.retry is not None:
                    self.retry_hint = max(message.retry / 1000, 0.05)
                if len(message.data) > self.max_event_bytes:
                    await self._skip(source, own_id, "message over the size limit")
                    position += 1
                    continue
                upstream = Upstream(
                    event=message.event or "message",
                    data=message.data,
                    id=own_id,
                    position=position,
                )
                position += 1
                try:
                    mapped = dialect.to_events(upstream)
                    rows = [self._row(source, event, i) for i, event in enumerate(mapped.events)]
                except (DialectError, ApiError) as exc:
                    await self._skip(source, upstream.id, str(exc))
                    continue
                except Exception as exc:  # a mapping bug: skip the message, keep the source
                    log.exception("source %s: mapping a message failed", source["name"])
                    await self._skip(source, upstream.id, f"{type(exc).__name__}: {exc}")
                    continue
                await self._store(source, mapped, rows)
                finished = finished or mapped.end_of_run
        return finished

    def _row(self, source: dict[str, Any], event: dict[str, Any], index: int) -> dict[str, Any]:
        row = parse_event(event, f"upstream[{index}]", trusted=True)
        row["source"] = source["name"]
        if not row.get("external_id"):
            raise DialectError("the mapped event has no externalId")
        return row

    async def _store(self, source: dict[str, Any], mapped: Mapped, rows: list[Any]) -> None:
        log_ = self.services.log
        async with log_.transaction(f"source:{source['name']}") as tx:
            if self.lease is not None:
                await self.lease.hold(tx.conn)  # no write once another instance took over
            fresh = 0
            if rows:
                stored = await tx.append(rows)
                fresh = sum(1 for event in stored if int(event["id"]) > tx.start)
            values: dict[str, Any] = {
                "events_received": sources_table.c.events_received + fresh,
                "updated_at": now_iso(),
            }
            if mapped.cursor is not None:
                values["cursor"] = mapped.cursor
            await tx.conn.execute(
                update(sources_table).where(sources_table.c.id == self.source_id).values(**values)
            )
        if fresh:
            RECEIVED.labels(source["name"]).inc(fresh)

    async def _skip(self, source: dict[str, Any], upstream_id: str | None, reason: str) -> None:
        log.warning("source %s: skipped a message (%s)", source["name"], reason[:300])
        SKIPPED.labels(source["name"]).inc()
        values: dict[str, Any] = {
            "events_skipped": sources_table.c.events_skipped + 1,
            "last_error": f"skipped a message: {reason}"[:500],
        }
        if upstream_id:
            values["cursor"] = upstream_id  # never fetch a poison message again
        await self._set(**values)


class Connectors:
    """Starts a runner for every active source and stops runners of removed ones."""

    def __init__(
        self, services: Running, runner: Callable[[Any, str], SourceRunner] = SourceRunner
    ):
        self.services = services
        self.make_runner = runner
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look at the sources table now (after a change through the API)."""
        self._wake.set()

    async def run(self) -> None:
        """Reconcile running runners with the sources table every two seconds."""
        try:
            while True:
                self.services.beats.beat("connectors")
                try:
                    await self._reconcile()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("reconciling sources failed; retrying")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 2.0)
                self._wake.clear()
        finally:
            for task in self.tasks.values():
                task.cancel()
            for task in self.tasks.values():
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _reconcile(self) -> None:
        async with self.services.engine.connect() as conn:
            rows = (await conn.execute(select(sources_table.c.id, sources_table.c.status))).all()
        wanted = {row.id for row in rows if row.status not in ("failed", "finished")}
        for source_id, task in list(self.tasks.items()):
            if source_id not in wanted and not task.done():
                task.cancel()
            if task.done():
                del self.tasks[source_id]
        for source_id in wanted - set(self.tasks):
            self.tasks[source_id] = asyncio.create_task(self._guarded(source_id))

    async def _guarded(self, source_id: str) -> None:
        # Instances share the database: the one holding the source's lease runs it.
        services = self.services
        lease = Lease(services.engine, f"source:{source_id}", writer=services.log.writer())
        if not await lease.acquire():
            return  # another instance holds it; the next reconcile looks again
        runner = self.make_runner(services, source_id)
        runner.lease = lease
        task = asyncio.create_task(runner.run())
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=RENEW_SECONDS)
                if done:
                    with contextlib.suppress(LeaseLost):
                        await task
                    return
                if not await lease.renew():
                    log.warning("source %s: lease lost to another instance", source_id)
                    return
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            with contextlib.suppress(Exception):
                await asyncio.shield(lease.release())
