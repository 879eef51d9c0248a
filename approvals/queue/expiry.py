"""The expiry loop: resolves pending approvals whose deadline passed, in every process.

It sleeps until the next deadline; an event that opens an approval (here or, through
the log, on another instance) may bring an earlier one and wakes it. Expiring runs
in each process; the conditional resolve lets exactly one of them win each approval.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

from approvals.events.running import Running
from approvals.queue import service

log = logging.getLogger("approvals.queue")

EXPIRY_RECHECK = 10.0  # seconds: the longest the expiry loop sleeps without looking
# Seconds: appends wake the loop at most this often, and a burst of openings re-reads
# the next deadline once (a deadline nearer than this, opened in it, passes this late).
EXPIRY_COALESCE = 0.05


async def expiry_loop(services: Running) -> None:
    """Expire due approvals, sleeping until the next deadline.

    An event that opens an approval (here or, through the log, on another
    instance) may bring an earlier deadline, so it makes the loop read the next
    deadline again (once per ``EXPIRY_COALESCE`` however many open); the loop
    also looks every ``EXPIRY_RECHECK`` seconds whatever happens.
    """
    broker = services.broker
    held = service.Held()  # approvals whose expiry failed, tried again later
    while True:
        services.beats.beat("expiry")
        position = broker.head  # events after this may open approvals
        try:
            await service.expire_due(services.log, held=held)
            due = await service.next_deadline(services.engine)
            retry = held.next_try()
            if retry is not None and due is not None and due <= datetime.now(UTC):
                # Only held approvals are overdue: look again when the first is due a retry.
                due = datetime.now(UTC) + timedelta(seconds=max(retry, 0.25))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("expiring approvals failed; retrying")
            await asyncio.sleep(0.25)
            continue
        wake = time.monotonic() + EXPIRY_RECHECK
        while True:
            if due is not None:
                # A moment past the deadline, so that the stored timestamp compares as passed.
                until = max(0.0, (due - datetime.now(UTC)).total_seconds() + 0.005)
                wake = min(wake, time.monotonic() + until)
            if (remaining := wake - time.monotonic()) <= 0:
                break
            if not await broker.wait(position, remaining):
                break
            await asyncio.sleep(EXPIRY_COALESCE)  # gather a burst: one look covers it all
            items = broker.since(position)
            position = broker.head
            if items is not None and not any(service.opens_approval(i.event) for i in items):
                continue
            try:
                due = await service.next_deadline(services.engine)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reading the next deadline failed")
                break
