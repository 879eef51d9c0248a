"""Webhook endpoints, deliveries (message x destination) and their attempts."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Index
from sqlmodel import Field, SQLModel


class Endpoint(SQLModel, table=True):
    """A URL that receives the events its filter names."""

    __tablename__ = "webhook_endpoints"

    id: str = Field(primary_key=True, max_length=64)
    url: str = Field(max_length=2000)
    description: str | None = None
    event_types: list[str] = Field(sa_column=Column(JSON, nullable=False))
    secret: str = Field(max_length=100)
    previous_secret: str | None = Field(default=None, max_length=100)
    previous_secret_until: str | None = Field(default=None, max_length=32)
    disabled_reason: str | None = None
    created_at: str = Field(max_length=32)
    last_success_at: str | None = Field(default=None, max_length=32)
    last_failure_at: str | None = Field(default=None, max_length=32)
    failing_since: str | None = Field(default=None, max_length=32)
    failure_streak: int = 0


class Delivery(SQLModel, table=True):
    """One message to one destination: written with its event, sent until it succeeds."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_deliveries_due", "status", "next_attempt_at"),
        Index("ix_deliveries_endpoint", "endpoint_id", "created_at"),
        Index("ix_deliveries_approval", "approval_id"),
    )

    id: str = Field(primary_key=True, max_length=64)
    msg_id: str = Field(max_length=100)  # the webhook-id header, stable across retries
    kind: str = Field(max_length=16)  # endpoint, callback, resume, notify
    endpoint_id: str | None = Field(default=None, max_length=64)
    source_id: str | None = Field(default=None, max_length=64)
    url: str = Field(max_length=2000)
    event_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    event_type: str = Field(max_length=200)
    payload: str
    status: str = Field(max_length=16)  # pending, succeeded, failed
    attempts: int = 0
    next_attempt_at: str | None = Field(default=None, max_length=32)
    next_trigger: str = Field(default="scheduled", max_length=16)
    claimed_until: str | None = Field(default=None, max_length=32)
    last_status_code: int | None = None
    last_error: str | None = None
    created_at: str = Field(max_length=32)
    updated_at: str = Field(max_length=32)
    approval_id: str | None = Field(default=None, max_length=64)  # notifications


class Attempt(SQLModel, table=True):
    """One try at sending a delivery."""

    __tablename__ = "webhook_attempts"

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: str = Field(max_length=64, index=True)
    attempt: int
    trigger: str = Field(max_length=16)  # scheduled, manual
    status_code: int | None = None
    duration_ms: int
    error: str | None = None
    created_at: str = Field(max_length=32)
