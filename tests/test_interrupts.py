"""LangGraph and AG-UI interrupt payloads posted as approval requests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from conftest import Server


def test_langgraph_human_interrupt_opens_an_approval_with_its_allowed_responses(
    server: Server,
) -> None:
    agent = server.db.key("events:write", "approvals:read", name="graph")
    alice = server.db.key("approvals:resolve", name="alice")
    interrupt = {
        "action_request": {"action": "send_email", "args": {"to": "ceo@example.com"}},
        "config": {
            "allow_accept": True,
            "allow_edit": False,
            "allow_respond": True,
            "allow_ignore": False,
        },
        "description": "Send the quarterly email?",
        "runId": "lg_run",
        "threadId": "lg_thread",
    }
    with server.client(agent) as http:
        event = http.post("/v1/events", json=interrupt).json()
        approval = http.get(f"/v1/approvals/{event['approvalId']}").json()
    assert event["type"] == "steering_request" and event["status"] == "pending_approval"
    assert event["title"] == "Send the quarterly email?"
    assert (approval["tool"], approval["arguments"], approval["runId"]) == (
        "send_email",
        {"to": "ceo@example.com"},
        "lg_run",
    )
    assert event["detail"]["allowedDecisions"] == ["approve", "answer"]
    url = f"/v1/approvals/{event['approvalId']}/decision"
    with server.client(alice) as http:
        rejected = http.post(url, json={"decision": "reject"})
        assert (
            rejected.status_code == 422
            and "allows only approve, answer" in rejected.json()["message"]
        )
        edited = http.post(url, json={"decision": "approve", "arguments": {"to": "me@example.com"}})
        assert edited.status_code == 422 and edited.json()["field"] == "body.arguments"
        answered = http.post(url, json={"decision": "answer", "answer": "Send it tomorrow"})
    assert answered.status_code == 200 and answered.json()["status"] == "answered"


def test_agui_interrupt_opens_an_approval_that_expires_at_expires_at(server: Server) -> None:
    agent = server.db.key("events:write", "approvals:read")
    expires = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    interrupt = {
        "id": "int_1",
        "reason": "tool_approval",
        "message": "Delete 40 rows?",
        "toolCallId": "call_9",
        "expiresAt": expires,
        "runId": "agui_run",
    }
    with server.client(agent) as http:
        event = http.post("/v1/events", json=interrupt).json()
        again = http.post("/v1/events", json=interrupt).json()
        approval = http.get(f"/v1/approvals/{event['approvalId']}").json()
        bad = http.post("/v1/events", json={**interrupt, "id": "int_2", "expiresAt": "later"})
    assert again["id"] == event["id"]  # the interrupt id makes it idempotent
    assert event["externalId"] == "int_1" and event["title"] == "Delete 40 rows?"
    assert event["detail"]["toolCallId"] == "call_9"
    assert approval["expiresAt"] is not None and approval["runId"] == "agui_run"
    assert bad.status_code == 422 and bad.json()["field"] == "body.expiresAt"
