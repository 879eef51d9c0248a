"""Figures of the queue over a window: outcomes, time to decision, expiries, auto-approvals.

The window holds the approvals *requested* in ``[since, until)``; their outcome is as it
stands now. The whole UTC days of the window are read from the rollup
(``approvals.queue.rollup``) plus what it has not folded yet; the partial days at its
edges from the approvals table. Counts are exact either way. The percentiles are exact,
by nearest rank over the window's approvals, while the window holds at most
``exact_limit`` approvals; past that they are read from the rollup's histograms, within
2.5 % (``approximate`` in the answer says which).

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

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    String,
    case,
    cast,
    false,
    func,
    literal,
    null,
    or_,
    text,
    true,
    union_all,
)
from sqlalchemy import select as sql_select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from approvals.core.clock import iso
from approvals.queue import rollup
from approvals.queue.models import Approval
from approvals.queue.stats_schema import GroupStats, Outcomes, Stats, Timing

GroupBy = Literal["tool", "agent", "reviewer", "day"]
OUTCOMES = ("approved", "rejected", "answered", "expired", "withdrawn", "pending")
DECIDED = rollup.DECIDED
PERCENTILES = (50, 90, 99)
DEFAULT_WINDOW = timedelta(days=30)
EXACT_LIMIT = 20_000  # approvals in a window up to which the percentiles are exact
SORT_MEMORY = "64MB"  # PostgreSQL's work_mem for one call, for the sorts (default 4MB)
MAX_GROUPS = 1000  # the largest groups (the earliest days) are answered, the rest counted

table = Approval.__table__  # type: ignore[attr-defined]


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
    approximate: bool = False


@dataclass(frozen=True)
class _Span:
    """Request times read from the approvals table; ``unfolded``: only what the rollup
    does not hold yet."""

    start: datetime
    end: datetime
    unfolded: bool = False


def window(
    since: datetime | None, until: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    """The window asked for: ``until`` defaults to now, ``since`` to 30 days before ``until``."""
    end = until or now
    return since or end - DEFAULT_WINDOW, end


def whole_days(since: datetime, until: datetime) -> tuple[datetime, datetime] | None:
    """The whole UTC days within ``[since, until)``, as the midnights they span, if any."""
    first = datetime.combine(since.date(), time(), since.tzinfo)
    if first < since:
        first += timedelta(days=1)
    last = datetime.combine(until.date(), time(), until.tzinfo)
    return (first, last) if first < last else None


def _plan(query: Query) -> tuple[list[_Span], tuple[str, str] | None]:
    """Where each part of the window is read: spans of the approvals table, and the days
    (first included, last excluded) of the rollup."""
    days = whole_days(query.since, query.until)
    if days is None:
        return [_Span(query.since, query.until)], None
    first, last = days
    spans = [_Span(first, last, unfolded=True)]
    if query.since < first:
        spans.append(_Span(query.since, first))
    if last < query.until:
        spans.append(_Span(last, query.until))
    return spans, (first.date().isoformat(), last.date().isoformat())


def _key(group_by: GroupBy | None) -> ColumnElement[Any]:
    c = table.c
    if group_by == "tool":
        return c.tool
    if group_by == "agent":
        return c.agent_id
    if group_by == "day":
        return func.substr(c.created_at, 1, 10)
    if group_by == "reviewer":
        return rollup.ended_by()
    return cast(null(), String)


def _folded_key(folded: Any, group_by: GroupBy | None) -> ColumnElement[Any]:
    """The group of a rollup row, decoded from its stored form (``rollup.stored``)."""
    if group_by is None:
        return cast(null(), String)
    if group_by == "day":
        return folded.c.day
    column = folded.c[{"tool": "tool", "agent": "agent", "reviewer": "reviewer"}[group_by]]
    return case((column == "", None), else_=func.substr(column, 2))


def _filters(query: Query) -> list[ColumnElement[bool]]:
    c = table.c
    found = []
    if query.agent:
        found.append(c.agent_id == query.agent)
    if query.tool:
        found.append(c.tool == query.tool)
    return found


def _where(query: Query, span: _Span | None = None) -> list[ColumnElement[bool]]:
    c = table.c
    start, end = (span.start, span.end) if span else (query.since, query.until)
    found = [c.created_at >= iso(start), c.created_at < iso(end), *_filters(query)]
    if span is not None and span.unfolded:
        found.append(c.folded == false())
    return found


def _folded_where(folded: Any, query: Query, days: tuple[str, str]) -> list[Any]:
    found = [folded.c.day >= days[0], folded.c.day < days[1]]
    if query.agent:
        found.append(folded.c.agent == rollup.stored(query.agent))
    if query.tool:
        found.append(folded.c.tool == rollup.stored(query.tool))
    return found


def _counts(query: Query) -> Any:
    """Per group, outcome and auto-approval: how many, in one statement (one snapshot).
    Each part counts its own rows first: a third of the time of summing them once."""
    spans, days = _plan(query)
    c = table.c
    parts: list[Any] = []
    for span in spans:
        if span.unfolded:
            # Pending approvals, read from the index of what is not folded alone: no
            # reviewer, not auto-approved (a quarter of the call's time at 90,000 pending).
            key = _key(query.group_by) if query.group_by != "reviewer" else cast(null(), String)
            parts.append(
                _counted(key, c.status, 0, func.count()).where(
                    *_where(query, span), c.status == "pending"
                )
            )
        ended = [c.status.in_(rollup.ENDED)] if span.unfolded else []
        auto = case((rollup.auto_approved(), 1), else_=0)
        parts.append(
            _counted(_key(query.group_by), c.status, auto, func.count()).where(
                *_where(query, span), *ended
            )
        )
    if days is not None:
        folded = rollup.counts_table
        auto = case((folded.c.auto == true(), 1), else_=0)
        parts.append(
            _counted(
                _folded_key(folded, query.group_by), folded.c.status, auto, func.sum(folded.c.n)
            ).where(*_folded_where(folded, query, days))
        )
    every = union_all(*parts).subquery()
    e = every.c
    return sql_select(e.key, e.status, e.auto, func.sum(e.n).label("n")).group_by(
        e.key, e.status, e.auto
    )


def _counted(key: Any, status: Any, auto: Any, n: Any) -> Any:
    """One part of ``_counts``: ``n`` per ``key``, ``status`` and ``auto`` (an integer
    ``auto`` is a constant: SQLite reads an integer in GROUP BY as a column's position)."""
    grouped = [key, status] if isinstance(auto, int) else [key, status, auto]
    auto = literal(auto) if isinstance(auto, int) else auto
    columns = (key.label("key"), status.label("status"), auto.label("auto"), n.label("n"))
    return sql_select(*columns).group_by(*grouped)


def _histogram(query: Query, dialect: Dialect) -> Any:
    """The histogram of the window per group (``bucket``, ``n``): the rollup's rows and the
    decisions it does not hold yet, bucketed in the database, in one statement. The rollup keeps
    one dimension at a time, so a filtered query reads its times from the approvals."""
    spans, days = _plan(query)
    if query.agent or query.tool:
        spans, days = [_Span(query.since, query.until)], None
    parts: list[Any] = []
    for span in spans:
        grouped = _key(query.group_by)
        k = rollup.bucket(rollup.millis(dialect))
        parts.append(
            sql_select(grouped.label("key"), k.label("bucket"), func.count().label("n"))
            .where(*_where(query, span), rollup.decided_by_person())
            .group_by(grouped, k)
        )
    if days is not None:
        folded = rollup.times_table
        by = query.group_by
        dimension = by if by in ("tool", "agent", "reviewer") else ""
        if by in ("tool", "agent", "reviewer"):
            key: Any = case((folded.c.value == "", None), else_=func.substr(folded.c.value, 2))
        else:
            key = folded.c.day if by == "day" else cast(null(), String)
        parts.append(
            sql_select(
                key.label("key"),
                cast(folded.c.bucket, BigInteger).label("bucket"),
                func.sum(folded.c.n).label("n"),
            )
            .where(folded.c.day >= days[0], folded.c.day < days[1])
            .where(folded.c.dimension == dimension)
            .group_by(key, folded.c.bucket)
        )
    return union_all(*parts)


def _ranked(query: Query, dialect: Dialect) -> Any:
    """The time to decision at each percentile's rank, over all (``all_n``, ``all_rank``)
    and, when grouped, per group (``n``, ``rank``): one scan, a sort per ranking."""
    grouped = query.group_by is not None
    durations = (
        sql_select(_key(query.group_by).label("key"), rollup.millis(dialect).label("millis"))
        .where(*_where(query), rollup.decided_by_person())
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


async def compute(engine: AsyncEngine, query: Query, exact_limit: int = EXACT_LIMIT) -> Stats:
    """The figures of ``query``: per group (when grouped) and over all."""
    dialect = engine.dialect
    groups: dict[str | None, _Group] = {}
    overall = _Group(None)
    async with engine.connect() as conn:
        if dialect.name == "postgresql":
            # The ranking sorts in memory, not on disk. The planner guesses the approvals
            # ended but not yet folded from each column's statistics apart (ended ones are
            # most, unfolded ones a tenth: tens of thousands), and would scan the table for
            # what the index of the unfolded finds in a millisecond: no table scans here.
            await conn.execute(text(f"SET LOCAL work_mem = '{SORT_MEMORY}'"))
            await conn.execute(text("SET LOCAL enable_seqscan = off"))
        for row in (await conn.execute(_counts(query))).mappings():
            key = row["key"] if query.group_by else None
            n = int(row["n"])
            for group in (overall, groups.setdefault(key, _Group(key))):
                group.total += n
                group.counts[row["status"]] = group.counts.get(row["status"], 0) + n
                group.auto += n if row["auto"] else 0
        if overall.total > exact_limit:
            histograms: dict[str | None, Counter[int]] = {}
            everything: Counter[int] = Counter()
            for key, k, n in await conn.execute(_histogram(query, dialect)):
                k = int(k)
                histograms.setdefault(key if query.group_by else None, Counter())[k] += int(n)
                everything[k] += int(n)
            _read(overall, everything)
            for key, group in groups.items():
                _read(group, histograms.get(key, Counter()))
        else:
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


def _read(group: _Group, histogram: Counter[int]) -> None:
    """The percentiles of a histogram of buckets: the estimate of the bucket holding each
    nearest rank, to the millisecond."""
    group.approximate = True
    group.decided = sum(histogram.values())
    wanted = sorted((_rank(group.decided, p), p) for p in PERCENTILES)
    seen = 0
    for k in sorted(histogram):
        seen += histogram[k]
        while wanted and wanted[0][0] <= seen:
            group.ranks[wanted.pop(0)[1]] = round(rollup.estimate(k)) / 1000


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
            approximate=group.approximate,
        ),
    )
