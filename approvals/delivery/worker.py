"""The delivery worker: claims due deliveries, sends them signed, records every attempt."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx
from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from approvals.core import outbound
from approvals.core.clock import iso, now_iso, parse_iso
from approvals.core.config import Settings
from approvals.delivery import schedule, signing
from approvals.delivery.models import Attempt
from approvals.delivery.outbox import deliveries_table, endpoints_table
from approvals.delivery.secrets import signing_secrets_for
from approvals.events.running import Running

log = logging.getLogger("approvals.webhooks")
attempts_table = Attempt.__table__  # type: ignore[attr-defined]
# A claim lasts this long and is renewed every RENEW_SECONDS while its attempt runs,
# so a sender that dies mid-send (SIGKILL, power loss) leaves its deliveries to the
# other processes, or to its own restart, within about this plus one look (1 s).
LEASE_SECONDS = 10.0
RENEW_SECONDS = 3.0
BATCH = 50


class DeliveryWorker:
    """Sends what the outbox holds, in every server process, without double sends."""

    def __init__(
        self, engine: AsyncEngine, settings: Settings, postgres: bool, writer: Any = None
    ) -> None:
        self.engine = engine
        # Shared with the log on SQLite, so claims and records queue behind appends
        # instead of meeting SQLite's busy handler and its sleeps.
        self.writer = writer if writer is not None else contextlib.nullcontext()
        self.settings = settings
        self.postgres = postgres
        self.guard = outbound.Guard(
            outbound.parse(settings.webhook_allowed),
            outbound.Resolver(outbound.parse_overrides(settings.dns_overrides)),
        )
        self.rng = random.Random()
        self._wake = asyncio.Event()
        self._client: httpx.AsyncClient | None = None
        # kind -> coroutine that makes one attempt itself (notifications register "notify").
        self.senders: dict[str, Callable[[dict[str, Any]], Awaitable[Sent]]] = {}
        self.beat: Callable[[], None] = lambda: None  # a turn of the loop (``/readyz``)

    def wake(self) -> None:
        """Look for due deliveries now (called after a transaction queues some)."""
        self._wake.set()

    async def run(self) -> None:
        """Claim and send due deliveries until cancelled."""
        # Connects only where the policy allows, after resolving; never follows redirects.
        self._client = outbound.client(self.guard, self.settings.webhook_timeout)
        try:
            while True:
                self.beat()
                try:
                    claimed = await self.claim()
                    if claimed:
                        await self.send_batch(claimed)
                        continue
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # Per-item failures are recorded as attempts; this is the database
                    # itself failing. The claims lapse and the deliveries are tried again.
                    log.exception("claiming or recording deliveries failed; retrying")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 1.0)
                self._wake.clear()
        finally:
            await self._client.aclose()

    async def claim(self) -> list[dict[str, Any]]:
        """Lease up to a batch of due deliveries to this process."""
        now = now_iso()
        lease = iso(datetime.now(UTC) + timedelta(seconds=LEASE_SECONDS))
        due = (
            select(deliveries_table.c.id)
            .where(
                deliveries_table.c.status == "pending",
                deliveries_table.c.next_attempt_at <= now,
                or_(
                    deliveries_table.c.claimed_until.is_(None),
                    deliveries_table.c.claimed_until < now,
                ),
            )
            .order_by(deliveries_table.c.next_attempt_at)
            .limit(BATCH)
        )
        # A read first: most wake-ups find nothing due, and on SQLite an UPDATE
        # would take the write lock that appends are waiting for.
        async with self.engine.connect() as conn:
            if (await conn.execute(due.limit(1))).first() is None:
                return []
        if self.postgres:
            due = due.with_for_update(skip_locked=True)
        async with self.writer, self.engine.begin() as conn:
            rows = (
                (
                    await conn.execute(
                        update(deliveries_table)
                        .where(deliveries_table.c.id.in_(due.scalar_subquery()))
                        .values(claimed_until=lease)
                        .returning(*deliveries_table.c)
                    )
                )
                .mappings()
                .all()
            )
        return [dict(row) for row in rows]

    async def send_batch(self, deliveries: list[dict[str, Any]]) -> None:
        """Send claimed deliveries concurrently, then record every attempt in one transaction."""
        keys = await self._secrets(deliveries)
        renewing = asyncio.create_task(self._renew([d["id"] for d in deliveries]))
        try:
            outcomes = await asyncio.gather(
                *(self._attempt(delivery, keys.get(delivery["id"], [])) for delivery in deliveries)
            )
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
        await self._record(outcomes)

    async def _secrets(self, deliveries: list[dict[str, Any]]) -> dict[str, list[str]]:
        """Signing secrets by delivery id; a delivery whose lookup fails gets none (its
        attempt then fails with that error) and the others keep theirs."""
        try:
            async with self.engine.begin() as conn:  # may create the callback secret
                return await signing_secrets_for(conn, deliveries)
        except Exception:
            if len(deliveries) == 1:
                log.exception("delivery %s: reading its signing secret failed", deliveries[0]["id"])
                return {}
        keys: dict[str, list[str]] = {}
        for delivery in deliveries:
            keys.update(await self._secrets([delivery]))
        return keys

    async def _renew(self, ids: list[str]) -> None:
        """Extend this process's claim on ``ids`` while their attempts run (a slow receiver
        may take the whole timeout); a failed renewal is logged and tried again."""
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            lease = iso(datetime.now(UTC) + timedelta(seconds=LEASE_SECONDS))
            try:
                async with self.writer, self.engine.begin() as conn:
                    await conn.execute(
                        update(deliveries_table)
                        .where(
                            deliveries_table.c.id.in_(ids),
                            deliveries_table.c.status == "pending",
                            deliveries_table.c.claimed_until.is_not(None),
                        )
                        .values(claimed_until=lease)
                    )
            except Exception:
                log.exception("renewing the claim on %d deliveries failed", len(ids))

    async def send(self, delivery: dict[str, Any]) -> None:
        """Make one attempt at one delivery and record it."""
        await self.send_batch([delivery])

    async def _attempt(self, delivery: dict[str, Any], keys: list[str]) -> Outcome:
        sender = self.senders.get(delivery["kind"])
        if sender is not None:
            began = time.monotonic()
            try:
                sent = await sender(delivery)
            except Exception as exc:  # a bug must not stop the other deliveries
                log.exception("delivery %s: the %s sender failed", delivery["id"], delivery["kind"])
                sent = Sent(error=f"{type(exc).__name__}: {exc}"[:500])
            duration = int((time.monotonic() - began) * 1000)
            return Outcome(
                delivery, sent.status_code, sent.error, sent.retry_after, duration, sent.permanent
            )
        assert self._client is not None
        status_code: int | None = None
        error: str | None = None
        retry_after: float | None = None
        refused = False
        began = time.monotonic()
        try:
            if not keys:
                raise PermissionError("no signing secret: the endpoint or source is gone")
            if (unsendable := outbound.unsendable(delivery["url"])) is not None:
                raise outbound.Refused(f"the URL {unsendable}")  # stored before the check
            headers = signing.headers(
                delivery["msg_id"], datetime.now(UTC), delivery["payload"], keys
            )
            # The setting bounds the whole attempt, not only each read: a receiver that
            # trickles bytes cannot hold the worker.
            async with (
                asyncio.timeout(self.settings.webhook_timeout),
                self._client.stream(
                    "POST", delivery["url"], content=delivery["payload"].encode(), headers=headers
                ) as answer,
            ):
                status_code = answer.status_code
                await outbound.read_bounded(answer)  # the rest of a large body is dropped
            if 300 <= status_code < 400:
                location = answer.headers.get("location", "")[:200]
                error = f"HTTP {status_code}: redirects are not followed (Location: {location})"
            elif not 200 <= status_code < 300:
                error = f"HTTP {status_code}"
            if error is not None:
                retry_after = schedule.parse_retry_after(
                    answer.headers.get("retry-after"), time.time()
                )
        except outbound.Refused as exc:
            error, refused = str(exc), True
        except PermissionError as exc:
            error = str(exc)
        except (httpx.TimeoutException, TimeoutError):
            error = f"timed out after {self.settings.webhook_timeout:g}s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__
        except Exception as exc:  # httpx.InvalidURL, a bug: one item never stops the rest
            log.exception("delivery %s: the attempt failed unexpectedly", delivery["id"])
            error = f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__
        duration = int((time.monotonic() - began) * 1000)
        return Outcome(delivery, status_code, error, retry_after, duration, permanent=refused)

    async def post(
        self, url: str, content: bytes, headers: dict[str, str] | None = None
    ) -> tuple[int, float | None]:
        """POST a body (JSON unless ``headers`` say otherwise) through the outbound policy,
        for senders that speak another service's API (PagerDuty, Web Push): the status and
        any Retry-After, in seconds."""
        assert self._client is not None, "the worker is not running"
        if (unsendable := outbound.unsendable(url)) is not None:
            raise outbound.Refused(f"the URL {unsendable}")
        sent = {"content-type": "application/json", **(headers or {})}
        async with (
            asyncio.timeout(self.settings.webhook_timeout),
            self._client.stream("POST", url, content=content, headers=sent) as answer,
        ):
            await outbound.read_bounded(answer)
        retry_after = schedule.parse_retry_after(answer.headers.get("retry-after"), time.time())
        return answer.status_code, retry_after

    async def check_destination(self, url: str) -> None:
        """For senders that connect by themselves (Slack, SMTP): resolve the URL's host and
        raise ``outbound.Refused`` when the policy refuses an address (OSError when it does
        not resolve)."""
        await self.guard.check_url(url)

    def _settle(self, outcome: Outcome, now: str) -> dict[str, Any]:
        """The delivery's new state after an attempt."""
        attempt = outcome.delivery["attempts"] + 1
        # Error texts may quote what an agent wrote; PostgreSQL refuses NUL in text.
        error = outcome.error.replace("\x00", "\\0") if outcome.error is not None else None
        gone = outcome.status_code == 410
        permanent = outcome.permanent  # a refused destination, or a sender's verdict
        values: dict[str, Any] = {
            "attempts": attempt,
            "claimed_until": None,
            "last_status_code": outcome.status_code,
            "last_error": error,
            "updated_at": now,
            "next_trigger": "scheduled",
        }
        if error is None:
            values.update(status="succeeded", next_attempt_at=None)
            return values
        delay = (
            None
            if gone or permanent
            else schedule.retry_delay(
                attempt, self.settings.webhook_schedule, self.rng, outcome.retry_after
            )
        )
        if delay is None:
            values.update(status="failed", next_attempt_at=None)
        else:
            moment = datetime.now(UTC) + timedelta(seconds=delay)
            values.update(status="pending", next_attempt_at=iso(moment))
        return values

    async def _record(self, outcomes: list[Outcome]) -> None:
        """Record a batch's attempts; when the batch cannot be written, each on its own, so
        one outcome the database refuses leaves the others recorded (its claim lapses and
        it is tried again)."""
        try:
            await self._record_all(outcomes)
        except Exception:
            if len(outcomes) == 1:
                raise
            log.exception("recording %d attempts failed; recording each alone", len(outcomes))
            for outcome in outcomes:
                try:
                    await self._record_all([outcome])
                except Exception:
                    log.exception(
                        "delivery %s: recording its attempt failed", outcome.delivery["id"]
                    )

    async def _record_all(self, outcomes: list[Outcome]) -> None:
        now = now_iso()
        attempts = []
        health: dict[str, list[Outcome]] = {}
        async with self.writer, self.engine.begin() as conn:
            for outcome in outcomes:
                delivery = outcome.delivery
                values = self._settle(outcome, now)
                attempts.append(
                    {
                        "delivery_id": delivery["id"],
                        "attempt": values["attempts"],
                        "trigger": delivery["next_trigger"],
                        "status_code": outcome.status_code,
                        "duration_ms": outcome.duration,
                        "error": values["last_error"],
                        "created_at": now,
                    }
                )
                await conn.execute(
                    update(deliveries_table)
                    .where(deliveries_table.c.id == delivery["id"])
                    .values(**values)
                )
                if delivery["endpoint_id"] is not None:
                    health.setdefault(delivery["endpoint_id"], []).append(outcome)
                if outcome.error is not None:
                    log.warning(
                        "delivery %s (%s) attempt %d failed: %s",
                        delivery["id"],
                        delivery["event_type"],
                        values["attempts"],
                        outcome.error,
                    )
            await conn.execute(insert(attempts_table), attempts)
            for endpoint_id, results in health.items():
                last = results[-1]
                await self._health(
                    conn,
                    endpoint_id,
                    last.error is None,
                    last.status_code == 410,
                    now,
                    failures=sum(1 for r in results if r.error is not None),
                )

    async def _health(
        self, conn: Any, endpoint_id: str, ok: bool, gone: bool, now: str, failures: int = 1
    ) -> None:
        table = endpoints_table
        if ok:
            values: dict[str, Any] = {
                "last_success_at": now,
                "failure_streak": 0,
                "failing_since": None,
            }
        else:
            current = (
                await conn.execute(select(table.c.failing_since).where(table.c.id == endpoint_id))
            ).scalar()
            values = {
                "last_failure_at": now,
                "failure_streak": table.c.failure_streak + failures,
                "failing_since": current or now,
            }
            if gone:
                values["disabled_reason"] = "the receiver answered 410 Gone"
        await conn.execute(update(table).where(table.c.id == endpoint_id).values(**values))


@dataclass(frozen=True)
class Outcome:
    """What one attempt gave."""

    delivery: dict[str, Any]
    status_code: int | None
    error: str | None
    retry_after: float | None
    duration: int
    permanent: bool = False


@dataclass(frozen=True)
class Sent:
    """What a kind's own sender reports about one attempt (no error means delivered)."""

    status_code: int | None = None
    error: str | None = None
    retry_after: float | None = None
    permanent: bool = False


NEVER_SUCCEEDED_FAILURES = 3


def endpoint_status(row: Any, failing_after: float, now: datetime | None = None) -> str:
    """``disabled``, ``failing`` (failing for longer than the setting, or never succeeded and
    failed several times in a row) or ``healthy``."""
    if row["disabled_reason"]:
        return "disabled"
    if not row["last_success_at"] and row["failure_streak"] >= NEVER_SUCCEEDED_FAILURES:
        return "failing"
    since = row["failing_since"]
    moment = now or datetime.now(UTC)
    if since and (moment - parse_iso(since)).total_seconds() >= failing_after:
        return "failing"
    return "healthy"


class WithWorker(Running, Protocol):
    """The running parts and the delivery worker, for what queues or sends deliveries."""

    @property
    def webhooks(self) -> DeliveryWorker: ...
