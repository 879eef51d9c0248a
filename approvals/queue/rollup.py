"""The figures' rollup: ended approvals folded into counts and time-to-decision histograms.

``GET /v1/stats`` would otherwise read every approval of its window at each call, and
sort the decided ones for the percentiles: seconds once a window holds a million. An
approval's figures no longer change once it has ended, so a loop in every process folds
ended approvals, a batch at a time, into two small tables keyed by the UTC day of the request:

- ``stats_counts``: per tool, agent and who ended it, how many ended each way (and
  whether a policy or a grant approved);
- ``stats_times``: for a person's decisions, over all and per tool, per agent and per
  reviewer (each apart: their product would be nearly as long as the approvals), how
  many took a time in each bucket of a log-scale histogram whose buckets are 5 % wide,
  so a percentile read from it is within 2.5 % of the exact one (``estimate``).

Claiming and counting happen in one transaction: the approvals are marked ``folded`` by a
conditional update that returns them, so two processes never fold one twice, and a crash
folds nothing. The figures add what is not folded yet (pending approvals, approvals ended
since the last turn) from the approvals table itself (``approvals.queue.stats``).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Float,
    Integer,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import TIMESTAMP
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from approvals.queue.models import Approval, StatsCount, StatsTime

log = logging.getLogger("approvals.queue")

BATCH = 1000  # approvals folded per transaction: short enough not to hold SQLite's writer
FOLD_SECONDS = 2.0  # the pause between turns once everything ended is folded
CATCH_UP_PAUSE = 0.02  # between full batches, so that other writers get the database
GAMMA = 1.05  # each bucket's upper bound over its lower one
_LOG_GAMMA = math.log(GAMMA)
DECIDED = ("approved", "rejected", "answered")
ENDED = (*DECIDED, "expired", "withdrawn")  # every status but pending: it no longer changes
SYSTEM_POLICY = "system:policy"  # as written by approvals.queue.service
GRANT_PREFIX = "grant:"
SYSTEM_GRANT = "system:grant"  # who ended an approval a standing grant approved

approvals = Approval.__table__  # type: ignore[attr-defined]
counts_table = StatsCount.__table__  # type: ignore[attr-defined]
times_table = StatsTime.__table__  # type: ignore[attr-defined]
_TZ = TIMESTAMP(timezone=True)
COUNTED = ("day", "tool", "agent", "reviewer", "status", "auto", "n")
TIMED = ("day", "dimension", "value", "bucket", "n")


def stored(value: str | None) -> str:
    """A key as the rollup stores it: ``=value``, or empty for none (primary keys are never
    null, and an empty tool name stays apart from no tool)."""
    return "" if value is None else "=" + value


def bucket(millis: ColumnElement[Any]) -> ColumnElement[int]:
    """The histogram bucket of a duration in milliseconds, in SQL: -1 for 0, else the
    ``k`` with ``GAMMA ** (k - 1) < millis <= GAMMA ** k`` (both databases' ``ln`` is the C
    library's ``log``, so the fold and ``/v1/stats`` put a duration in one bucket)."""
    k = func.ceil(func.ln(cast(millis, Float)) / _LOG_GAMMA - 1e-9)
    return case((millis <= 0, -1), else_=cast(k, Integer))


def estimate(k: int) -> float:
    """The milliseconds a bucket stands for: the point within 2.5 % of all its values."""
    if k < 0:
        return 0.0
    if k == 0:
        return 1.0
    return 2 * GAMMA**k / (1 + GAMMA)


# -- the rules, once: what the rollup counts and what /v1/stats reads from approvals -----


def auto_approved() -> ColumnElement[bool]:
    """Approved without a person: by an ``auto_approve`` policy or a standing grant."""
    c = approvals.c
    return or_(
        and_(c.resolved_by == SYSTEM_POLICY, c.status == "approved"),
        c.resolved_by.like(GRANT_PREFIX + "%"),
    )


def decided_by_person() -> ColumnElement[bool]:
    """A person's decision: decided, and not by a policy, a grant or the clock."""
    c = approvals.c
    return and_(
        c.status.in_(DECIDED),
        not_(c.resolved_by.like("system:%")),
        not_(c.resolved_by.like(GRANT_PREFIX + "%")),
    )


def ended_by() -> ColumnElement[Any]:
    """Who ended an approval, as the figures group it: a person, ``system:policy``,
    ``system:grant`` or ``system:timeout``; none while pending or once withdrawn."""
    c = approvals.c
    return case(
        (c.status.in_(("pending", "withdrawn")), None),
        (c.resolved_by.like(GRANT_PREFIX + "%"), literal(SYSTEM_GRANT)),
        else_=c.resolved_by,
    )


def millis(dialect: Dialect) -> ColumnElement[int]:
    """Milliseconds from request to resolution (the timestamps' precision), as an integer:
    integers sort faster than decimals, and PostgreSQL's ``extract`` answers a numeric."""
    c = approvals.c
    if dialect.name == "postgresql":
        delta = func.date_part("epoch", cast(c.resolved_at, _TZ) - cast(c.created_at, _TZ))
        return cast(func.round(delta * 1000.0), BigInteger)
    days = func.julianday(c.resolved_at) - func.julianday(c.created_at)
    return cast(func.round(days * 86_400_000.0), BigInteger)


def _claim(dialect: Dialect) -> Any:
    """Mark a batch of ended approvals folded, returning what the rollup counts of each
    (by the rules above, in the database: the same expressions ``/v1/stats`` reads)."""
    c = approvals.c
    picked = select(c.id).where(c.folded == false(), c.status.in_(ENDED)).limit(BATCH)
    if dialect.name == "postgresql":  # another process folding now takes other rows
        picked = picked.with_for_update(skip_locked=True)
    return (
        update(approvals)
        .where(c.folded == false(), c.id.in_(picked.scalar_subquery()))
        .values(folded=True)
        .returning(
            c.created_at,
            c.tool,
            c.agent_id,
            c.status,
            ended_by(),
            auto_approved(),
            case((decided_by_person(), bucket(millis(dialect))), else_=None),
        )
    )


def _add(dialect: str, table: Any) -> Any:
    """An insert of one row that adds its ``n`` to the row already there, if any (run with
    many rows at once: compiled once, then cached)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(table)
    keys = [column.name for column in table.primary_key.columns]
    return statement.on_conflict_do_update(
        index_elements=keys, set_={"n": table.c.n + statement.excluded.n}
    )


async def fold(engine: AsyncEngine) -> int:
    """Fold one batch of ended approvals; return how many (0: nothing left to fold)."""
    dialect = engine.dialect
    async with engine.begin() as conn:
        claimed = (await conn.execute(_claim(dialect))).all()
        if claimed:
            await _count(conn, dialect.name, claimed)
    return len(claimed)


async def _count(conn: AsyncConnection, dialect: str, claimed: Sequence[Any]) -> None:
    counts: Counter[tuple[Any, ...]] = Counter()
    times: Counter[tuple[Any, ...]] = Counter()
    for created, tool, agent, status, by, auto, k in claimed:
        day, reviewer = created[:10], stored(by)
        counts[(day, stored(tool), stored(agent), reviewer, status, bool(auto))] += 1
        if k is not None:
            k = int(k)
            for dimension, value in (("", ""), ("tool", stored(tool)), ("agent", stored(agent))):
                times[(day, dimension, value, k)] += 1
            times[(day, "reviewer", reviewer, k)] += 1
    await conn.execute(_add(dialect, counts_table), _rows(counts, COUNTED))
    if times:
        await conn.execute(_add(dialect, times_table), _rows(times, TIMED))


def _rows(counted: Counter[tuple[Any, ...]], columns: tuple[str, ...]) -> list[dict[str, Any]]:
    return [dict(zip(columns, (*key, n), strict=True)) for key, n in counted.items()]


async def fold_loop(services: Any) -> None:
    """Fold ended approvals into the rollup, in every process, for as long as it runs."""
    while True:
        services.beats.beat("stats")
        try:
            folded = await fold(services.engine)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("folding approvals into the figures failed; retrying")
            folded = 0
        await asyncio.sleep(CATCH_UP_PAUSE if folded >= BATCH else FOLD_SECONDS)
