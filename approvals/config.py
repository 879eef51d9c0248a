"""Settings read from the environment (``APPROVALS_*``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} must be a number, got {raw!r}") from exc


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} must be a whole number, got {raw!r}") from exc


def _schedule(name: str, default: tuple[float, ...]) -> tuple[float, ...]:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        values = tuple(float(part) for part in raw.split(","))
    except ValueError as exc:
        raise SystemExit(f"{name} must be comma-separated seconds, got {raw!r}") from exc
    if any(value < 0 for value in values):
        raise SystemExit(f"{name} must not hold negative delays")
    return values


@dataclass(frozen=True)
class Settings:
    """Every setting the service reads; the README lists them all."""

    database_url: str = "sqlite:///./approvals.db"
    keepalive_seconds: float = 15.0
    retry_ms: int = 3000
    max_body_bytes: int = 1024 * 1024
    broker_buffer: int = 10_000
    poll_seconds: float = 1.0
    secret_key: str = ""
    webhook_schedule: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
    webhook_timeout: float = 15.0
    webhook_failing_after: float = 900.0
    webhook_allowed: str = ""
    connector_silence_seconds: float = 90.0
    connector_max_event_bytes: int = 1024 * 1024
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> Settings:
        """Read the settings from ``APPROVALS_*`` environment variables."""
        return cls(
            database_url=os.environ.get("APPROVALS_DATABASE_URL") or cls.database_url,
            keepalive_seconds=_float("APPROVALS_KEEPALIVE_SECONDS", cls.keepalive_seconds),
            retry_ms=_int("APPROVALS_RETRY_MS", cls.retry_ms),
            max_body_bytes=_int("APPROVALS_MAX_BODY_BYTES", cls.max_body_bytes),
            broker_buffer=_int("APPROVALS_BROKER_BUFFER", cls.broker_buffer),
            poll_seconds=_float("APPROVALS_POLL_SECONDS", cls.poll_seconds),
            secret_key=os.environ.get("APPROVALS_SECRET_KEY", ""),
            webhook_schedule=_schedule("APPROVALS_WEBHOOK_SCHEDULE", cls.webhook_schedule),
            webhook_timeout=_float("APPROVALS_WEBHOOK_TIMEOUT_SECONDS", cls.webhook_timeout),
            webhook_failing_after=_float(
                "APPROVALS_WEBHOOK_FAILING_AFTER_SECONDS", cls.webhook_failing_after
            ),
            webhook_allowed=os.environ.get("APPROVALS_WEBHOOK_ALLOWED_DESTINATIONS", ""),
            connector_silence_seconds=_float(
                "APPROVALS_CONNECTOR_SILENCE_SECONDS", cls.connector_silence_seconds
            ),
            connector_max_event_bytes=_int(
                "APPROVALS_CONNECTOR_MAX_EVENT_BYTES", cls.connector_max_event_bytes
            ),
        )
