"""Timestamps in the canonical form ``2026-11-20T12:00:00.000Z``."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(moment: datetime) -> str:
    """Format a datetime as canonical UTC ISO-8601 with milliseconds."""
    moment = moment.astimezone(UTC)
    # %Y does not pad years before 1000 on every platform; the canonical form always does.
    return (
        f"{moment.year:04d}-"
        + moment.strftime("%m-%dT%H:%M:%S.")
        + (f"{moment.microsecond // 1000:03d}Z")
    )


def now_iso() -> str:
    """The current time in canonical form."""
    return iso(datetime.now(UTC))


def parse_iso(raw: str) -> datetime:
    """Parse an ISO-8601 timestamp; a naive one is taken as UTC."""
    value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value
