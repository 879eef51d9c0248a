"""The terminal inbox commands against a real service, through its HTTP API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from conftest import Database, Server


@pytest.fixture
def live(sqlite_database: Database, make_server: Callable[..., Server]) -> Server:
    return make_server(sqlite_database)


def cli(server: Server, key: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPROVALS_")}
    env["APPROVALS_URL"] = server.base
    if key:
        env["APPROVALS_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "approvals", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=server.workdir,
    )


def open_approval(server: Server, key: str, **fields: Any) -> dict[str, Any]:
    with server.client(key) as http:
        response = http.post("/v1/approvals", json=fields)
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_pending_and_show(live: Server) -> None:
    agent, reviewer = live.db.key(name="agent"), live.db.key(name="reviewer")
    first = open_approval(
        live, agent, title="Post 5 ads?", detail={"tool": "post_ads", "arguments": {"count": 5}}
    )
    open_approval(live, agent, title="Delete rows?", runId="run_2")
    out = cli(live, reviewer, "pending")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert first["id"] in lines[0] and "post_ads" in lines[0] and "Post 5 ads?" in lines[0]
    assert "Delete rows?" in lines[1]
    assert lines[-1] == "2 pending"
    only = cli(live, reviewer, "pending", "--run-id", "run_2", "--json")
    assert [a["title"] for a in json.loads(only.stdout)] == ["Delete rows?"]
    shown = cli(live, reviewer, "show", first["id"])
    assert shown.returncode == 0, shown.stderr
    assert "title:        Post 5 ads?" in shown.stdout
    assert "status:       pending" in shown.stdout
    assert '"count": 5' in shown.stdout


def test_approve_reject_answer(live: Server) -> None:
    agent, reviewer = live.db.key(name="agent"), live.db.key(name="reviewer")
    ids = [
        open_approval(live, agent, title=t, detail={"arguments": {"count": 5}})["id"]
        for t in ("a", "b", "c")
    ]
    out = cli(
        live, reviewer, "approve", ids[0], "--comment", "fewer", "--arguments", '{"count": 2}'
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{ids[0]} approved by reviewer"
    out = cli(live, reviewer, "reject", ids[1], "--reason", "too many")
    assert out.stdout.strip() == f"{ids[1]} rejected by reviewer"
    out = cli(live, reviewer, "answer", ids[2], "use the staging account")
    assert out.stdout.strip() == f"{ids[2]} answered by reviewer"
    with live.client(reviewer) as http:
        a, b, c = (http.get(f"/v1/approvals/{i}").json() for i in ids)
    assert a["editedArguments"] == {"count": 2} and a["comment"] == "fewer"
    assert b["comment"] == "too many"
    assert c["answer"] == "use the staging account"
    assert cli(live, reviewer, "pending").stdout.strip() == "Nothing is waiting for a decision."
    shown = cli(live, reviewer, "show", ids[0]).stdout
    assert "decided by:   reviewer" in shown and "edited:" in shown


def test_errors_are_messages_not_tracebacks(live: Server) -> None:
    agent, reviewer = live.db.key(name="agent"), live.db.key(name="reviewer")
    approval = open_approval(live, agent, title="x")
    assert cli(live, reviewer, "approve", approval["id"]).returncode == 0
    again = cli(live, reviewer, "approve", approval["id"])
    assert again.returncode == 1 and again.stderr.startswith("error: ")
    assert "already approved" in again.stderr and "Traceback" not in again.stderr
    bad = cli(live, reviewer, "approve", approval["id"], "--arguments", "[1]")
    assert bad.returncode == 2 and "JSON object" in bad.stderr
    missing = cli(live, reviewer, "show", "apr_nope")
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    anonymous = cli(live, None, "pending")
    assert anonymous.returncode == 1 and "error:" in anonymous.stderr
    assert "reason" in cli(live, reviewer, "reject", approval["id"]).stderr.lower()
