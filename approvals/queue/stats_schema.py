"""Answers of ``GET /v1/stats``: figures per group and over all, for a window."""

from __future__ import annotations

from typing import Literal

from approvals.core.contract import Out
from approvals.events.schema import Timestamp


class Outcomes(Out):
    """How many approvals of the group ended each way (or are still pending)."""

    approved: int
    rejected: int
    answered: int
    expired: int
    withdrawn: int
    pending: int


class Timing(Out):
    """Seconds from request to a person's decision: how many, and percentiles by nearest
    rank (null when no person decided any): exact, or in a window of more approvals than
    APPROVALS_STATS_EXACT_LIMIT (20,000 by default) read from the rollup's histograms
    (``approximate``: each within 2.5 %)."""

    decided: int
    p50: float | None
    p90: float | None
    p99: float | None
    approximate: bool


class GroupStats(Out):
    """The figures of one group (``key`` null: none, e.g. no tool) or of all approvals."""

    key: str | None
    total: int
    outcomes: Outcomes
    auto_approved: int
    expired_share: float | None
    auto_approved_share: float | None
    time_to_decision: Timing


class Stats(Out):
    """Figures of the approvals requested in ``[since, until)``, over all and per group."""

    since: Timestamp
    until: Timestamp
    group_by: Literal["tool", "agent", "reviewer", "day"] | None
    total: GroupStats
    groups: list[GroupStats]
    groups_omitted: int
