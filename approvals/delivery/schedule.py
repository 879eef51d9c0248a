"""When to try a delivery again: the retry schedule as a pure function."""

from __future__ import annotations

import random
from collections.abc import Sequence
from email.utils import parsedate_to_datetime

JITTER = 0.1  # each delay varies by up to ±10 %
MAX_RETRY_AFTER = 24 * 3600.0


def retry_delay(
    attempts_made: int,
    schedule: Sequence[float],
    rng: random.Random,
    retry_after: float | None = None,
) -> float | None:
    """Seconds until the next try after ``attempts_made`` failures, or None when spent.

    ``schedule[i]`` is the delay after the (i+1)-th failure. A receiver's
    ``Retry-After`` lengthens the delay, up to a day, but never shortens it.
    """
    if attempts_made < 1 or attempts_made > len(schedule):
        return None
    base = schedule[attempts_made - 1]
    delay = base * (1 + rng.uniform(-JITTER, JITTER))
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return max(delay, 0.0)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(moment.timestamp() - now, 0.0)
