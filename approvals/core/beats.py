"""Heartbeats of the background loops, read by ``/readyz`` and ``/metrics``.

Each loop (deliveries, expiry, connectors, stats) calls ``beat`` once per turn, whether
it found work or not; a loop whose last beat is older than ``STALE_SECONDS``, or
whose task has ended, is reported by name so an orchestrator can restart the
process instead of leaving deliveries silently pending.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import Gauge

from approvals.core.metrics import REGISTRY

STALE_SECONDS = 30.0

LAST_BEAT = Gauge(
    "approvals_loop_last_beat_seconds",
    "Unix time of each background loop's last turn",
    ["loop"],
    registry=REGISTRY,
)


class Beats:
    """The last turn of each background loop of this process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.last: dict[str, float] = {}
        self.tasks: dict[str, asyncio.Task[Any]] = {}

    def watch(self, name: str, task: asyncio.Task[Any]) -> asyncio.Task[Any]:
        """Expect beats from ``name``, run by ``task`` (counted from now)."""
        self.tasks[name] = task
        self.beat(name)
        return task

    def beat(self, name: str) -> None:
        """Record that ``name`` made a turn now."""
        self.last[name] = self.clock()
        LAST_BEAT.labels(name).set(time.time())

    def stalled(self, limit: float = STALE_SECONDS) -> list[str]:
        """The watched loops that ended or have not beaten for ``limit`` seconds."""
        now = self.clock()
        return sorted(
            name
            for name, task in self.tasks.items()
            if task.done() or now - self.last.get(name, now) > limit
        )
