"""Standing grants: "allow this tool for this run" approves the next matching requests in
scope and none outside it, within the policy's cap, until revoked, and every approval a
grant makes names the grant and the reviewer who made it."""

from __future__ import annotations

import contextlib
import subprocess
import time
from typing import Any

import httpx
from test_dashboard import add_user, sign_in
from test_terminal import cli as terminal

from conftest import Server


def ask(http: httpx.Client, tool: str, run: str, agent: str = "billing-bot") -> dict[str, Any]:
    body = {
        "title": f"Run {tool}?",
        "runId": run,
        "agentId": agent,
        "detail": {"tool": tool, "arguments": {"run": run}},
    }
    answer = http.post("/v1/approvals", json=body)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def approve(http: httpx.Client, approval_id: str, **body: Any) -> httpx.Response:
    return http.post(f"/v1/approvals/{approval_id}/decision", json={"decision": "approve", **body})


def test_a_grant_approves_the_next_requests_in_its_scope_and_none_outside(
    server: Server,
) -> None:
    agent = server.db.key("events:write", "approvals:read", name="agent")
    bob = server.db.key("approvals:resolve", "approvals:read", name="bob")
    with server.client(agent) as http:
        first = ask(http, "refund", "run_1")
    with server.client(bob) as http:
        decided = approve(http, first["id"], grant={"scope": "run", "seconds": 600})
        assert decided.status_code == 200, decided.text
        made = decided.json()["resolution"]["detail"]["grant"]
        listed = http.get("/v1/grants").json()["grants"]
    assert made["scope"] == "run" and made["grantedBy"] == "bob" and made["seconds"] == 600
    assert [g["id"] for g in listed] == [made["id"]]
    assert listed[0]["runId"] == "run_1" and listed[0]["tool"] == "refund"
    with server.client(agent) as http:
        again = ask(http, "refund", "run_1")
        other_run = ask(http, "refund", "run_2")
        other_tool = ask(http, "delete_account", "run_1")
    # In scope: approved at once, by the grant, attributable to bob.
    assert again["status"] == "approved" and again["resolvedBy"] == f"grant:{made['id']}"
    assert again["grantId"] == made["id"]
    detail = again["resolution"]["detail"]
    assert detail["grant"]["grantedBy"] == "bob" and detail["grant"]["approvalId"] == first["id"]
    # Out of scope: a human is asked.
    assert other_run["status"] == "pending" and other_tool["status"] == "pending"
    with server.client(bob) as http:
        assert http.get("/v1/grants").json()["grants"][0]["uses"] == 1
        # An agent-wide grant covers the agent's other runs, not other agents.
        agent_wide = approve(http, other_run["id"], grant={"scope": "agent", "seconds": 600})
        assert agent_wide.status_code == 200, agent_wide.text
    with server.client(agent) as http:
        third_run = ask(http, "refund", "run_3")
        stranger = ask(http, "refund", "run_3", agent="other-bot")
    assert third_run["status"] == "approved" and stranger["status"] == "pending"


def test_grants_stop_at_revocation_at_their_end_and_within_the_policy(server: Server) -> None:
    admin = server.db.key("admin", name="ops")
    agent = server.db.key("events:write", "approvals:read", name="agent")
    bob = server.db.key("approvals:resolve", "approvals:read", name="bob")
    with server.client(admin) as http:
        for policy in (
            {"action": "require", "tool": "short", "maxGrantSeconds": 60},
            {"action": "require", "tool": "never", "grantable": False},
            {"action": "require", "tool": "pair", "minApprovals": 2},
        ):
            assert http.post("/v1/policies", json=policy).status_code == 201
    with server.client(agent) as http:
        short, never, pair, no_run = (
            ask(http, "short", "run_1"),
            ask(http, "never", "run_1"),
            ask(http, "pair", "run_1"),
            http.post(
                "/v1/approvals", json={"title": "t", "detail": {"tool": "x", "arguments": {}}}
            ).json(),
        )
    with server.client(bob) as http:
        refusals = [
            (approve(http, short["id"], grant={"scope": "run", "seconds": 61}), "seconds"),
            (approve(http, never["id"], grant={"scope": "run", "seconds": 60}), "does not allow"),
            (approve(http, pair["id"], grant={"scope": "run", "seconds": 60}), "quorum"),
            (approve(http, no_run["id"], grant={"scope": "run", "seconds": 60}), "no runId"),
            (
                http.post(
                    f"/v1/approvals/{short['id']}/decision",
                    json={"decision": "reject", "grant": {"scope": "run", "seconds": 5}},
                ),
                "only with 'approve'",
            ),
        ]
        for answer, says in refusals:
            assert answer.status_code == 422, answer.text
            assert says in answer.json()["message"] and answer.json()["field"].startswith(
                "body.grant"
            )
        assert http.get("/v1/grants").json()["grants"] == []
        assert server.db.scalar("SELECT count(*) FROM approvals WHERE status = 'pending'") == 4
        # Within the cap it is made; revoked, the next request asks again.
        granted = approve(http, short["id"], grant={"scope": "run", "seconds": 60}).json()
        grant_id = granted["resolution"]["detail"]["grant"]["id"]
    with server.client(agent) as http:
        assert ask(http, "short", "run_1")["status"] == "approved"
    with server.client(bob) as http:
        assert http.delete(f"/v1/grants/{grant_id}").status_code == 204
        again = http.delete(f"/v1/grants/{grant_id}")
        assert again.status_code == 409 and "already ended" in again.json()["message"]
        assert http.delete("/v1/grants/grt_nope").status_code == 404
        assert http.get("/v1/grants").json()["grants"] == []
        ended = http.get("/v1/grants", params={"status": "all"}).json()["grants"]
        assert ended[0]["revokedBy"] == "bob" and ended[0]["uses"] == 1
    with server.client(agent) as http:
        assert ask(http, "short", "run_1")["status"] == "pending"
    # A grant ends at its time.
    with server.client(agent) as http:
        brief = ask(http, "brief", "run_9")
    with server.client(bob) as http:
        assert approve(http, brief["id"], grant={"scope": "run", "seconds": 1}).status_code == 200
    with server.client(agent) as http:
        assert ask(http, "brief", "run_9")["status"] == "approved"
        time.sleep(1.2)
        assert ask(http, "brief", "run_9")["status"] == "pending"


def test_grants_from_the_dashboard_and_the_command_line(server: Server) -> None:
    add_user(server.db, "carol")
    agent = server.db.key("events:write", "approvals:read", name="agent")
    bob = server.db.key("approvals:resolve", "approvals:read", name="bob")
    with server.client(agent) as http:
        first = ask(http, "deploy", "run_d")
    carol, token = sign_in(server, "carol")
    with contextlib.closing(carol):
        form = carol.get(f"/approvals/{first['id']}").text
        assert 'name="grant"' in form and 'value="run:3600"' in form
        decided = carol.post(
            f"/approvals/{first['id']}/decide",
            data={"csrf_token": token, "decision": "approve", "grant": "run:3600"},
            headers={"HX-Request": "true"},
        )
        assert decided.status_code == 200, decided.text
        page = carol.get("/grants").text
        assert "deploy" in page and "run_d" in page and "carol" in page
    with server.client(agent) as http:
        assert ask(http, "deploy", "run_d")["status"] == "approved"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return terminal(server, bob, *args)

    listed = cli("grants", "list")
    assert listed.returncode == 0, listed.stderr
    grant_id = listed.stdout.split()[0]
    assert grant_id.startswith("grt_") and "deploy" in listed.stdout and "used 1" in listed.stdout
    revoked = cli("grants", "revoke", grant_id)
    assert revoked.returncode == 0 and f"{grant_id} revoked" in revoked.stdout
    assert "No grants in force." in cli("grants", "list").stdout
    again = cli("grants", "revoke", grant_id)
    assert again.returncode == 1 and "already ended" in again.stderr
    with server.client(agent) as http:
        pending = ask(http, "deploy", "run_d")
    assert pending["status"] == "pending"
    # The terminal's approve grants too.
    made = cli("approve", pending["id"], "--grant", "agent:900")
    assert made.returncode == 0, made.stderr
    bad = cli("approve", pending["id"], "--grant", "forever")
    assert bad.returncode == 2 and "--grant must look like" in bad.stderr
    with server.client(agent) as http:
        assert ask(http, "deploy", "run_other")["status"] == "approved"
    # Revoked from the dashboard.
    carol, token = sign_in(server, "carol")
    with contextlib.closing(carol):
        (grant,) = httpx.get(
            server.base + "/v1/grants", headers={"Authorization": f"Bearer {bob}"}
        ).json()["grants"]
        gone = carol.post(f"/grants/{grant['id']}/revoke", data={"csrf_token": token})
        assert gone.status_code == 303
        assert "No grants in force." in carol.get("/grants").text
    with server.client(agent) as http:
        assert ask(http, "deploy", "run_other")["status"] == "pending"
