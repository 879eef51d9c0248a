"""The log exported as NDJSON (the API) or CSV/NDJSON files (``approvals export``)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from conftest import Server
from streams import Subscription


def export(server: Server, key: str, **params: str) -> httpx.Response:
    return httpx.get(
        server.base + "/v1/events",
        params={"format": "ndjson", **params},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )


def approvals_cli(server: Server, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "APPROVALS_URL": server.base, "APPROVALS_KEY": key}
    return subprocess.run(
        [sys.executable, "-m", "approvals", "export", *args],
        text=True,
        capture_output=True,
        env=env,
        timeout=120,
    )


def test_ndjson_is_the_streams_history_with_audit_events_and_filters(server: Server) -> None:
    key = server.db.key("events:read", "events:write")
    admin = server.db.key("admin", name="root")
    with server.client(key) as http:
        http.post(
            "/v1/events",
            json=[{"type": "token", "detail": {"delta": "Grüße ✓"}}, {"type": "tool_call"}],
        ).raise_for_status()
    with server.client(admin) as http:  # an admin change: an audit event in the log
        http.post("/v1/policies", json={"tool": "t", "action": "auto_approve"}).raise_for_status()
    with server.client(key) as http:
        http.post("/v1/events", json={"type": "token", "runId": "r1"}).raise_for_status()
    answer = export(server, key)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/x-ndjson")
    lines = answer.text.splitlines()
    assert len(lines) == 4 and answer.headers["x-log-head"] == json.loads(lines[-1])["id"]
    with Subscription(server.base, key, params={"history": "true"}) as sub:
        messages = [m for m in sub.take(5) if m.event != "connected"]
    assert lines == [m.data for m in messages]  # byte for byte what the stream sends
    assert [json.loads(line)["type"] for line in lines][2].startswith("audit.")
    only = export(server, key, type="token", run_id="r1").text.splitlines()
    assert [json.loads(line)["runId"] for line in only] == ["r1"]
    after = export(server, key, after=json.loads(lines[1])["id"]).text.splitlines()
    assert after == lines[2:]
    assert export(server, key, since="2999-01-01").text == ""
    assert export(server, key, until="2000-01-01T00:00:00Z").text == ""
    assert len(export(server, key, since="2000-01-01").text.splitlines()) == 4


def test_bad_export_queries_are_refused_by_name(server: Server) -> None:
    key = server.db.key("events:read")
    for params, field in (
        ({"since": "yesterday"}, "query.since"),
        ({"until": "2026-13-45"}, "query.until"),
    ):
        answer = export(server, key, **params)
        assert answer.status_code == 400 and answer.json()["field"] == field, answer.text
    answer = httpx.get(
        server.base + "/v1/events",
        params={"since": "2026-01-01"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert answer.status_code == 400 and "format=ndjson" in answer.json()["message"]
    assert export(server, key, format="xml").status_code == 400


def test_a_large_export_streams_in_pages_with_flat_memory(server: Server) -> None:
    """100,000 events: the server's memory grows by far less than the export's size, and
    the export is every event once, in order."""
    key = server.db.key("events:read", "events:write")
    with server.client(key) as http:
        for _ in range(100):
            batch = [{"type": "token", "detail": {"delta": "x" * 200}}] * 1000
            http.post("/v1/events", json=batch, timeout=60).raise_for_status()
    assert server.proc is not None
    status = Path(f"/proc/{server.proc.pid}/status")

    def rss() -> int:
        line = next(x for x in status.read_text().splitlines() if x.startswith("VmRSS:"))
        return int(line.split()[1]) * 1024

    before = peak = rss()
    size = count = 0
    last = 0
    with httpx.stream(
        "GET",
        server.base + "/v1/events",
        params={"format": "ndjson"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    ) as answer:
        for line in answer.iter_lines():
            event = json.loads(line)
            assert int(event["id"]) > last
            last = int(event["id"])
            size += len(line) + 1
            count += 1
            if count % 5000 == 0:
                peak = max(peak, rss())
    assert count == 100_000 and size > 30_000_000
    assert peak - before < size // 3, (before, peak, size)


def test_the_command_writes_csv_and_ndjson_and_resumes(server: Server, tmp_path: Path) -> None:
    key = server.db.key("events:read", "events:write")
    with server.client(key) as http:
        http.post(
            "/v1/events",
            json=[{"type": "token", "title": f"t{n}", "detail": {"n": n}} for n in range(5)],
        ).raise_for_status()
    ndjson = approvals_cli(server, key)
    assert ndjson.returncode == 0, ndjson.stderr
    assert ndjson.stdout.splitlines() == export(server, key).text.splitlines()
    target = tmp_path / "log.csv"
    done = approvals_cli(server, key, "--format", "csv", "-o", str(target), "--type", "token")
    assert done.returncode == 0, done.stderr
    with target.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["title"] for r in rows] == [f"t{n}" for n in range(5)]
    assert json.loads(rows[3]["detail"]) == {"n": 3}
    # Resuming after the third event appends the rest.
    partial = tmp_path / "part.ndjson"
    first = json.loads(ndjson.stdout.splitlines()[2])["id"]
    resumed = approvals_cli(server, key, "--after", first, "-o", str(partial))
    assert resumed.returncode == 0, resumed.stderr
    assert partial.read_text().splitlines() == ndjson.stdout.splitlines()[3:]


def test_the_command_names_what_is_wrong(server: Server) -> None:
    key = server.db.key("events:read")
    bad = approvals_cli(server, key, "--format", "xml")
    assert bad.returncode == 2 and "ndjson or csv" in bad.stderr
    refused = approvals_cli(server, "nope")
    assert refused.returncode == 1 and "APPROVALS_KEY" in refused.stderr
    env = {**os.environ, "APPROVALS_URL": "http://127.0.0.1:9", "APPROVALS_KEY": key}
    down = subprocess.run(
        [sys.executable, "-m", "approvals", "export"],
        text=True,
        capture_output=True,
        env=env,
        timeout=120,
    )
    assert down.returncode == 1 and "127.0.0.1:9" in down.stderr and "APPROVALS_URL" in down.stderr
