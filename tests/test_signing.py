"""What you see is what you sign: argument digests, stale decisions and execute-once receipts."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from test_dashboard import add_user, sign_in
from test_notify_email import contact
from test_notify_email import links as email_links
from test_notify_email import route as email_route
from test_notify_email import start as start_with_email

from approvals.client import Approvals, ApprovalsError
from conftest import Database, Server, until
from slack_standin import SlackStandIn, click
from smtp_standin import Mailbox
from test_notify_slack import interact, posted_for
from test_notify_slack import reviewer as slack_reviewer
from test_notify_slack import route as slack_route
from test_notify_slack import start as start_with_slack

ARGUMENTS = {"campaign": "spring", "budget": 500, "regions": ["de", "fr"], "note": "café"}


def digest_by_hand(arguments: Any) -> str:
    """RFC 8785 for plain data like ``ARGUMENTS``: sorted keys, no spaces, UTF-8 as is."""
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def open_request(http: httpx.Client, arguments: Any = ARGUMENTS, **fields: Any) -> dict[str, Any]:
    body = {
        "title": "Set the campaign budget?",
        "runId": "run_s",
        "detail": {"tool": "set_budget", "arguments": arguments},
        **fields,
    }
    answer = http.post("/v1/approvals", json=body)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def quorum_request(
    server: Server, admin: str | None = None, agent: str | None = None
) -> dict[str, Any]:
    """A set_budget request under a policy that needs two approvals."""
    with server.client(admin or server.db.key("admin")) as http:
        policy = {"action": "require", "tool": "set_budget", "minApprovals": 2}
        assert http.post("/v1/policies", json=policy).status_code == 201
    with server.client(agent or server.db.key("events:write", name="agent")) as http:
        return open_request(http)


def vote_budget(server: Server, reviewer: str, approval_id: str, budget: int) -> None:
    """One approving vote that edits the budget (the quorum stays pending)."""
    with server.client(reviewer) as http:
        vote = http.post(
            f"/v1/approvals/{approval_id}/decision",
            json={"decision": "approve", "arguments": {"budget": budget}},
        )
    assert vote.status_code == 200 and vote.json()["status"] == "pending", vote.text


def test_every_approval_reader_carries_the_digest_of_its_arguments(server: Server) -> None:
    agent = server.db.key("events:write", "events:read", "approvals:read", name="agent")
    bob = server.db.key("approvals:resolve", "approvals:read", name="bob")
    with server.client(agent) as http:
        opened = open_request(http)
        listed = http.get("/v1/approvals").json()["approvals"]
    with server.client(bob) as http:
        decided = http.post(
            f"/v1/approvals/{opened['id']}/decision",
            json={"decision": "approve", "arguments": {"budget": 450}},
        ).json()
    shown = digest_by_hand(ARGUMENTS)
    approved = digest_by_hand({**ARGUMENTS, "budget": 450})
    assert opened["argumentsDigest"] == shown and listed[0]["argumentsDigest"] == shown
    # Once approved with an edit, the approval and its resolution sign the edited call.
    assert decided["argumentsDigest"] == approved
    assert decided["resolution"]["detail"]["argumentsDigest"] == approved
    assert decided["resolution"]["detail"]["edited"] is True


def test_a_decision_on_arguments_that_changed_is_stale_and_decides_nothing(
    server: Server,
) -> None:
    admin = server.db.key("admin", name="ops")
    agent = server.db.key("events:write", name="agent")
    alice = server.db.key("approvals:resolve", name="alice")
    bob = server.db.key("approvals:resolve", "approvals:read", name="bob")
    opened = quorum_request(server, admin, agent)
    shown = opened["argumentsDigest"]
    url = f"/v1/approvals/{opened['id']}/decision"
    with server.client(alice) as http:
        # Alice's vote lowers the budget: the call the next reviewer signs has changed.
        vote = http.post(
            url,
            json={"decision": "approve", "arguments": {"budget": 300}, "argumentsDigest": shown},
        )
        assert vote.status_code == 200, vote.text
    edited = digest_by_hand({**ARGUMENTS, "budget": 300})
    assert vote.json()["status"] == "pending" and vote.json()["argumentsDigest"] == edited
    events_before = server.db.scalar("SELECT count(*) FROM events")
    with server.client(bob) as http:
        stale = http.post(url, json={"decision": "approve", "argumentsDigest": shown})
        still = http.get(f"/v1/approvals/{opened['id']}").json()
        batch = http.post(
            "/v1/approvals/decisions",
            json=[{"id": opened["id"], "decision": "reject", "argumentsDigest": shown}],
        ).json()["results"]
    assert stale.status_code == 409, stale.text
    assert stale.json()["error"] == "stale" and stale.json()["argumentsDigest"] == edited
    assert batch[0]["status"] == 409 and batch[0]["error"] == "stale"
    assert still["status"] == "pending" and still["votes"] == [
        {"by": "alice", "decision": "approve", "at": still["votes"][0]["at"]}
    ]
    assert server.db.scalar("SELECT count(*) FROM events") == events_before
    with server.client(bob) as http:
        fresh = http.post(url, json={"decision": "approve", "argumentsDigest": edited})
    assert fresh.status_code == 200, fresh.text
    approved = fresh.json()
    assert approved["status"] == "approved" and approved["editedArguments"] == {"budget": 300}
    assert approved["resolution"]["detail"]["argumentsDigest"] == edited


def test_bad_digests_and_unsignable_arguments_are_refused(server: Server) -> None:
    agent = server.db.key("events:write", name="agent")
    bob = server.db.key("approvals:resolve", name="bob")
    with server.client(agent) as http:
        huge = http.post(
            "/v1/approvals",
            json={"title": "t", "detail": {"tool": "x", "arguments": {"id": 2**60}}},
        )
        opened = open_request(http)
    assert huge.status_code == 422 and huge.json()["field"] == "body.detail.arguments"
    assert "canonical JSON" in huge.json()["message"]
    with server.client(bob) as http:
        url = f"/v1/approvals/{opened['id']}/decision"
        malformed = http.post(url, json={"decision": "approve", "argumentsDigest": "md5:abc"})
        unsignable = http.post(url, json={"decision": "approve", "arguments": {"n": 2**60}})
    assert malformed.status_code == 422 and malformed.json()["field"] == "body.argumentsDigest"
    assert unsignable.status_code == 422 and unsignable.json()["field"] == "body.arguments"
    assert server.db.scalar("SELECT count(*) FROM approvals WHERE status = 'pending'") == 1


def test_an_execution_receipt_is_given_once_for_the_approved_arguments(server: Server) -> None:
    agent = server.db.key("events:write", "events:read", "approvals:read", name="agent")
    other = server.db.key("events:write", name="other-agent")
    bob = server.db.key("approvals:resolve", name="bob")
    with server.client(agent) as http:
        opened = open_request(http)
        rejected = open_request(http)
        url = f"/v1/approvals/{opened['id']}/execution"
        early = http.post(url, json={"argumentsDigest": opened["argumentsDigest"]})
    with server.client(bob) as http:
        http.post(
            f"/v1/approvals/{opened['id']}/decision",
            json={"decision": "approve", "arguments": {"budget": 450}},
        )
        http.post(f"/v1/approvals/{rejected['id']}/decision", json={"decision": "reject"})
    approved_digest = digest_by_hand({**ARGUMENTS, "budget": 450})
    with server.client(other) as http:
        foreign = http.post(url, json={"argumentsDigest": approved_digest})
    with server.client(agent) as http:
        original = http.post(url, json={"argumentsDigest": opened["argumentsDigest"]})
        not_approved = http.post(
            f"/v1/approvals/{rejected['id']}/execution",
            json={"argumentsDigest": rejected["argumentsDigest"]},
        )
        first = http.post(url, json={"argumentsDigest": approved_digest})
        second = http.post(url, json={"argumentsDigest": approved_digest})
        stored = http.get(f"/v1/approvals/{opened['id']}").json()
        events = http.get("/v1/events", params={"tail": "100"}).json()["events"]
    assert early.status_code == 409 and early.json()["error"] == "not_approved"
    assert foreign.status_code == 403
    assert original.status_code == 409 and original.json()["error"] == "stale"
    assert not_approved.status_code == 409 and not_approved.json()["error"] == "not_approved"
    assert first.status_code == 201, first.text
    assert second.status_code == 409 and second.json()["error"] == "already_executed"
    execution = stored["execution"]
    assert execution["by"] == "agent" and execution["argumentsDigest"] == approved_digest
    assert execution["at"] == first.json()["execution"]["at"]
    executed = [e for e in events if e["type"] == "approval.executed"]
    assert len(executed) == 1 and executed[0]["detail"]["argumentsDigest"] == approved_digest


AGENT_SCRIPT = """
import sys
from approvals.client import Approvals

url, key, ledger = sys.argv[1:4]
client = Approvals(url, key)

@client.require_approval(key="charge:{customer}:{amount}", timeout=60)
def charge(customer: str, amount: int) -> None:
    with open(ledger, "a") as out:
        out.write(f"{customer} {amount}\\n")

charge("c_42", 120)
print("charged")
"""


def test_the_sdk_runs_an_approved_call_once_across_a_restart(
    server: Server, tmp_path: Path
) -> None:
    agent_key = server.db.key("events:write", "approvals:read", name="agent")
    bob = server.db.key("approvals:resolve", "approvals:read", name="bob")
    script = tmp_path / "agent.py"
    script.write_text(textwrap.dedent(AGENT_SCRIPT))
    ledger = tmp_path / "ledger.txt"
    args = [sys.executable, str(script), server.base, agent_key, str(ledger)]
    env = {**os.environ}

    # The first process asks and is killed while it waits; the human approves after.
    first = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with server.client(bob) as http:
        (pending,) = until(lambda: http.get("/v1/approvals").json()["approvals"], what="request")
        first.send_signal(signal.SIGKILL)
        first.wait()
        decided = http.post(f"/v1/approvals/{pending['id']}/decision", json={"decision": "approve"})
        assert decided.status_code == 200, decided.text
    # Restarted, it finds its approval by key, records the execution and runs once.
    again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert ledger.read_text() == "c_42 120\n"
    # A third start (a retry of the whole job) finds it executed and does not run it.
    third = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert third.returncode != 0 and "already_executed" in third.stderr
    assert ledger.read_text() == "c_42 120\n"


def test_the_decorator_refuses_to_run_when_the_receipt_is_refused(server: Server) -> None:
    agent_key = server.db.key("events:write", "approvals:read", name="agent")
    admin = server.db.key("admin", name="ops")
    with server.client(admin) as http:
        policy = {"action": "auto_approve", "tool": "ping"}
        assert http.post("/v1/policies", json=policy).status_code == 201
    runs: list[str] = []
    with Approvals(server.base, agent_key) as client:

        @client.require_approval(key="ping-once")
        def ping(host: str) -> str:
            runs.append(host)
            return "pong"

        assert ping("db1") == "pong"
        try:
            ping("db1")
        except ApprovalsError as exc:
            assert exc.status == 409 and exc.error == "already_executed"
        else:
            raise AssertionError("the second run of one approval was not refused")
        # The same key with other arguments names the approval of another call: stale.
        try:
            ping("db2")
        except ApprovalsError as exc:
            assert exc.error in ("already_executed", "stale")
        else:
            raise AssertionError("a call other than the approved one ran")
    assert runs == ["db1"]


def test_slack_approves_only_the_arguments_its_message_showed(
    database: Database, make_server: Callable[..., Server], slack: SlackStandIn
) -> None:
    slack_reviewer(database, "alice", "U0ALICE")
    server = start_with_slack(make_server, database, slack)
    bob = server.db.key("approvals:resolve", name="bob")
    with server.client(server.db.key("admin")) as http:
        slack_route(http)
    opened = quorum_request(server)
    [message] = posted_for(slack, opened["id"])
    actions = next(b for b in message.body["blocks"] if b["type"] == "actions")
    shown = actions["elements"][0]["value"]
    assert shown == f"{opened['id']}|{opened['argumentsDigest']}"
    # Bob's vote edits the budget after the message went out.
    vote_budget(server, bob, opened["id"], 1)
    pressed = click("U0ALICE", "approve", opened["id"])
    pressed["actions"][0]["value"] = shown
    assert interact(server, pressed).status_code == 200
    [eph] = slack.wait_for("chat.postEphemeral", where=lambda c: c.body["user"] == "U0ALICE")
    assert "Nothing was decided" in eph.body["text"] and "changed" in eph.body["text"]
    assert server.db.scalar("SELECT count(*) FROM approval_votes") == 1
    assert server.db.scalar("SELECT status FROM approvals") == "pending"


def test_the_dashboard_decides_on_what_its_page_showed_and_shows_the_execution(
    server: Server,
) -> None:
    add_user(server.db, "alice")
    add_user(server.db, "carol")
    admin = server.db.key("admin", name="ops")
    agent = server.db.key("events:write", name="agent")
    opened = quorum_request(server, admin, agent)
    page_url = f"/approvals/{opened['id']}"
    alice, alice_csrf = sign_in(server, "alice")
    carol, carol_csrf = sign_in(server, "carol")
    with contextlib.closing(alice), contextlib.closing(carol):
        shown = re.search(r'name="arguments_digest" value="([^"]+)"', carol.get(page_url).text)
        assert shown and shown.group(1) == opened["argumentsDigest"]
        # Alice approves with a lower budget; Carol's page still shows the old one.
        voted = alice.post(
            f"{page_url}/decide",
            data={
                "csrf_token": alice_csrf,
                "decision": "approve",
                "edit": "1",
                "arg:budget": "300",
                "arg:campaign": "spring",
                "arg:note": "café",
                "arg:regions": '["de", "fr"]',
                "confirmed": "1",
                "arguments_digest": opened["argumentsDigest"],
            },
            headers={"HX-Request": "true"},
        )
        assert voted.status_code == 200, voted.text
        stale = carol.post(
            f"{page_url}/decide",
            data={
                "csrf_token": carol_csrf,
                "decision": "approve",
                "arguments_digest": shown.group(1),
            },
            headers={"HX-Request": "true"},
        )
        assert stale.status_code == 409
        assert "The arguments changed while you were looking" in stale.text
        assert server.db.scalar("SELECT status FROM approvals") == "pending"
        assert server.db.scalar("SELECT count(*) FROM approval_votes") == 1
        fresh = re.search(r'name="arguments_digest" value="([^"]+)"', stale.text)
        assert fresh and fresh.group(1) == digest_by_hand({**ARGUMENTS, "budget": 300})
        done = carol.post(
            f"{page_url}/decide",
            data={"csrf_token": carol_csrf, "decision": "approve", "arguments_digest": fresh[1]},
            headers={"HX-Request": "true"},
        )
        assert done.status_code == 200 and "Approved by" in done.text
        assert "Approved, not executed" in carol.get(page_url).text
        assert "not executed" in carol.get("/history").text
        with server.client(agent) as http:
            receipt = http.post(
                f"/v1/approvals/{opened['id']}/execution", json={"argumentsDigest": fresh[1]}
            )
            assert receipt.status_code == 201, receipt.text
        after = carol.get(page_url).text
        assert "Executed at" in after and "not executed" not in after
        assert "ran with arguments other than" not in after


def test_an_email_link_approves_only_the_arguments_its_mail_showed(
    database: Database, make_server: Callable[..., Server], mailbox: Mailbox
) -> None:
    contact(database, "alice", "alice@example.com")
    server = start_with_email(make_server, database, mailbox)
    bob = server.db.key("approvals:resolve", name="bob")
    with server.client(server.db.key("admin")) as http:
        email_route(http)
    opened = quorum_request(server)
    [mail] = mailbox.wait_for(1)
    approve_link = email_links(mail, server)["approve"]
    # Bob's vote edits the budget after the mail went out.
    vote_budget(server, bob, opened["id"], 1)
    used = httpx.post(approve_link)
    assert used.status_code == 409 and "The arguments changed while you were looking" in used.text
    assert server.db.scalar("SELECT count(*) FROM approval_votes") == 1
    assert server.db.scalar("SELECT status FROM approvals") == "pending"
