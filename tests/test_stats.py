"""GET /v1/stats against figures computed from the event log, and the Insights page."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import test_browser

from conftest import Database, Server, until

TOOLS = ("send_email", "deploy", "read_file", "rm", "search")
AGENTS = ("agent-a", "agent-b", "agent-c")
REVIEWERS = ("rev-1", "rev-2", "rev-3")
OUTCOMES = ("approved", "rejected", "answered", "expired", "withdrawn", "pending")
PERCENTILES = (50, 90, 99)


def _seconds(start: str, end: str) -> float:
    delta = datetime.fromisoformat(end.replace("Z", "+00:00")) - datetime.fromisoformat(
        start.replace("Z", "+00:00")
    )
    return round(delta.total_seconds(), 3)


def history(server: Server, count: int = 2000) -> dict[str, str]:
    """Open ``count`` approvals across tools and agents, and end them every way: a person
    approves, rejects or answers (three reviewers, in batches), a policy approves read_file
    and denies rm, some expire, some are withdrawn, some stay pending. Returns the keys."""
    agent = server.db.key("events:write", "events:read", "approvals:read", name="agent")
    reviewers = {name: server.db.key(name=name) for name in REVIEWERS}
    admin = server.db.key(name="admin")
    with server.client(admin) as http:
        for action, tool in (("auto_approve", "read_file"), ("deny", "rm")):
            answer = http.post("/v1/policies", json={"action": action, "tool": tool})
            assert answer.status_code == 201, answer.text
    opened: list[dict[str, Any]] = []
    with server.client(agent) as http:
        for start in range(0, count, 100):
            batch = [
                {
                    "type": "steering_request",
                    "title": f"request {n}",
                    "agentId": AGENTS[n % len(AGENTS)],
                    "detail": {"tool": TOOLS[(n * 7) % len(TOOLS)], "arguments": {"n": n}},
                }
                for n in range(start, min(start + 100, count))
            ]
            answer = http.post("/v1/events", json=batch)
            assert answer.status_code == 201, answer.text
            opened += answer.json()
        for n in range(30):  # these expire after a second
            answer = http.post(
                "/v1/approvals",
                json={
                    "title": f"short {n}",
                    "agentId": AGENTS[n % 3],
                    "detail": {"tool": "deploy"},
                    "timeoutSeconds": 1,
                },
            )
            assert answer.status_code == 201, answer.text
    asked = [e for e in opened if e["status"] == "pending_approval"]
    pending = [e["approvalId"] for e in asked if e["detail"]["tool"] not in ("read_file", "rm")]
    withdrawn, pending = pending[:40], pending[40:]
    with server.client(agent) as http:
        for approval_id in withdrawn:
            answer = http.post(f"/v1/approvals/{approval_id}/withdraw")
            assert answer.status_code == 200, answer.text
    left, pending = pending[-60:], pending[:-60]  # stay pending
    assert left
    kinds = ("approve", "reject", "answer", "approve")
    for start in range(0, len(pending), 100):
        chunk = pending[start : start + 100]
        name = REVIEWERS[(start // 100) % len(REVIEWERS)]
        body = []
        for i, approval_id in enumerate(chunk):
            decision = kinds[(start + i) % len(kinds)]
            item = {"id": approval_id, "decision": decision}
            if decision == "answer":
                item["answer"] = "use the staging one"
            body.append(item)
        with server.client(reviewers[name]) as http:
            answer = http.post("/v1/approvals/decisions", json=body)
        assert answer.status_code == 200, answer.text
        assert {r["status"] for r in answer.json()["results"]} == {200}, answer.text
    with server.client(admin) as http:
        until(
            lambda: (
                http.get("/v1/approvals", params={"status": "expired"}).json()["approvals"]
                and len(
                    http.get("/v1/approvals", params={"status": "expired", "limit": 100}).json()[
                        "approvals"
                    ]
                )
                == 30
            ),
            what="30 expiries",
        )
    return {"admin": admin, "agent": agent}


def from_the_log(server: Server, key: str) -> list[dict[str, Any]]:
    """Every approval as the event log tells it: its request and its resolution event."""
    with server.client(key) as http:
        lines = http.get("/v1/events", params={"format": "ndjson"}).text.splitlines()
    events = [json.loads(line) for line in lines if line.strip()]
    found: dict[str, dict[str, Any]] = {}
    for event in events:
        if event["type"] == "steering_request" and event.get("approvalId"):
            detail = event.get("detail") or {}
            found[event["approvalId"]] = {
                "tool": detail.get("tool"),
                "agent": event.get("agentId"),
                "created": event["createdAt"],
                "status": "pending",
                "by": None,
                "resolved": None,
            }
    for event in events:
        if event["type"] in ("approval.resolved", "approval.expired"):
            approval = found[event["detail"]["approvalId"]]
            approval["status"] = event["status"]
            approval["by"] = event["resolvedBy"]
            approval["resolved"] = event["resolvedAt"]
    return list(found.values())


def expected(approvals: list[dict[str, Any]], group_by: str | None) -> dict[Any, dict[str, Any]]:
    """The figures per group, computed here from the log's approvals."""

    def key(a: dict[str, Any]) -> Any:
        if group_by == "tool":
            return a["tool"]
        if group_by == "agent":
            return a["agent"]
        if group_by == "day":
            return a["created"][:10]
        if group_by == "reviewer":
            if a["status"] in ("pending", "withdrawn"):
                return None
            return "system:grant" if a["by"].startswith("grant:") else a["by"]
        return "all"

    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for a in approvals:
        groups[key(a)].append(a)
    out = {}
    for name, members in groups.items():
        counts = {o: sum(1 for a in members if a["status"] == o) for o in OUTCOMES}
        auto = sum(
            1
            for a in members
            if a["status"] == "approved"
            and (a["by"] == "system:policy" or a["by"].startswith("grant:"))
        )
        times = sorted(
            _seconds(a["created"], a["resolved"])
            for a in members
            if a["status"] in ("approved", "rejected", "answered")
            and not a["by"].startswith(("system:", "grant:"))
        )
        ranks = {p: times[(p * len(times) + 99) // 100 - 1] if times else None for p in PERCENTILES}
        out[name] = {
            "total": len(members),
            "outcomes": counts,
            "autoApproved": auto,
            "expiredShare": round(counts["expired"] / len(members), 6),
            "autoApprovedShare": round(auto / len(members), 6),
            "timeToDecision": {
                "decided": len(times),
                **{f"p{p}": ranks[p] for p in PERCENTILES},
                "approximate": False,
            },
        }
    return out


def _figures(group: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in group.items() if k != "key"}


def test_stats_match_the_event_log_for_every_grouping(server: Server) -> None:
    keys = history(server)
    approvals = from_the_log(server, keys["admin"])
    assert len(approvals) >= 2000
    statuses = {a["status"] for a in approvals}
    assert statuses == set(OUTCOMES), statuses
    with server.client(keys["admin"]) as http:
        for group_by in (None, "tool", "agent", "reviewer", "day"):
            params = {"groupBy": group_by} if group_by else {}
            answer = http.get("/v1/stats", params=params)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["groupBy"] == group_by
            assert _figures(body["total"]) == expected(approvals, None)["all"], group_by
            if group_by is None:
                assert body["groups"] == []
                continue
            want = expected(approvals, group_by)
            got = {g["key"]: _figures(g) for g in body["groups"]}
            assert got == want, group_by
            assert body["groupsOmitted"] == 0
        assert http.get("/v1/stats", params={"groupBy": "reviewer"}).json()["groups"]
        total = http.get("/v1/stats").json()["total"]
        assert total["autoApproved"] > 0 and total["outcomes"]["expired"] == 30
        # a window before everything holds nothing
        empty = http.get(
            "/v1/stats", params={"since": "2020-01-01", "until": "2020-02-01T00:00:00Z"}
        ).json()
        assert empty["since"] == "2020-01-01T00:00:00.000Z"
        assert empty["until"] == "2020-02-01T00:00:00.000Z"
        assert empty["total"]["total"] == 0
        assert empty["total"]["expiredShare"] is None
        assert empty["total"]["timeToDecision"] == {
            "decided": 0,
            "p50": None,
            "p90": None,
            "p99": None,
            "approximate": False,
        }


def _close(got: dict[str, Any], want: dict[str, Any], what: Any) -> None:
    """Counts equal; each percentile within 2.5 % (and the millisecond it is rounded to)."""
    timing, exact = got["timeToDecision"], want["timeToDecision"]
    assert {k: v for k, v in got.items() if k != "timeToDecision"} == {
        k: v for k, v in want.items() if k != "timeToDecision"
    }, what
    assert timing["decided"] == exact["decided"], what
    assert timing["approximate"] is True, what
    for p in PERCENTILES:
        if exact[f"p{p}"] is None:
            assert timing[f"p{p}"] is None, what
        else:
            assert abs(timing[f"p{p}"] - exact[f"p{p}"]) <= exact[f"p{p}"] * 0.025 + 0.001, (
                what,
                p,
                timing,
                exact,
            )


def _ended(db: Database) -> int:
    return int(db.scalar("SELECT count(*) FROM approvals WHERE status != 'pending'"))


def _folded(db: Database) -> int:
    return int(db.scalar("SELECT coalesce(sum(n), 0) FROM stats_counts"))


def test_figures_from_the_rollup_match_the_event_log(
    database: Database, make_server: Callable[..., Server]
) -> None:
    # No exact limit: every answer reads its percentiles from histograms. Two instances
    # fold at once; each ended approval must be counted once.
    server = make_server(database, approvals_stats_exact_limit="0")
    make_server(database)
    keys = history(server)
    approvals = from_the_log(server, keys["admin"])
    until(lambda: _folded(database) == _ended(database), timeout=30, what="everything folded")
    assert _folded(database) == sum(1 for a in approvals if a["status"] != "pending")
    day = min(a["created"] for a in approvals)[:10]
    last = max(a["created"] for a in approvals)[:10]
    later = (datetime.fromisoformat(last) + timedelta(days=1)).date().isoformat()
    with server.client(keys["admin"]) as http:
        # the default window ends now: today is a partial day, read from the approvals; a
        # window of whole days reads the rollup plus what it has not folded (the pending)
        for params in ({}, {"since": day, "until": later}):
            for group_by in (None, "tool", "agent", "reviewer", "day"):
                asked = {**params, **({"groupBy": group_by} if group_by else {})}
                body = http.get("/v1/stats", params=asked).json()
                _close(_figures(body["total"]), expected(approvals, None)["all"], asked)
                want = expected(approvals, group_by) if group_by else {}
                got = {g["key"]: _figures(g) for g in body["groups"]}
                assert set(got) == set(want), asked
                for name, figures in want.items():
                    _close(got[name], figures, (asked, name))
        assert http.get("/v1/stats").json()["total"]["outcomes"]["pending"] > 0


def test_histogram_estimates_stay_within_their_bound() -> None:
    import sqlite3

    from sqlalchemy import column, select, table
    from sqlalchemy.dialects import sqlite

    from approvals.queue.rollup import bucket, estimate

    # The bucket rule is SQL: the fold and /v1/stats both run it in the database.
    m = column("m")
    query = select(m, bucket(m)).select_from(table("t"))
    sql = str(query.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
    values = [0, 1, 2, 3, 7, 19, 20, 21, 999, 1000, 1001, 59_999, 86_400_000]
    values += list(range(1, 200_000, 7))
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (m INTEGER)")
    db.executemany("INSERT INTO t VALUES (?)", [(v,) for v in values])
    found = dict(db.execute(sql))
    assert found[0] == -1
    for millis in values:
        assert abs(estimate(found[millis]) - millis) <= millis * 0.025, millis
    assert [found[m] for m in (1, 2, 3)] == sorted({found[m] for m in (1, 2, 3)})


def test_bad_queries_are_refused_naming_the_field(server: Server) -> None:
    reader = server.db.key("approvals:read")
    writer = server.db.key("events:write", "events:read")
    with server.client(writer) as http:
        answer = http.post("/v1/events", json={"type": "steering_request", "title": "one"})
        assert answer.status_code == 201
    with server.client(reader) as http:
        before = http.get("/v1/stats").json()
        for params, field in (
            ({"since": "yesterday"}, "query.since"),
            ({"until": "2026-13-01"}, "query.until"),
            ({"since": "2026-12-02", "until": "2026-12-01"}, "query.until"),
            ({"groupBy": "colour"}, "groupBy"),
            ({"group_by": "tool"}, "group_by"),
        ):
            answer = http.get("/v1/stats", params=params)
            assert answer.status_code == 400, (params, answer.text)
            assert field in (answer.json().get("field") or answer.json()["message"]), answer.text
        after = http.get("/v1/stats").json()
        assert after["total"] == before["total"]
        assert after["total"]["total"] == 1
    with server.client(writer) as http:
        answer = http.get("/v1/stats")
        assert answer.status_code == 403, answer.text
        assert answer.json()["scope"] == "approvals:read"
    with server.client() as http:
        assert http.get("/v1/stats").status_code == 401


def test_stats_are_documented_in_the_openapi_document(server: Server) -> None:
    with server.client() as http:
        document = http.get("/schema/openapi.json").json()
    operation = document["paths"]["/v1/stats"]["get"]
    assert operation["operationId"] == "getStats"
    names = {p["name"] for p in operation["parameters"]}
    assert names == {"since", "until", "groupBy"}
    assert "200" in operation["responses"] and "403" in operation["responses"]


@test_browser.pytestmark[0]
@test_browser.pytestmark[1]
def test_insights_page_draws_its_charts_under_the_csp(
    sqlite_database: Database, make_server: Callable[..., Server]
) -> None:
    from playwright.sync_api import sync_playwright

    server = make_server(sqlite_database, approvals_keepalive_seconds="2")
    subprocess.run(
        [sys.executable, "-m", "approvals", "users", "create", "alice", "--password-stdin"],
        input=test_browser.PASSWORD + "\n",
        text=True,
        check=True,
        capture_output=True,
        env={**os.environ, "APPROVALS_DATABASE_URL": sqlite_database.url},
    )
    keys = history(server, count=300)
    approvals = from_the_log(server, keys["admin"])
    by_tool = expected(approvals, "tool")
    by_reviewer = expected(approvals, "reviewer")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=test_browser.CHROMIUM, headless=True, args=test_browser.ARGS
        )
        try:
            page = test_browser.signed_in(browser, server, "alice")
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.add_init_script(
                "window.__csp = []; document.addEventListener('securitypolicyviolation',"
                " e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI))"
            )
            page.goto(server.base + "/insights", wait_until="load")
            for chart in ("ttd", "outcomes", "shares", "load"):
                page.wait_for_selector(f"#chart-{chart}[data-drawn=true] canvas", timeout=10_000)
                painted = page.evaluate(
                    """id => {
                      const c = document.querySelector('#chart-' + id + ' canvas');
                      const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                      let n = 0; for (let i = 3; i < px.length; i += 4) if (px[i]) n++;
                      return [c.width, n];
                    }""",
                    chart,
                )
                assert painted[0] > 100 and painted[1] > 500, (chart, painted)
            for tool, figures in by_tool.items():
                row = page.locator("#table-outcomes tbody tr", has_text=tool or "(no tool)")
                cells = row.first.locator("td").all_inner_texts()
                counts = [str(figures["outcomes"][o]) for o in OUTCOMES]
                assert cells == [*counts, str(figures["total"])], (tool, cells)
            for name, figures in by_reviewer.items():
                if name is None:
                    continue
                cells = page.locator("#table-load tbody tr", has_text=name).first
                assert cells.locator("td").first.inner_text() == str(figures["total"])
            assert page.locator("nav a[aria-current=page]").inner_text() == "Insights"
            assert page.evaluate("window.__csp") == []
            assert not [p for p in problems if "Content Security Policy" in p], problems
            assert not problems, problems
        finally:
            browser.close()
