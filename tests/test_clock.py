"""Timestamps are written in one canonical form everywhere (``resolvedAt``, ``createdAt``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from approvals.core.clock import iso, now_iso, parse_iso


def test_timestamps_are_utc_with_milliseconds_and_a_z() -> None:
    assert iso(datetime(2026, 1, 2, 3, 4, 5, 678_999, tzinfo=UTC)) == "2026-01-02T03:04:05.678Z"
    # Another offset is converted, not relabelled; the millisecond is truncated, not rounded.
    plus_two = timezone(timedelta(hours=2))
    assert iso(datetime(2026, 1, 1, 1, 0, 0, 999_999, tzinfo=plus_two)) == (
        "2025-12-31T23:00:00.999Z"
    )
    assert iso(datetime(999, 12, 31, 23, 59, 59, tzinfo=UTC)) == "0999-12-31T23:59:59.000Z"


def test_now_reads_back_as_the_same_moment_to_the_millisecond() -> None:
    before = datetime.now(UTC)
    stamp = now_iso()
    after = datetime.now(UTC)
    assert len(stamp) == 24 and stamp.endswith("Z")
    assert before - timedelta(milliseconds=1) <= parse_iso(stamp) <= after
