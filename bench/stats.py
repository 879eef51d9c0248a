"""GET /v1/stats at 1,000,000 approvals: latency per groupBy, on SQLite and PostgreSQL.

Fills a fresh database with ``--approvals`` approvals (and their request events) by
bulk ``INSERT … SELECT`` generated in the database itself (a recursive CTE on SQLite,
``generate_series`` on PostgreSQL), spread over the last 30 days so that the default
window holds every one of them (the worst case). The mix: 45 % approved by a person,
10 % by a policy, 5 % by a standing grant, 15 % rejected, 5 % answered, 8 % expired,
3 % withdrawn, 9 % pending; 20 tools, 50 agents, 10 reviewers; decisions 1 s to 1 h
after the request. Then starts the service, waits while it folds the ended approvals
into the figures' rollup (as after an upgrade; it prints the rate), and times ``--calls``
sequential calls of ``GET /v1/stats`` for the default window and each ``groupBy``, and a
1-day window.

Run: .venv/bin/python bench/stats.py [--approvals 1000000] [--calls 30] [--only sqlite,pg]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).parent))
from _harness import Server, key, percentiles, postgres_url, sqlite_url

from approvals.core.clock import iso
from approvals.core.db import make_sync_engine, parse_url

# Per row number i: a bucket 0..99 for the outcome, and a pseudo-random decision delay.
# The same arithmetic on both databases (64-bit integers).
MIX = """
  CASE WHEN b < 60 THEN 'approved'
       WHEN b < 75 THEN 'rejected' WHEN b < 80 THEN 'answered' WHEN b < 88 THEN 'expired'
       WHEN b < 91 THEN 'withdrawn' ELSE 'pending' END
"""
RESOLVED_BY = """
  CASE WHEN b < 45 THEN 'reviewer-' || (i % 10) WHEN b < 55 THEN 'system:policy'
       WHEN b < 60 THEN 'grant:grt_bench' WHEN b < 80 THEN 'reviewer-' || (i % 10)
       WHEN b < 88 THEN 'system:timeout' WHEN b < 91 THEN 'agent' ELSE NULL END
"""
DECISION = """
  CASE WHEN b < 60 THEN 'approve' WHEN b < 75 THEN 'reject' WHEN b < 80 THEN 'answer'
       WHEN b < 88 THEN 'reject' ELSE NULL END
"""
# delay in ms: 0 for policies and grants, else 1 s to 1 h
DELAY = "CASE WHEN b >= 45 AND b < 60 THEN 0 ELSE 1000 + (i * 2654435761) % 3599000 END"


def series(dialect: str, count: int, days: int) -> str:
    """A row source of ``i`` (1..count), ``b`` (0..99) and ``t`` (request time, epoch ms)."""
    start = int((datetime.now(UTC) - timedelta(days=days)).timestamp() * 1000)
    step = days * 86_400_000 // count - 1
    if dialect == "postgresql":
        return (
            f"(SELECT i, (i * 2654435761 / 65536) % 100 AS b, {start} + i * {step} AS t "
            f"FROM generate_series(1::bigint, {count}::bigint) AS i) AS s"
        )
    return (
        f"(WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) "
        f"SELECT i, (i * 2654435761 / 65536) % 100 AS b, {start} + i * {step} AS t FROM n) AS s"
    )


def stamp(dialect: str, ms: str) -> str:
    """An SQL expression formatting epoch milliseconds as 2026-12-07T10:00:00.000Z."""
    if dialect == "postgresql":
        return (
            f"to_char(to_timestamp(({ms}) / 1000.0) AT TIME ZONE 'UTC', "
            '\'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"\')'
        )
    return f"strftime('%Y-%m-%dT%H:%M:%fZ', ({ms}) / 1000.0, 'unixepoch')"


def fill(url: str, count: int, days: int) -> float:
    """Insert ``count`` request events and their approvals; return the seconds it took."""
    engine = make_sync_engine(parse_url(url))
    dialect = engine.dialect.name
    source = series(dialect, count, days)
    created = stamp(dialect, "t")
    resolved = f"CASE WHEN b < 91 THEN {stamp(dialect, f't + ({DELAY})')} END"
    true = "true" if dialect == "postgresql" else "1"
    false = "false" if dialect == "postgresql" else "0"
    began = time.monotonic()
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO events (id, type, category, status, title, source, agent_id, "
                "created_at, approval_id) "
                "SELECT i, 'steering_request', 'approval', 'pending_approval', 'bench', 'api', "
                f"'agent-' || (i % 50), {created}, 'apr_bench_' || i FROM {source}"
            )
        )
        conn.execute(
            text(
                "INSERT INTO approvals (id, event_id, status, title, tool, agent_id, source, "
                "requested_by, on_timeout, min_approvals, allow_self_approval, require_reason, "
                "require_reason_on_approve, confirm, allow_edit, grantable, created_at, "
                "resolved_at, resolved_by, decision) "
                f"SELECT 'apr_bench_' || i, i, {MIX}, 'bench', 'tool-' || (i % 20), "
                f"'agent-' || (i % 50), 'api', 'agent', 'reject', 1, {false}, {false}, "
                f"{false}, {false}, {true}, {true}, {created}, {resolved}, {RESOLVED_BY}, "
                f"{DECISION} FROM {source}"
            )
        )
        conn.execute(text(f"UPDATE log_head SET last_id = {count}"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE approvals" if dialect == "postgresql" else "ANALYZE"))
    engine.dispose()
    return time.monotonic() - began


def wait_folded(url: str) -> None:
    """Wait until the service has folded every ended approval; print how fast it went."""
    engine = make_sync_engine(parse_url(url))
    began = time.monotonic()
    try:
        with engine.connect() as conn:
            ended = conn.execute(
                text("SELECT count(*) FROM approvals WHERE status != 'pending'")
            ).scalar_one()
            while conn.execute(
                text("SELECT count(*) FROM approvals WHERE folded = :no AND status != 'pending'"),
                {"no": False},
            ).scalar_one():
                conn.rollback()
                time.sleep(0.5)
        took = time.monotonic() - began
        # The fill's statistics saw every approval unfolded. A running PostgreSQL's
        # autovacuum analyzes the table after the fold's updates (they change a tenth of
        # it and more); on a server with it off (this machine's test server) the planner
        # takes the partial index for all of the table and reads the status index
        # instead, ten times slower. Do what autovacuum does; SQLite's planner takes the
        # covering index either way, and is analyzed the same for fairness.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            postgres = engine.dialect.name == "postgresql"
            conn.execute(text("VACUUM ANALYZE approvals" if postgres else "ANALYZE"))
    finally:
        engine.dispose()
    print(f"  folded {ended:,} ended approvals in {took:.1f} s ({ended / took:,.0f}/s)")


def measure(url: str, label: str, count: int, days: int, calls: int) -> None:
    """Fill, serve and time each kind of call."""
    print(f"{label}: filling {count:,} approvals over {days} days ...", flush=True)
    print(f"  filled in {fill(url, count, days):.1f} s", flush=True)
    token = key(url, "approvals:read")
    server = Server(url)
    try:
        wait_folded(url)
        day = iso(datetime.now(UTC) - timedelta(days=1))
        cases = [("default window", {})]
        cases += [(f"groupBy={g}", {"groupBy": g}) for g in ("tool", "agent", "reviewer", "day")]
        cases.append(("last day, groupBy=tool", {"since": day, "groupBy": "tool"}))
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=server.base, headers=headers, timeout=60) as http:
            first = http.get("/v1/stats").json()["total"]
            print(f"  window total {first['total']:,}, outcomes {first['outcomes']}")
            for name, params in cases:
                samples = []
                for _ in range(calls):
                    began = time.perf_counter()
                    answer = http.get("/v1/stats", params=params)
                    samples.append(time.perf_counter() - began)
                    assert answer.status_code == 200, answer.text
                print(f"  {name:24} {percentiles(samples)}", flush=True)
    finally:
        server.stop()


def main() -> None:
    """Parse the options and run the measurements."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--approvals", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--days", default="365,30", help="spreads to measure, in days")
    parser.add_argument("--only", default="sqlite,pg")
    args = parser.parse_args()
    only = set(args.only.split(","))
    for days in (int(d) for d in args.days.split(",")):
        if "sqlite" in only:
            with sqlite_url() as url:
                measure(url, "SQLite", args.approvals, days, args.calls)
        if "pg" in only:
            with postgres_url() as pg:
                if pg is not None:
                    measure(pg, "PostgreSQL", args.approvals, days, args.calls)


if __name__ == "__main__":
    main()
