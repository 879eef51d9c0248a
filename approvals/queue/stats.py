"""Figures of the queue over a window: outcomes, time to decision, expiries, auto-approvals.

Everything is computed in the database, the same on SQLite and PostgreSQL: one
aggregate pass for the counts and one ranked pass for the percentiles, which
returns three rows per group whatever the number of approvals. The window holds
the approvals *requested* in ``[since, until)``; their outcome is as it stands now.

Definitions (docs/api.md, "Statistics", says the same):

- time to decision: seconds from the request to its resolution, over approvals a
  person decided (approved, rejected or answered; not by a policy, a standing grant
  or a timeout); percentiles by nearest rank (the smallest value with at least p %
  of the values at or below it);
- expired share: expired approvals / all approvals of the group;
- auto-approved share: approvals approved by an ``auto_approve`` policy
  (``resolvedBy`` ``system:policy``) or a standing grant (``grant:<id>``) / all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import BigInteger, and_, case, cast, func, literal, literal_column, not_, or_, text
from sqlalchemy import select as sql_select
from sqlalchemy.dialects.postgresql import TIMESTAMP
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from approvals.core.clock import iso
from approvals.queue.models import Approval
from approvals.queue.stats_schema import GroupStats, Outcomes, Stats, Timing

GroupBy = Literal["tool", "agent", "reviewer", "day"]
OUTCOMES = ("approved", "rejected", "answered", "expired", "withdrawn", "pending")
DECIDED = ("approved", "rejected", "answered")
PERCENTILES = (50, 90, 99)
DEFAULT_WINDOW = timedelta(days=30)
SORT_MEMORY = "64MB"  # PostgreSQL's work_mem for one call, for the sorts (default 4MB)
MAX_GROUPS = 1000  # the largest groups (the earliest days) are answered, the rest counted
SYSTEM_POLICY = "system:policy"  # as written by approvals.queue.service
GRANT_PREFIX = "grant:"
SYSTEM_GRANT = "system:grant"  # the reviewer key of every grant's approvals

table = Approval.__table__  # type: ignore[attr-defined]
_TZ = TIMESTAMP(timezone=True)


@dataclass(frozen=True)
class Query:
    """What to count: a window of request times, a grouping and the inbox's filters."""

    since: datetime
    until: datetime
    group_by: GroupBy | None = None
    agent: str | None = None
    tool: str | None = None


@dataclass
class _Group:
    key: str | None
    total: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    auto: int = 0
    decided: int = 0
    ranks: dict[int, float] = field(default_factory=dict)


def window(
    since: datetime | None, until: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    """The window asked for: ``until`` defaults to now, ``since`` to 30 days before ``until``."""
    end = until or now
    return since or end - DEFAULT_WINDOW, end


def _auto() -> ColumnElement[bool]:
    c = table.c
    return or_(
        and_(c.resolved_by == SYSTEM_POLICY, c.status == "approved"),
        c.resolved_by.like(GRANT_PREFIX + "%"),
    )


def _by_person() -> ColumnElement[bool]:
    """A person's decision: decided, and not by a policy, a grant or the clock."""
    c = table.c
    return and_(
        c.status.in_(DECIDED),
        not_(c.resolved_by.like("system:%")),
        not_(c.resolved_by.like(GRANT_PREFIX + "%")),
    )


def _key(group_by: GroupBy | None) -> ColumnElement[Any]:
    c = table.c
    if group_by == "tool":
        return c.tool
    if group_by == "agent":
        return c.agent_id
    if group_by == "day":
        return func.substr(c.created_at, 1, 10)
    if group_by == "reviewer":
        # Who ended it: a person, system:policy, system:grant or system:timeout; none for a
        # pending approval or one its requester withdrew.
        return case(
            (c.status.in_(("pending", "withdrawn")), None),
            (c.resolved_by.like(GRANT_PREFIX + "%"), literal(SYSTEM_GRANT)),
            else_=c.resolved_by,
        )
    return literal_column("NULL")


def _millis(dialect: Dialect) -> ColumnElement[int]:
    """Milliseconds from request to resolution (the timestamps' precision), as an integer:
    integers sort faster than decimals, and PostgreSQL's ``extract`` answers a numeric."""
    c = table.c
    if dialect.name == "postgresql":
        delta = func.date_part("epoch", cast(c.resolved_at, _TZ) - cast(c.created_at, _TZ))
        return cast(func.round(delta * 1000.0), BigInteger)
    days = func.julianday(c.resolved_at) - func.julianday(c.created_at)
    return cast(func.round(days * 86_400_000.0), BigInteger)


def _where(query: Query) -> list[ColumnElement[bool]]:
    c = table.c
    found = [c.created_at >= iso(query.since), c.created_at < iso(query.until)]
    if query.agent:
        found.append(c.agent_id == query.agent)
    if query.tool:
        found.append(c.tool == query.tool)
    return found


def _counts(query: Query) -> Any:
    c = table.c
    key = _key(query.group_by).label("key")
    outcome = [func.sum(case((c.status == name, 1), else_=0)).label(name) for name in OUTCOMES]
    counted = sql_select(
        key,
        func.count().label("total"),
        *outcome,
        func.sum(case((_auto(), 1), else_=0)).label("auto"),
    ).where(*_where(query))
    return counted.group_by(key) if query.group_by else counted


def _ranked(query: Query, dialect: Dialect) -> Any:
    """The time to decision at each percentile's rank, over all (``all_n``, ``all_rank``)
    and, when grouped, per group (``n``, ``rank``): one scan, a sort per ranking."""
    grouped = query.group_by is not None
    durations = (
        sql_select(_key(query.group_by).label("key"), _millis(dialect).label("millis"))
        .where(*_where(query), _by_person())
        .subquery()
    )
    key, millis = durations.c.key, durations.c.millis
    columns = [
        key,
        millis,
        func.row_number().over(order_by=millis).label("all_rank"),
        func.count().over().label("all_n"),
    ]
    if grouped:
        columns += [
            func.row_number().over(partition_by=key, order_by=millis).label("rank"),
            func.count().over(partition_by=key).label("n"),
        ]
    ranked = sql_select(*columns).subquery()
    c = ranked.c

    def at_a_percentile(rank: Any, n: Any) -> ColumnElement[bool]:
        # integer division: rank ceil(p/100 · n), the nearest rank
        return or_(*(rank == (p * n + 99) // 100 for p in PERCENTILES))

    wanted = at_a_percentile(c.all_rank, c.all_n)
    if grouped:
        wanted = or_(wanted, at_a_percentile(c.rank, c.n))
    return sql_select(ranked).where(wanted)


def _rank(n: int, p: int) -> int:
    return (p * n + 99) // 100


async def compute(engine: AsyncEngine, query: Query) -> Stats:
    """The figures of ``query``: per group (when grouped) and over all."""
    dialect = engine.dialect
    groups: dict[str | None, _Group] = {}
    overall = _Group(None)
    async with engine.connect() as conn:
        if dialect.name == "postgresql":  # the ranking sorts in memory, not on disk
            await conn.execute(text(f"SET LOCAL work_mem = '{SORT_MEMORY}'"))
        for row in (await conn.execute(_counts(query))).mappings():
            group = groups.setdefault(row["key"], _Group(row["key"]))
            group.total = int(row["total"])
            group.counts = {name: int(row[name] or 0) for name in OUTCOMES}
            group.auto = int(row["auto"] or 0)
            overall.total += group.total
            overall.auto += group.auto
            for name in OUTCOMES:
                overall.counts[name] = overall.counts.get(name, 0) + group.counts[name]
        for row in (await conn.execute(_ranked(query, dialect))).mappings():
            _note(overall, int(row["all_n"]), int(row["all_rank"]), row["millis"])
            member = groups.get(row["key"]) if query.group_by else None
            if member is not None:
                _note(member, int(row["n"]), int(row["rank"]), row["millis"])
    ordered = sorted(groups.values(), key=_order(query.group_by))
    return Stats(
        since=iso(query.since),
        until=iso(query.until),
        group_by=query.group_by,
        total=_out(overall),
        groups=[_out(g) for g in ordered[:MAX_GROUPS]] if query.group_by else [],
        groups_omitted=max(0, len(ordered) - MAX_GROUPS) if query.group_by else 0,
    )


def _note(group: _Group, n: int, rank: int, millis: Any) -> None:
    """Keep ``millis`` (in seconds) for each percentile whose nearest rank among ``n`` is
    ``rank``."""
    group.decided = n
    for p in PERCENTILES:
        if rank == _rank(n, p):
            group.ranks[p] = int(millis) / 1000


def _order(group_by: GroupBy | None) -> Any:
    if group_by == "day":
        return lambda g: (g.key is None, g.key or "")
    return lambda g: (-g.total, g.key is None, g.key or "")


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


def _out(group: _Group) -> GroupStats:
    counts = {name: group.counts.get(name, 0) for name in OUTCOMES}
    return GroupStats(
        key=group.key,
        total=group.total,
        outcomes=Outcomes(**counts),
        auto_approved=group.auto,
        expired_share=_share(counts["expired"], group.total),
        auto_approved_share=_share(group.auto, group.total),
        time_to_decision=Timing(
            decided=group.decided,
            p50=group.ranks.get(50),
            p90=group.ranks.get(90),
            p99=group.ranks.get(99),
        ),
    )
