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
        )
