"""The approval queue over real HTTP: opening, deciding, conflicts, quorum, timeouts, batches."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from conftest import Database, Server
from streams import Subscription


def open_request(http: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"title": "About to post 5 ads to Meta. Approve?", "runId": "run_1", **fields}
    answer = http.post("/v1/approvals", json=body)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def events_of(http: httpx.Client, **params: str) -> list[dict[str, Any]]:
    return list(http.get("/v1/events", params={"tail": "1000", **params}).json()["events"])


def test_a_steering_request_event_opens_one_approval(server: Server) -> None:
    agent = server.db.key("events:write", "events:read", "approvals:read")
    with server.client(agent) as http:
        stored = http.post(
            "/v1/events",
            json=[
                {"type": "token", "runId": "r1", "title": "thinking"},
                {
                    "type": "steering_request",
                    "runId": "r1",
                    "threadId": "t1",
                    "agentId": "a1",
                    "title": "Refund $40?",
                    "detail": {"tool": "refund", "arguments": {"usd": 40}},
                },
                {
                    "type": "tool_call",
                    "runId": "r1",
                    "status": "pending_approval",
                    "title": "rm -rf?",
                },
            ],
        ).json()
        assert stored[0]["approvalId"] is None
        assert stored[1]["approvalId"].startswith("apr_") and stored[2]["approvalId"]
        assert stored[1]["status"] == "pending_approval"
        one = http.get(f"/v1/approvals/{stored[1]['approvalId']}").json()
        queue = http.get("/v1/approvals").json()["approvals"]
    assert one["status"] == "pending"
    assert (one["tool"], one["arguments"], one["runId"], one["threadId"], one["agentId"]) == (
        "refund",
        {"usd": 40},
        "r1",
        "t1",
        "a1",
    )
    assert one["request"] == stored[1]
    assert one["resolution"] is None
    assert [a["id"] for a in queue] == [stored[1]["approvalId"], stored[2]["approvalId"]]


def test_post_approvals_appends_the_request_event(server: Server) -> None:
    agent = server.db.key("events:write", "events:read", "approvals:read")
    with server.client(agent) as http:
        approval = open_request(
            http,
            detail={"tool": "post_ads", "arguments": {"count": 5}},
            threadId="t",
            agentId="a",
            callbackUrl="https://example.test/resume",
            timeoutSeconds=600,
            onTimeout="approve",
        )
        event = http.get(f"/v1/events/{approval['requestEventId']}").json()
        stored = http.get(f"/v1/approvals/{approval['id']}").json()
    assert stored == approval  # the answer, built in the transaction, is what was stored
    assert approval["status"] == "pending"
    assert approval["requestedBy"] == server.db.scalar("SELECT name FROM api_keys")
    assert approval["callbackUrl"] == "https://example.test/resume"
    assert approval["onTimeout"] == "approve" and approval["expiresAt"]
    assert event["type"] == "steering_request"
    assert event["status"] == "pending_approval"
    assert event["approvalId"] == approval["id"]
    assert event["detail"] == {"tool": "post_ads", "arguments": {"count": 5}}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body.title"),
        ({"title": ""}, "body.title"),
        ({"title": "x", "detail": [1]}, "body.detail"),
        ({"title": "x", "callbackUrl": "ftp://x"}, "body.callbackUrl"),
        ({"title": "x", "callbackUrl": "not a url"}, "body.callbackUrl"),
        ({"title": "x", "timeoutSeconds": -5}, "body.timeoutSeconds"),
        ({"title": "x", "timeoutSeconds": "soon"}, "body.timeoutSeconds"),
        ({"title": "x", "onTimeout": "ignore"}, "body.onTimeout"),
        ({"title": "x", "requestedBy": "someone"}, "body.requestedBy"),
    ],
)
def test_bad_approval_requests_are_refused_and_change_nothing(
    server: Server, body: dict[str, Any], field: str
) -> None:
    agent = server.db.key("events:write")
    with server.client(agent) as http:
        answer = http.post("/v1/approvals", json=body)
    assert answer.status_code == 422
    assert answer.json()["field"] == field
    assert server.db.scalar("SELECT count(*) FROM events") == 0
    assert server.db.scalar("SELECT count(*) FROM approvals") == 0


def test_approve_with_edited_arguments_records_everything_once(server: Server) -> None:
    agent = server.db.key("events:write", "events:read")
    alice = server.db.key("approvals:resolve", "approvals:read", name="alice")
    with server.client(agent) as http:
        approval = open_request(http, detail={"tool": "post_ads", "arguments": {"count": 5}})
    with server.client(alice) as http:
        answer = http.post(
            f"/v1/approvals/{approval['id']}/decision",
            json={
                "decision": "approve",
                "comment": "fewer",
                "arguments": {"count": 3},
                "resolvedBy": "mallory",
            },
        )
        assert answer.status_code == 422  # resolvedBy never comes from a body
        answer = http.post(
            f"/v1/approvals/{approval['id']}/decision",
            json={"decision": "approve", "comment": "fewer", "arguments": {"count": 3}},
        )
        stored = http.get(f"/v1/approvals/{approval['id']}").json()
    assert answer.status_code == 200
    decided = answer.json()
    assert decided == stored  # the answer, built in the transaction, is what was stored
    assert decided["status"] == "approved" and decided["resolvedBy"] == "alice"
    assert decided["arguments"] == {"count": 5}
    assert decided["editedArguments"] == {"count": 3}
    assert decided["request"]["status"] == "approved"
    assert decided["request"]["resolvedBy"] == "alice"
    assert decided["request"]["resolvedAt"] == decided["resolvedAt"]
    resolution = decided["resolution"]
    assert resolution["type"] == "approval.resolved"
    assert resolution["runId"] == "run_1"
    assert resolution["resolvedBy"] == "alice" and resolution["resolvedAt"] == decided["resolvedAt"]
    assert resolution["detail"]["decision"] == "approve"
    assert resolution["detail"]["arguments"] == {"count": 3}
    assert resolution["detail"]["comment"] == "fewer"
    assert resolution["detail"]["requestEventId"] == approval["requestEventId"]


def test_reject_and_answer(server: Server) -> None:
    agent = server.db.key("events:write")
    bob = server.db.key("approvals:resolve", name="bob")
    with server.client(agent) as http:
        first = open_request(http)
        second = open_request(http)
    with server.client(bob) as http:
        rejected = http.post(
            f"/v1/approvals/{first['id']}/decision",
            json={"decision": "reject", "comment": "budget"},
        ).json()
        missing_text = http.post(
            f"/v1/approvals/{second['id']}/decision", json={"decision": "answer"}
        )
        answered = http.post(
            f"/v1/approvals/{second['id']}/decision",
            json={"decision": "answer", "answer": "Post 2 ads, not 5"},
        ).json()
    assert rejected["status"] == "rejected"
    assert rejected["resolution"]["detail"]["comment"] == "budget"
    assert missing_text.status_code == 422 and missing_text.json()["field"] == "body.answer"
    assert answered["status"] == "answered"
    assert answered["resolution"]["detail"]["answer"] == "Post 2 ads, not 5"


def test_exactly_one_of_48_concurrent_decisions_wins(server: Server) -> None:
    agent = server.db.key("events:write", "events:read")
    reviewers = [server.db.key("approvals:resolve", name=n) for n in ("alice", "bob")]
    with server.client(agent) as http:
        approval = open_request(http)
    barrier = threading.Barrier(48)
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def decide(n: int) -> None:
        with server.client(reviewers[n % 2]) as http:
            barrier.wait()
            decision = "approve" if n % 3 else "reject"
            answer = http.post(
                f"/v1/approvals/{approval['id']}/decision", json={"decision": decision}
            )
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=decide, args=(n,)) for n in range(48)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] + [409] * 47
    winner = next(a.json() for a in answers if a.status_code == 200)
    for loser in (a.json() for a in answers if a.status_code == 409):
        assert loser["error"] == "conflict"
        assert loser["resolvedBy"] == winner["resolvedBy"]
        assert winner["resolvedBy"] in loser["message"]
    with server.client(agent) as http:
        resolutions = events_of(http, type="approval.resolved")
    assert len(resolutions) == 1


def test_quorum_of_two_of_three_reviewers_in_stream_order(server: Server) -> None:
    admin = server.db.key("admin", name="ops")
    agent = server.db.key("events:write", "events:read", name="agent")
    names = ("alice", "bob", "carol")
    keys = {n: server.db.key("approvals:resolve", name=n) for n in names}
    with server.client(admin) as http:
        policy = http.post(
            "/v1/policies",
            json={
                "tool": "delete_data",
                "action": "require",
                "minApprovals": 2,
                "reviewers": list(names),
            },
        )
        assert policy.status_code == 201, policy.text
    with Subscription(server.base, agent, {"run_id": "run_q"}) as sub:
        sub.take(1)
        with server.client(agent) as http:
            approval = open_request(http, runId="run_q", detail={"tool": "delete_data"})
        assert approval["minApprovals"] == 2
        with server.client(keys["alice"]) as http:
            first = http.post(
                f"/v1/approvals/{approval['id']}/decision", json={"decision": "approve"}
            )
            again = http.post(
                f"/v1/approvals/{approval['id']}/decision", json={"decision": "approve"}
            )
        assert first.status_code == 200 and first.json()["status"] == "pending"
        assert [v["by"] for v in first.json()["votes"]] == ["alice"]
        assert again.status_code == 409
        with server.client(agent) as http:  # not a listed reviewer
            outsider = http.post(
                f"/v1/approvals/{approval['id']}/decision", json={"decision": "approve"}
            )
        assert outsider.status_code == 403
        with server.client(keys["bob"]) as http:
            second = http.post(
                f"/v1/approvals/{approval['id']}/decision", json={"decision": "approve"}
            )
        assert second.json()["status"] == "approved"
        with server.client(admin) as http:
            assert http.get(f"/v1/approvals/{approval['id']}").json() == second.json()
        seen = sub.events(4)
    assert [e["type"] for e in seen] == [
        "steering_request",
        "approval.vote",
        "approval.vote",
        "approval.resolved",
    ]
    assert seen[1]["detail"]["by"] == "alice" and seen[2]["detail"]["by"] == "bob"
    assert seen[3]["detail"]["votes"] == ["alice", "bob"]
    assert seen[3]["resolvedBy"] == "bob"


def test_any_reject_ends_a_quorum(server: Server) -> None:
    admin = server.db.key("admin")
    with server.client(admin) as http:
        http.post("/v1/policies", json={"action": "require", "minApprovals": 3})
        approval = open_request(http)
    alice = server.db.key("approvals:resolve", name="alice")
    bob = server.db.key("approvals:resolve", name="bob")
    with server.client(alice) as http:
        http.post(f"/v1/approvals/{approval['id']}/decision", json={"decision": "approve"})
    with server.client(bob) as http:
        answer = http.post(f"/v1/approvals/{approval['id']}/decision", json={"decision": "reject"})
    assert answer.json()["status"] == "rejected"


def test_self_approval_is_refused_unless_a_policy_allows_it(server: Server) -> None:
    agent = server.db.key("events:write", "approvals:resolve", name="bot")
    admin = server.db.key("admin", name="ops")
    with server.client(agent) as http:
        approval = open_request(http, detail={"tool": "send_email"})
        answer = http.post(f"/v1/approvals/{approval['id']}/decision", json={"decision": "approve"})
        assert answer.status_code == 403
        assert "bot" in answer.json()["message"] and "self-approval" in answer.json()["message"]
        assert (
            http.get(f"/v1/events/{approval['requestEventId']}").status_code == 403
        )  # no read scope
    assert server.db.scalar("SELECT status FROM approvals") == "pending"
    with server.client(admin) as http:
        http.post(
            "/v1/policies",
            json={"tool": "send_email", "action": "require", "allowSelfApproval": True},
        )
    with server.client(agent) as http:
        later = open_request(http, detail={"tool": "send_email"})
        assert (
            http.post(
                f"/v1/approvals/{later['id']}/decision", json={"decision": "approve"}
            ).status_code
            == 200
        )


def test_auto_approve_and_deny_policies_resolve_at_once_and_are_logged(server: Server) -> None:
    admin = server.db.key("admin")
    with server.client(admin) as http:
        http.post("/v1/policies", json={"tool": "read_file", "action": "auto_approve"})
        deny = http.post("/v1/policies", json={"agentId": "intern", "action": "deny"}).json()
        (auto_event, denied_event) = http.post(
            "/v1/events",
            json=[
                {"type": "steering_request", "title": "read?", "detail": {"tool": "read_file"}},
                {"type": "steering_request", "title": "wire money?", "agentId": "intern"},
            ],
        ).json()
        auto = http.get(f"/v1/approvals/{auto_event['approvalId']}").json()
        denied = http.get(f"/v1/approvals/{denied_event['approvalId']}").json()
        # Opened and resolved in one transaction, answered from the rows in hand.
        opened = http.post("/v1/approvals", json={"title": "cat?", "detail": {"tool": "read_file"}})
        assert opened.status_code == 201, opened.text
        assert opened.json()["status"] == "approved"
        assert http.get(f"/v1/approvals/{opened.json()['id']}").json() == opened.json()
        assert http.get("/v1/approvals").json()["approvals"] == []
        listed = http.get("/v1/policies").json()["policies"]
        assert http.delete(f"/v1/policies/{deny['id']}").status_code == 204
        assert http.delete(f"/v1/policies/{deny['id']}").status_code == 404
    assert auto_event["status"] == "approved" and auto_event["resolvedBy"] == "system:policy"
    assert auto["status"] == "approved" and auto["resolution"]["type"] == "approval.resolved"
    assert denied["status"] == "rejected" and denied["resolvedBy"] == "system:policy"
    assert deny["id"] in denied["resolution"]["detail"]["comment"]
    assert len(listed) == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "maybe"}, "body.action"),
        ({"action": "require", "minApprovals": 0}, "body.minApprovals"),
        ({"action": "deny", "minApprovals": 2}, "body.minApprovals"),
        ({"action": "require", "reviewers": "alice"}, "body.reviewers"),
        ({"action": "require", "minApprovals": 2, "reviewers": ["alice"]}, "body.reviewers"),
        ({"action": "require", "allowSelfApproval": "yes"}, "body.allowSelfApproval"),
    ],
)
def test_bad_policies_are_refused(server: Server, body: dict[str, Any], field: str) -> None:
    admin = server.db.key("admin")
    with server.client(admin) as http:
        answer = http.post("/v1/policies", json=body)
    assert answer.status_code == 422 and answer.json()["field"] == field
    assert server.db.scalar("SELECT count(*) FROM policies") == 0


def test_decision_errors(server: Server) -> None:
    agent = server.db.key("events:write")
    alice = server.db.key("approvals:resolve", name="alice")
    reader = server.db.key("approvals:read", name="reader")
    with server.client(agent) as http:
        approval = open_request(http)
    url = f"/v1/approvals/{approval['id']}/decision"
    with server.client(alice) as http:
        assert (
            http.post("/v1/approvals/apr_nope/decision", json={"decision": "approve"}).status_code
            == 404
        )
        bad = http.post(url, json={"decision": "maybe"})
        assert bad.status_code == 422 and bad.json()["field"] == "body.decision"
        args = http.post(url, json={"decision": "reject", "arguments": {"a": 1}})
        assert args.status_code == 422 and args.json()["field"] == "body.arguments"
    with server.client(reader) as http:
        forbidden = http.post(url, json={"decision": "approve"})
        assert forbidden.status_code == 403 and "approvals:resolve" in forbidden.json()["message"]
    assert server.db.scalar("SELECT status FROM approvals") == "pending"
    assert server.db.scalar("SELECT count(*) FROM events") == 1


def test_batch_decisions_answer_per_item(server: Server) -> None:
    agent = server.db.key("events:write")
    alice = server.db.key("approvals:resolve", "approvals:read", name="alice")
    with server.client(agent) as http:
        a, b, c = open_request(http), open_request(http), open_request(http)
    with server.client(alice) as http:
        http.post(f"/v1/approvals/{b['id']}/decision", json={"decision": "reject"})
        answer = http.post(
            "/v1/approvals/decisions",
            json=[
                {"id": a["id"], "decision": "approve"},
                {"id": "apr_missing", "decision": "approve"},
                {"id": b["id"], "decision": "approve"},
                {"id": c["id"], "decision": "sure"},
                {"id": c["id"], "decision": "answer", "answer": "use the staging account"},
            ],
        )
    assert answer.status_code == 200
    results = answer.json()["results"]
    assert [r["status"] for r in results] == [200, 404, 409, 422, 200]
    assert results[0]["approval"]["status"] == "approved"
    assert results[4]["approval"]["status"] == "answered"


def test_queue_filters_and_cursor_pagination(server: Server) -> None:
    agent = server.db.key("events:write", "approvals:read", "approvals:resolve")
    alice = server.db.key("approvals:resolve", name="alice")
    with server.client(agent) as http:
        opened = [open_request(http, runId=f"run_{i % 2}", agentId="a") for i in range(7)]
    with server.client(alice) as http:
        http.post(f"/v1/approvals/{opened[0]['id']}/decision", json={"decision": "approve"})
    with server.client(agent) as http:
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
            page = http.get("/v1/approvals", params=params).json()
            seen += [a["id"] for a in page["approvals"]]
            cursor = page["nextCursor"]
            if cursor is None:
                break
        assert seen == [a["id"] for a in opened[1:]]  # pending, oldest first
        run0 = http.get("/v1/approvals", params={"run_id": "run_0", "status": "all"}).json()
        assert [a["id"] for a in run0["approvals"]] == [a["id"] for a in opened[0::2]]
        approved = http.get("/v1/approvals", params={"status": "approved"}).json()["approvals"]
        assert [a["id"] for a in approved] == [opened[0]["id"]]
        assert http.get("/v1/approvals", params={"status": "done"}).status_code == 400
        assert http.get("/v1/approvals", params={"cursor": "x"}).status_code == 400


def test_long_poll_returns_soon_after_the_decision(server: Server) -> None:
    agent = server.db.key("events:write", "approvals:read")
    alice = server.db.key("approvals:resolve", name="alice")
    with server.client(agent) as http:
        approval = open_request(http)
        began = time.monotonic()
        quick = http.get(f"/v1/approvals/{approval['id']}", params={"wait": "0.5"}).json()
        assert quick["status"] == "pending" and time.monotonic() - began >= 0.4
    decided_at: list[float] = []

    def decide_later() -> None:
        time.sleep(1.0)
        with server.client(alice) as http:
            http.post(f"/v1/approvals/{approval['id']}/decision", json={"decision": "approve"})
        decided_at.append(time.monotonic())

    thread = threading.Thread(target=decide_later)
    thread.start()
    with server.client(agent) as http:
        waited = http.get(f"/v1/approvals/{approval['id']}", params={"wait": "20"})
    returned = time.monotonic()
    thread.join()
    assert waited.json()["status"] == "approved"
    assert returned - decided_at[0] < 1.0
    with server.client(agent) as http:
        assert (
            http.get(f"/v1/approvals/{approval['id']}", params={"wait": "soon"}).status_code == 400
        )


def _wait_for(check: Callable[[], bool], timeout: float) -> float:
    began = time.monotonic()
    while not check():
        assert time.monotonic() - began < timeout, "condition not met in time"
        time.sleep(0.05)
    return time.monotonic() - began


def test_timeouts_expire_by_on_timeout(server: Server) -> None:
    agent = server.db.key("events:write", "events:read", "approvals:read")
    alice = server.db.key("approvals:resolve", name="alice")
    with server.client(agent) as http:
        rejecting = open_request(http, timeoutSeconds=1)
        approving = open_request(http, timeoutSeconds=1, onTimeout="approve")
        lasting = open_request(http, timeoutSeconds=600)

        def expired() -> bool:
            states = [
                http.get(f"/v1/approvals/{a['id']}").json()["status"]
                for a in (rejecting, approving)
            ]
            return states == ["expired", "expired"]

        took = _wait_for(expired, 5)
        assert took < 2.5  # within a second of the 1 s deadline (plus polling)
        first = http.get(f"/v1/approvals/{rejecting['id']}").json()
        second = http.get(f"/v1/approvals/{approving['id']}").json()
        assert http.get(f"/v1/approvals/{lasting['id']}").json()["status"] == "pending"
    assert first["resolvedBy"] == "system:timeout"
    assert first["resolution"]["type"] == "approval.expired"
    assert first["resolution"]["detail"]["outcome"] == "rejected"
    assert second["resolution"]["detail"]["outcome"] == "approved"
    assert first["request"]["status"] == "expired"
    with server.client(alice) as http:
        late = http.post(f"/v1/approvals/{rejecting['id']}/decision", json={"decision": "approve"})
    assert late.status_code == 409 and "expired" in late.json()["message"]


def test_a_nearer_deadline_wakes_the_expiry_loop_sleeping_toward_a_later_one(
    server: Server,
) -> None:
    agent = server.db.key("events:write", "approvals:read")
    with server.client(agent) as http:
        later = open_request(http, timeoutSeconds=600)
        time.sleep(0.5)  # the loop now sleeps toward the 600 s deadline (or its recheck)
        sooner = open_request(http, timeoutSeconds=1)
        took = _wait_for(
            lambda: http.get(f"/v1/approvals/{sooner['id']}").json()["status"] == "expired", 8
        )
        assert http.get(f"/v1/approvals/{later['id']}").json()["status"] == "pending"
    assert took < 2.5  # not the loop's 10 s recheck


def test_a_deadline_that_passed_while_the_service_was_down_expires_on_start(
    database: Database, make_server: Callable[..., Server]
) -> None:
    first = make_server(database)
    agent = database.key("events:write", "approvals:read")
    with first.client(agent) as http:
        approval = open_request(http, timeoutSeconds=1)
    first.stop()
    time.sleep(1.5)
    assert database.scalar("SELECT status FROM approvals") == "pending"
    second = make_server(database)
    with second.client(agent) as http:
        _wait_for(
            lambda: http.get(f"/v1/approvals/{approval['id']}").json()["status"] == "expired", 3
        )
        resolved = http.get(f"/v1/approvals/{approval['id']}").json()
    assert resolved["resolvedBy"] == "system:timeout"
    assert database.scalar("SELECT count(*) FROM events WHERE type = 'approval.expired'") == 1
