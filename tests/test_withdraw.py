"""Withdrawal: the requester ends its own pending approval as `withdrawn`, everywhere alike."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from approvals.client import Approvals, ApprovalsError, AsyncApprovals, Withdrawn
from conftest import Database, Server, until
from reviewers import WAIT, make_agent
from slack_standin import SlackStandIn
from test_notify_slack import has_buttons, posted_for, reviewer, route, sign_in, start, text_of


def open_request(http: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"title": "Delete 40 rows from sessions?", "runId": "run_w", **fields}
    answer = http.post("/v1/approvals", json=body)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def test_the_requester_withdraws_a_pending_approval(server: Server) -> None:
    agent = server.db.key("events:write", "events:read", "approvals:read", name="agent")
    bob = server.db.key("approvals:resolve", name="bob")
    with server.client(agent) as http:
        opened = open_request(http, detail={"tool": "delete_rows", "arguments": {"n": 40}})
        answer = http.post(f"/v1/approvals/{opened['id']}/withdraw")
        assert answer.status_code == 200, answer.text
        withdrawn = answer.json()
        again = http.post(f"/v1/approvals/{opened['id']}/withdraw")
        stored = http.get(f"/v1/approvals/{opened['id']}").json()
        events = http.get("/v1/events", params={"tail": "100"}).json()["events"]
        queue = http.get("/v1/approvals").json()["approvals"]
        listed = http.get("/v1/approvals", params={"status": "withdrawn"}).json()["approvals"]
    with server.client(bob) as http:
        late = http.post(f"/v1/approvals/{opened['id']}/decision", json={"decision": "approve"})

    assert withdrawn["status"] == "withdrawn" and withdrawn["resolvedBy"] == "agent"
    assert withdrawn["resolvedAt"] and withdrawn["decision"] is None
    resolution = withdrawn["resolution"]
    assert resolution["type"] == "approval.resolved" and resolution["status"] == "withdrawn"
    assert resolution["resolvedBy"] == "agent" and resolution["resolvedAt"]
    assert resolution["detail"]["outcome"] == "withdrawn"
    assert resolution["title"].startswith("Withdrawn by agent")
    assert withdrawn["request"]["status"] == "withdrawn"
    assert stored == withdrawn  # what was answered is what was stored
    assert [e["type"] for e in events] == ["steering_request", "approval.resolved"]
    assert events[0]["status"] == "withdrawn" and events[0]["resolvedBy"] == "agent"
    assert queue == [] and [a["id"] for a in listed] == [opened["id"]]
    for conflict in (again, late):
        assert conflict.status_code == 409, conflict.text
        assert conflict.json()["error"] == "conflict"
        assert "already withdrawn by agent" in conflict.json()["message"]
    assert server.db.scalar("SELECT count(*) FROM events") == 2


def test_refused_withdrawals_change_nothing(server: Server) -> None:
    agent = server.db.key("events:write", name="agent")
    other = server.db.key("events:write", name="other-agent")
    reader = server.db.key("approvals:read", "approvals:resolve", name="bob")
    with server.client(agent) as http:
        opened = open_request(http)
        decided = open_request(http)
        url = f"/v1/approvals/{opened['id']}/withdraw"
        assert http.post("/v1/approvals/apr_nope/withdraw").status_code == 404
        body = http.post(url, json={"reason": "changed my mind"})
        assert body.status_code == 400 and body.json()["field"] == "body"
    with server.client(other) as http:
        foreign = http.post(url)
    with server.client(reader) as http:
        unscoped = http.post(url)
        http.post(f"/v1/approvals/{decided['id']}/decision", json={"decision": "reject"})
    with server.client(agent) as http:
        too_late = http.post(f"/v1/approvals/{decided['id']}/withdraw")

    assert foreign.status_code == 403
    assert "only the key that requested" in foreign.json()["message"]
    assert "'agent'" in foreign.json()["message"] and "'other-agent'" in foreign.json()["message"]
    assert unscoped.status_code == 403 and "events:write" in unscoped.json()["message"]
    assert too_late.status_code == 409 and too_late.json()["status"] == "rejected"
    assert "already rejected by bob" in too_late.json()["message"]
    assert server.db.scalar(f"SELECT status FROM approvals WHERE id = '{opened['id']}'") == (
        "pending"
    )
    assert server.db.scalar("SELECT count(*) FROM events") == 3  # two requests, one reject


def test_the_openapi_document_describes_withdrawal(server: Server) -> None:
    document = httpx.get(server.base + "/schema/openapi.json").json()
    operation = document["paths"]["/v1/approvals/{approval_id}/withdraw"]["post"]
    assert operation["operationId"] == "withdrawApproval"
    assert {"200", "403", "404", "409"} <= set(operation["responses"])
    approval = document["components"]["schemas"]["ApprovalOut"]["properties"]["status"]
    assert "withdrawn" in approval["enum"]


def test_the_inbox_feed_sees_a_withdrawal_as_resolved(server: Server) -> None:
    agent = server.db.key("events:write", name="agent")
    alice = server.db.key("approvals:read", name="alice")
    with server.client(agent) as http:
        opened = open_request(http)
    with Approvals(server.base, alice) as client:
        feed = client.inbox()
        changes = iter(feed)
        assert next(changes).kind == "snapshot" and set(feed.pending) == {opened["id"]}
        with Approvals(server.base, agent) as requester:
            requester.withdraw(opened["id"])
        change = next(changes)
    assert change.kind == "approval.resolved"
    assert change.approvals[0]["status"] == "withdrawn" and feed.pending == {}


def test_sdk_withdraw_and_a_decorated_call_that_sees_it(server: Server) -> None:
    agent = make_agent(server)
    ran: list[int] = []
    with agent.client() as client:

        @client.require_approval(title="Delete {n} rows?", timeout=WAIT)
        def delete_rows(n: int) -> int:
            ran.append(n)
            return n

        caught: list[BaseException] = []

        def call() -> None:
            try:
                delete_rows(40)
            except BaseException as exc:
                caught.append(exc)

        thread = threading.Thread(target=call, daemon=True)
        thread.start()
        (pending,) = agent.pending()
        decision = client.withdraw(pending["id"])
        thread.join(WAIT)
        with pytest.raises(ApprovalsError) as twice:
            client.withdraw(pending["id"])
    assert decision.status == "withdrawn" and not decision.approved
    assert decision.resolved_by == "agent"
    assert twice.value.status == 409
    assert ran == [] and len(caught) == 1 and isinstance(caught[0], Withdrawn)
    assert "withdrawn by agent" in str(caught[0])


def test_a_cancelled_async_wait_withdraws_its_approval(server: Server) -> None:
    agent = make_agent(server)

    async def scenario() -> tuple[dict[str, Any], float]:
        async with AsyncApprovals(agent.url, agent.key) as client:
            waiting = asyncio.ensure_future(
                client.request_approval("Wire 900 EUR?", tool="wire", timeout=WAIT)
            )
            (pending,) = await asyncio.to_thread(agent.pending)
            began = time.monotonic()
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            took = time.monotonic() - began
            decision = await client.get_approval(pending["id"])
            return decision.raw, took

    approval, took = asyncio.run(scenario())
    assert approval["status"] == "withdrawn" and approval["resolvedBy"] == "agent"
    assert took < 5  # withdrawing is bounded


def test_an_async_wait_that_times_out_withdraws_and_a_decorated_call_raises(
    server: Server,
) -> None:
    agent = make_agent(server)

    async def scenario() -> tuple[list[dict[str, Any]], BaseException | None]:
        async with AsyncApprovals(agent.url, agent.key) as client:

            @client.require_approval(title="Send {count} emails?")
            async def send(count: int) -> int:
                return count

            with pytest.raises(TimeoutError):
                await asyncio.wait_for(send(300), timeout=1.0)
            # The other way round: withdrawn from elsewhere while a decorated call waits.
            waiting = asyncio.ensure_future(send(5))
            pending = await asyncio.to_thread(agent.pending)
            await asyncio.to_thread(Approvals(agent.url, agent.key).withdraw, pending[0]["id"])
            try:
                await asyncio.wait_for(waiting, WAIT)
                error = None
            except Withdrawn as exc:
                error = exc
            everything = await client.get("/v1/approvals", status="all")
            return everything["approvals"], error

    approvals, error = asyncio.run(scenario())
    assert [a["status"] for a in approvals] == ["withdrawn", "withdrawn"]
    assert isinstance(error, Withdrawn)


def test_slack_and_the_dashboard_show_a_withdrawal(
    database: Database, make_server: Callable[..., Server], slack: SlackStandIn
) -> None:
    reviewer(database, "carol", "U0CAROL")
    server = start(make_server, database, slack)
    with server.client(server.db.key("admin", name="agent")) as http:
        route(http)
        opened = open_request(http, title="Rotate the <b>prod</b> keys?")
        [post] = posted_for(slack, opened["id"])
        assert has_buttons(post)
        assert http.post(f"/v1/approvals/{opened['id']}/withdraw").status_code == 200
    # One update, or two when the withdrawal lands while the message is being recorded:
    # the sender then updates it at once and the queued update does it again, the same.
    updates = until(
        lambda: slack.of("chat.update", where=lambda c: c.body["ts"] == post.answer["ts"])
    )
    assert 1 <= len(updates) <= 2
    for update in updates:
        assert not has_buttons(update) and "*Withdrawn* by agent" in text_of(update)
        assert update.body["text"].startswith("Withdrawn by agent")
    browser, _ = sign_in(server, "carol")
    with contextlib.closing(browser):
        page = browser.get(f"/approvals/{opened['id']}").text
        history = browser.get("/history", params={"status": "withdrawn"}).text
        inbox = browser.get("/").text
    assert "Withdrawn by <strong>agent</strong>" in page
    assert 'name="decision" value="approve"' not in page  # nothing left to decide
    assert f'id="history-{opened["id"]}"' in history and ">withdrawn<" in history
    assert "Rotate the &lt;b&gt;prod&lt;/b&gt; keys?" in history
    assert opened["id"] not in inbox
