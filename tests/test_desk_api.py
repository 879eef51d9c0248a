"""Policy fields of the reviewer's desk over real HTTP: reasons, confirmation, allowed decisions."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from conftest import Server


def open_request(http: httpx.Client, **body: Any) -> dict[str, Any]:
    answer = http.post("/v1/approvals", json={"title": "Delete 1.2M session rows", **body})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def test_policy_flags_are_stored_and_copied_to_new_approvals(server: Server) -> None:
    admin = server.db.key("admin", name="ops")
    agent = server.db.key("events:write", name="agent")
    with server.client(admin) as http:
        created = http.post(
            "/v1/policies",
            json={
                "tool": "delete_rows",
                "action": "require",
                "requireReason": True,
                "confirm": True,
            },
        )
        assert created.status_code == 201, created.text
        policy = created.json()
        assert policy["requireReason"] is True and policy["confirm"] is True
        assert policy["requireReasonOnApprove"] is False
        assert http.get("/v1/policies").json()["policies"][0]["confirm"] is True
    with server.client(agent) as http:
        governed = open_request(http, detail={"tool": "delete_rows", "arguments": {"n": 1}})
        free = open_request(http, detail={"tool": "read_file"})
    assert governed["policyId"] == policy["id"]
    assert governed["requireReason"] is True and governed["confirm"] is True
    assert governed["allowedDecisions"] == ["approve", "reject", "answer"]
    assert free["requireReason"] is False and free["confirm"] is False


def test_reject_without_a_reason_is_refused_and_changes_nothing(server: Server) -> None:
    admin = server.db.key("admin", name="ops")
    agent = server.db.key("events:write", name="agent")
    alice = server.db.key("approvals:resolve", "approvals:read", name="alice")
    with server.client(admin) as http:
        http.post(
            "/v1/policies",
            json={"tool": "delete_rows", "action": "require", "requireReason": True},
        ).raise_for_status()
    with server.client(agent) as http:
        approval = open_request(http, detail={"tool": "delete_rows"})
        other = open_request(http, detail={"tool": "delete_rows"})
    path = f"/v1/approvals/{approval['id']}"
    with server.client(alice) as http:
        for body in ({"decision": "reject"}, {"decision": "reject", "comment": "   "}):
            refused = http.post(path + "/decision", json=body)
            assert refused.status_code == 422, refused.text
            assert refused.json()["error"] == "invalid"
            assert refused.json()["field"] == "body.comment"
        assert http.get(path).json()["status"] == "pending"
        batch = http.post(
            "/v1/approvals/decisions",
            json=[
                {"id": approval["id"], "decision": "reject"},
                {"id": other["id"], "decision": "reject", "comment": "too broad"},
            ],
        ).json()["results"]
        assert [r["status"] for r in batch] == [422, 200]
        assert "reason" in batch[0]["message"]
        approved = http.post(path + "/decision", json={"decision": "approve"})
        assert approved.status_code == 200 and approved.json()["status"] == "approved"


def test_require_reason_on_approve(server: Server) -> None:
    admin = server.db.key("admin", name="ops")
    agent = server.db.key("events:write", name="agent")
    alice = server.db.key("approvals:resolve", name="alice")
    with server.client(admin) as http:
        http.post(
            "/v1/policies",
            json={"action": "require", "requireReason": True, "requireReasonOnApprove": True},
        ).raise_for_status()
    with server.client(agent) as http:
        approval = open_request(http)
    path = f"/v1/approvals/{approval['id']}/decision"
    with server.client(alice) as http:
        refused = http.post(path, json={"decision": "approve"})
        assert refused.status_code == 422 and refused.json()["field"] == "body.comment"
        done = http.post(path, json={"decision": "approve", "comment": "checked the backup"})
        assert done.status_code == 200 and done.json()["comment"] == "checked the backup"


def test_only_allowed_decisions_are_accepted(server: Server) -> None:
    agent = server.db.key("events:write", name="agent")
    alice = server.db.key("approvals:resolve", name="alice")
    interrupt = {
        "action_request": {"action": "ask_user", "args": {"q": "which table?"}},
        "config": {"allow_accept": False, "allow_ignore": False, "allow_respond": True},
        "description": "Which table should I clean?",
    }
    with server.client(agent) as http:
        (event,) = http.post("/v1/events", json=[interrupt]).json()
        approval_id = event["approvalId"]
    with server.client(alice) as http:
        listed = server.db.scalar(
            "SELECT allowed_decisions FROM approvals WHERE id = :id", id=approval_id
        )
        assert "answer" in str(listed) and "approve" not in str(listed)
        refused = http.post(f"/v1/approvals/{approval_id}/decision", json={"decision": "approve"})
        assert refused.status_code == 422 and refused.json()["field"] == "body.decision"
        answered = http.post(
            f"/v1/approvals/{approval_id}/decision",
            json={"decision": "answer", "answer": "sessions"},
        )
        assert answered.status_code == 200


@pytest.mark.parametrize("field", ["requireReason", "requireReasonOnApprove", "confirm"])
def test_policy_flags_must_be_booleans(server: Server, field: str) -> None:
    admin = server.db.key("admin")
    with server.client(admin) as http:
        answer = http.post("/v1/policies", json={"action": "require", field: "yes"})
    assert answer.status_code == 422 and answer.json()["field"] == f"body.{field}"
    assert server.db.scalar("SELECT count(*) FROM policies") == 0
