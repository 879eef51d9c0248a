"""The event table and the log head, the row that orders appends."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index
from sqlmodel import Field, SQLModel


class Event(SQLModel, table=True):
    """One entry of the append-only log; ``id`` is its position."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_source_external", "source", "external_id", unique=True),
        Index("ix_events_run", "run_id", "id"),
        Index("ix_events_thread", "thread_id", "id"),
        Index("ix_events_agent", "agent_id", "id"),
        Index("ix_events_type", "type", "id"),
    )

    id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    type: str = Field(max_length=200)
    category: str | None = Field(default=None, max_length=200)
    status: str | None = Field(default=None, max_length=200)
    title: str | None = None
    detail: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    source: str = Field(default="api", max_length=200)
    agent_id: str | None = Field(default=None, max_length=200)
    thread_id: str | None = Field(default=None, max_length=200)
    run_id: str | None = Field(default=None, max_length=200)
    external_id: str | None = Field(default=None, max_length=500)
    cost_tokens: int | None = Field(default=None, sa_column=Column(BigInteger))
    cost_usd: float | None = None
    created_at: str = Field(max_length=32)
    resolved_at: str | None = Field(default=None, max_length=32)
    resolved_by: str | None = Field(default=None, max_length=200)
    approval_id: str | None = Field(default=None, max_length=64)
    # The redaction paths of the approval's policy, for the events of an approval: what
    # people are not shown of the arguments in its detail (never served as a field).
    redact: list[str] | None = Field(default=None, sa_column=Column(JSON))


class LogHead(SQLModel, table=True):
    """A single row holding the last assigned position; locking it serialises appends."""

    __tablename__ = "log_head"

    id: int = Field(default=1, primary_key=True)
    last_id: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
