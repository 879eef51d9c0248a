"""Tables of the approval queue: approvals, reviewers' votes, policies, grants, and the
figures' rollup."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Column, ForeignKey, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel


class Approval(SQLModel, table=True):
    """One request for a human decision, opened by one request event."""

    __tablename__ = "approvals"
    __table_args__ = (
        Index("ix_approvals_status_event", "status", "event_id"),
        Index("ix_approvals_run", "run_id", "event_id"),
        Index("ix_approvals_due", "status", "timeout_at"),
        # What the figures' rollup has not folded yet (pending, or ended since the last fold),
        # by status then request time, with every column the figures read of it: covering,
        # so that the planners take it even with statistics taken when most approvals were
        # unfolded, and read the pending ones without visiting the table.
        Index(
            "ix_approvals_unfolded",
            "status",
            "created_at",
            "tool",
            "agent_id",
            "resolved_by",
            "resolved_at",
            "folded",
            sqlite_where=text("folded = 0"),
            postgresql_where=text("folded = false"),
        ),
    )

    id: str = Field(primary_key=True, max_length=64)
    event_id: int = Field(
        sa_column=Column(BigInteger, ForeignKey("events.id"), unique=True, nullable=False)
    )
    status: str = Field(max_length=16)  # pending, approved, rejected, answered, expired, withdrawn
    title: str | None = None
    tool: str | None = Field(default=None, max_length=200)
    arguments: Any | None = Field(default=None, sa_column=Column(JSON))
    agent_id: str | None = Field(default=None, max_length=200)
    thread_id: str | None = Field(default=None, max_length=200)
    run_id: str | None = Field(default=None, max_length=200)
    source: str = Field(max_length=200)
    requested_by: str | None = Field(default=None, max_length=200)
    callback_url: str | None = Field(default=None, max_length=2000)
    timeout_at: str | None = Field(default=None, max_length=32)
    on_timeout: str = Field(default="reject", max_length=16)
    policy_id: str | None = Field(default=None, max_length=64)
    min_approvals: int = 1
    allow_self_approval: bool = False
    reviewers: list[str] | None = Field(default=None, sa_column=Column(JSON))
    require_reason: bool = False
    require_reason_on_approve: bool = False
    confirm: bool = False
    risk: str = Field(default="normal", max_length=8)  # "high": never decided by one key
    allowed_decisions: list[str] | None = Field(default=None, sa_column=Column(JSON))
    allow_edit: bool = True
    claimed_by: str | None = Field(default=None, max_length=200)
    claimed_until: str | None = Field(default=None, max_length=32)
    created_at: str = Field(max_length=32)
    resolved_at: str | None = Field(default=None, max_length=32)
    resolved_by: str | None = Field(default=None, max_length=200)
    decision: str | None = Field(default=None, max_length=16)
    comment: str | None = None
    answer: str | None = None
    edited_arguments: Any | None = Field(default=None, sa_column=Column(JSON))
    resolution_event_id: int | None = Field(default=None, sa_column=Column(BigInteger))
    executed_at: str | None = Field(default=None, max_length=32)  # its execution receipt
    executed_by: str | None = Field(default=None, max_length=200)
    executed_digest: str | None = Field(default=None, max_length=80)
    redact: list[str] | None = Field(default=None, sa_column=Column(JSON))  # from its policy
    display: str | None = None  # its policy's headline template
    grantable: bool = True
    max_grant_seconds: int | None = None
    grant_id: str | None = Field(default=None, max_length=64)  # the grant that approved it
    assigned_to: str | None = Field(default=None, max_length=200)  # handed to this reviewer
    assigned_by: str | None = Field(default=None, max_length=200)
    delegated_from: str | None = Field(default=None, max_length=200)  # the away reviewer
    # counted in stats_counts / stats_times (approvals.queue.rollup); only ended ones are
    folded: bool = Field(
        default=False,
        sa_column=Column(Boolean, nullable=False, default=False, server_default=text("false")),
    )


class Vote(SQLModel, table=True):
    """One reviewer's approval toward a quorum."""

    __tablename__ = "approval_votes"
    __table_args__ = (UniqueConstraint("approval_id", "principal"),)

    id: int | None = Field(default=None, primary_key=True)
    approval_id: str = Field(foreign_key="approvals.id", max_length=64)
    principal: str = Field(max_length=200)
    decision: str = Field(max_length=16)
    comment: str | None = None
    created_at: str = Field(max_length=32)
    event_id: int = Field(sa_column=Column(BigInteger, nullable=False))


class Policy(SQLModel, table=True):
    """A rule for requests of one agent and/or one tool (either may be any)."""

    __tablename__ = "policies"

    id: str = Field(primary_key=True, max_length=64)
    agent_id: str | None = Field(default=None, max_length=200)
    tool: str | None = Field(default=None, max_length=200)
    action: str = Field(max_length=16)  # auto_approve, require, deny
    min_approvals: int = 1
    allow_self_approval: bool = False
    reviewers: list[str] | None = Field(default=None, sa_column=Column(JSON))
    require_reason: bool = False  # a reject needs a comment
    require_reason_on_approve: bool = False  # an approve needs one too
    confirm: bool = False  # the dashboard asks for a second step before approving
    risk: str = Field(default="normal", max_length=8)  # normal, high (marked, never one key)
    created_at: str = Field(max_length=32)
    redact: list[str] | None = Field(default=None, sa_column=Column(JSON))
    display: str | None = None
    grantable: bool = True
    max_grant_seconds: int | None = None
    escalation: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON))
    warn_before_seconds: int | None = None  # a warning this long before a timeout


class Grant(SQLModel, table=True):
    """A reviewer's standing approval of one tool for one run or one agent, until a time."""

    __tablename__ = "grants"
    __table_args__ = (Index("ix_grants_tool", "tool", "expires_at"),)

    id: str = Field(primary_key=True, max_length=64)
    tool: str = Field(max_length=200)
    scope: str = Field(max_length=16)  # run, agent
    run_id: str | None = Field(default=None, max_length=200)
    agent_id: str | None = Field(default=None, max_length=200)
    granted_by: str = Field(max_length=200)
    approval_id: str = Field(max_length=64)  # the approval it was granted on
    created_at: str = Field(max_length=32)
    expires_at: str = Field(max_length=32)
    revoked_at: str | None = Field(default=None, max_length=32)
    revoked_by: str | None = Field(default=None, max_length=200)
    uses: int = 0


class StatsCount(SQLModel, table=True):
    """Folded approvals: how many ended each way, per UTC day of the request, tool, agent and
    who ended it. Keys are stored ``=value``, or empty for none (approvals.queue.rollup)."""

    __tablename__ = "stats_counts"

    day: str = Field(primary_key=True, max_length=10)
    tool: str = Field(primary_key=True, max_length=201)
    agent: str = Field(primary_key=True, max_length=201)
    reviewer: str = Field(primary_key=True, max_length=201)
    status: str = Field(primary_key=True, max_length=16)
    auto: bool = Field(primary_key=True)  # approved by a policy or a standing grant
    n: int = Field(sa_column=Column(BigInteger, nullable=False))


class StatsTime(SQLModel, table=True):
    """Folded approvals a person decided: how many took a time in each histogram bucket, per
    UTC day of the request, over all (``dimension`` empty) and per tool, agent and reviewer
    (approvals.queue.rollup)."""

    __tablename__ = "stats_times"

    # dimension first: a call reads one dimension over a range of days
    dimension: str = Field(primary_key=True, max_length=16)  # "", tool, agent or reviewer
    day: str = Field(primary_key=True, max_length=10)
    value: str = Field(primary_key=True, max_length=201)
    bucket: int = Field(primary_key=True)
    n: int = Field(sa_column=Column(BigInteger, nullable=False))
