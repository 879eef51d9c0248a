"""Per-key rate limits: a token bucket per key, shared by instances on PostgreSQL.

A rate reads ``50/s``, ``3000/m`` or ``10/h``, optionally with ``burst N``
(the bucket's size; one second's worth, at least 1, by default); ``off``
means no limit. On SQLite (one machine) each process keeps its own buckets.
On PostgreSQL the bucket lives in the ``rate_buckets`` table and each
instance takes tokens from it a few at a time (a tenth of a second's worth),
so a key's rate holds across instances to within one such handful per
instance, and a handful an instance holds unused lapses after a second.
"""

from __future__ import annotations

import functools
import math
import re
import time
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

RATE = re.compile(r"(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)(?:\s+burst\s+(\d+))?")
PER = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}
HELD_SECONDS = 1.0  # tokens an instance took from the shared bucket lapse after this


class RateError(ValueError):
    """A rate that cannot be read."""


@dataclass(frozen=True)
class Rate:
    """Tokens per second and the bucket's size; ``per_second`` is inf for no limit."""

    per_second: float
    burst: float

    @property
    def unlimited(self) -> bool:
        """True for ``off``."""
        return math.isinf(self.per_second)

    def __str__(self) -> str:
        if self.unlimited:
            return "off"
        return f"{self.per_second:g}/s burst {self.burst:g}"


UNLIMITED = Rate(math.inf, math.inf)


@functools.lru_cache(maxsize=256)
def parse_rate(raw: str) -> Rate:
    """Read ``50/s``, ``50/s burst 200``, ``3000/m`` or ``off`` (cached: keys' rates are
    read on every request)."""
    value = raw.strip().lower()
    if value in ("off", "none", "unlimited"):
        return UNLIMITED
    match = RATE.fullmatch(value)
    if match is None:
        raise RateError(f"{raw!r} is not a rate; write e.g. '50/s', '50/s burst 200' or 'off'")
    per_second = float(match.group(1)) / PER[match.group(2)]
    if per_second <= 0:
        raise RateError(f"{raw!r}: the rate must be above zero (or 'off')")
    burst = float(match.group(3)) if match.group(3) else max(1.0, math.floor(per_second))
    if burst < 1:
        raise RateError(f"{raw!r}: the burst must be at least 1")
    return Rate(per_second, burst)


@dataclass
class _Bucket:
    tokens: float
    updated: float
    lapses: float = math.inf  # when tokens taken from the shared bucket lapse


@dataclass
class RateLimiter:
    """Admits a key's request or says how many seconds until it would be admitted."""

    engine: AsyncEngine | None = None
    postgres: bool = False
    default: Rate = UNLIMITED
    buckets: dict[str, _Bucket] = field(default_factory=dict)

    async def take(self, key: str, rate: Rate | None) -> float:
        """0 when the request may go ahead, otherwise the seconds to wait."""
        rate = rate or self.default
        if rate.unlimited:
            return 0.0
        if self.postgres:
            return await self._take_shared(key, rate)
        return self._take_local(key, rate, time.monotonic())

    def _take_local(self, key: str, rate: Rate, now: float) -> float:
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = _Bucket(rate.burst, now)
        bucket.tokens = min(rate.burst, bucket.tokens + (now - bucket.updated) * rate.per_second)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / rate.per_second

    async def _take_shared(self, key: str, rate: Rate) -> float:
        now = time.monotonic()
        held = self.buckets.get(key)
        if held is not None and held.tokens >= 1 and now < held.lapses:
            held.tokens -= 1
            return 0.0
        assert self.engine is not None
        handful = max(1, min(math.floor(rate.burst), math.floor(rate.per_second / 10)))
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO rate_buckets (key_name, tokens, updated) "
                    "VALUES (:key, :burst, EXTRACT(EPOCH FROM clock_timestamp())) "
                    "ON CONFLICT (key_name) DO NOTHING"
                ),
                {"key": key, "burst": rate.burst},
            )
            granted, left = (
                await conn.execute(
                    text(
                        "WITH now AS (SELECT EXTRACT(EPOCH FROM clock_timestamp()) AS t), "
                        "cur AS (SELECT LEAST(:burst, b.tokens + GREATEST(0, now.t - b.updated)"
                        " * :rate) AS have, now.t AS t FROM rate_buckets b, now "
                        "WHERE b.key_name = :key FOR UPDATE OF b) "
                        "UPDATE rate_buckets SET tokens = cur.have - LEAST(:handful, "
                        "FLOOR(cur.have)), updated = cur.t FROM cur WHERE key_name = :key "
                        "RETURNING LEAST(:handful, FLOOR(cur.have)), rate_buckets.tokens"
                    ),
                    {
                        "key": key,
                        "burst": rate.burst,
                        "rate": rate.per_second,
                        "handful": handful,
                    },
                )
            ).one()
        if granted >= 1:
            self.buckets[key] = _Bucket(float(granted) - 1, now, now + HELD_SECONDS)
            return 0.0
        return (1 - float(left)) / rate.per_second


@dataclass
class StreamCounter:
    """Open SSE streams per key in this process, against ``APPROVALS_MAX_STREAMS_PER_KEY``."""

    limit: int = 0  # 0: no limit
    open: dict[str, int] = field(default_factory=dict)

    def enter(self, key: str) -> bool:
        """Count a new stream; False (and nothing counted) when the key is at its limit."""
        count = self.open.get(key, 0)
        if self.limit and count >= self.limit:
            return False
        self.open[key] = count + 1
        return True

    def leave(self, key: str) -> None:
        """Count a stream closed."""
        count = self.open.get(key, 0) - 1
        if count <= 0:
            self.open.pop(key, None)
        else:
            self.open[key] = count
