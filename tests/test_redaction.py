"""Redaction and display templates: secrets in arguments reach no person or channel, while
the agent gets them back; a policy's headline is shown everywhere, sandboxed."""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
from test_dashboard import add_user, sign_in
from test_notify_email import contact, parts
from test_notify_email import route as email_route

from approvals.client import Approvals
from conftest import Database, Server, until
from receiver import Receiver
from slack_standin import SIGNING_SECRET, TOKEN, SlackStandIn
from smtp_standin import Mailbox
from test_notify_slack import posted_for
from test_notify_slack import route as slack_route

SECRETS = ("hunter2-SECRET", "Bearer SECRET-TOKEN-1", "SECRET-DB-TOKEN")
ARGUMENTS = {
    "user": "ann",
    "password": "hunter2-SECRET",
    "headers": {"authorization": "Bearer SECRET-TOKEN-1", "accept": "application/json"},
    "db": {"token": "SECRET-DB-TOKEN", "host": "db1"},
}
PATHS = ["password", "headers.authorization", "*.token"]
PUBLIC = "https://approvals.example.com"


def leaks(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


def read_stream(http: httpx.Client, path: str, until_text: str, seconds: float = 15) -> str:
    """The bytes of an SSE stream until ``until_text`` appears (or ``seconds`` pass)."""
    got = ""
    deadline = time.monotonic() + seconds
    with http.stream("GET", path, headers={"Accept": "text/event-stream"}) as answer:
        for chunk in answer.iter_text():
            got += chunk
            if until_text in got or time.monotonic() > deadline:
                break
    return got


def test_redacted_values_reach_no_person_or_channel_and_the_agent_gets_them(
    database: Database,
    make_server: Callable[..., Server],
    slack: SlackStandIn,
    mailbox: Mailbox,
    receiver: Receiver,
) -> None:
    contact(database, "alice", "alice@example.com")
    server = make_server(
        database,
        approvals_slack_bot_token=TOKEN,
        approvals_slack_signing_secret=SIGNING_SECRET,
        approvals_slack_api_url=slack.url,
        approvals_smtp_url=mailbox.url,
        approvals_email_from="Approvals <approvals@example.com>",
        approvals_public_url=PUBLIC,
    )
    admin = server.db.key("admin", name="ops")
    agent_key = server.db.key("events:write", "approvals:read", name="agent")
    bob = server.db.key("approvals:resolve", "approvals:read", "events:read", name="bob")
    with server.client(admin) as http:
        policy = {"action": "require", "tool": "call_api", "redact": PATHS}
        made = http.post("/v1/policies", json=policy)
        assert made.status_code == 201 and made.json()["redact"] == PATHS
        slack_route(http)
        email_route(http)
        hook = http.post("/v1/webhooks", json={"url": receiver.url, "eventTypes": ["*"]})
        assert hook.status_code == 201, hook.text
    with server.client(agent_key) as http:
        opened = http.post(
            "/v1/approvals",
            json={
                "title": "Call the billing API?",
                "runId": "run_r",
                "detail": {"tool": "call_api", "arguments": ARGUMENTS},
                "callbackUrl": receiver.url.replace("/hook", "/resume"),
            },
        )
        assert opened.status_code == 201, opened.text
        approval_id = opened.json()["id"]
        # The agent's own reads give its arguments back whole.
        assert opened.json()["arguments"] == ARGUMENTS
        assert http.get(f"/v1/approvals/{approval_id}").json()["arguments"] == ARGUMENTS
    canonical = json.dumps(ARGUMENTS, sort_keys=True, separators=(",", ":")).encode()
    digest = "sha256:" + hashlib.sha256(canonical).hexdigest()

    with server.client(bob) as http:
        seen = http.get(f"/v1/approvals/{approval_id}").json()
        listed = http.get("/v1/approvals").text
        events_page = http.get("/v1/events", params={"tail": "50"}).text
        one_event = http.get(f"/v1/events/{opened.json()['requestEventId']}").text
        feed = read_stream(http, "/v1/approvals/stream", "event: snapshot")
    assert seen["arguments"]["password"] == "[redacted]"
    assert seen["arguments"]["headers"] == {
        "authorization": "[redacted]",
        "accept": "application/json",
    }
    assert seen["arguments"]["db"] == {"token": "[redacted]", "host": "db1"}
    assert seen["argumentsDigest"] == digest  # what is signed is the real call
    assert "[redacted]" in feed and approval_id in feed
    for where, text in (
        ("reviewer read", json.dumps(seen)),
        ("queue", listed),
        ("events page", events_page),
        ("one event", one_event),
        ("inbox feed", feed),
    ):
        assert leaks(text) == [], where
    [message] = posted_for(slack, approval_id)
    assert leaks(json.dumps(message.body)) == [] and "[redacted]" in json.dumps(message.body)
    [mail] = mailbox.wait_for(1)
    text, html = parts(mail)
    assert leaks(text + html) == [] and "[redacted]" in text

    add_user(server.db, "carol")
    carol, token = sign_in(server, "carol")
    with contextlib.closing(carol):
        pages = [carol.get(p).text for p in ("/", f"/approvals/{approval_id}", "/events")]
        for page in pages:
            assert leaks(page) == []
        assert "[redacted]" in pages[1]
        # Approving with the form as shown (the marks sent back) keeps the real values,
        # and an edit of a shown value goes through.
        decided = carol.post(
            f"/approvals/{approval_id}/decide",
            data={
                "csrf_token": token,
                "decision": "approve",
                "arguments": json.dumps({**seen["arguments"], "user": "bob"}),
                "confirmed": "1",
                "arguments_digest": digest,
            },
            headers={"HX-Request": "true"},
        )
        assert decided.status_code == 200, decided.text
        assert leaks(decided.text) == []
        assert leaks(carol.get(f"/approvals/{approval_id}").text) == []

    with Approvals(server.base, agent_key) as client:
        decision = client.get_approval(approval_id)
    assert decision.approved and decision.arguments == {**ARGUMENTS, "user": "bob"}
    # The agent's callback carries the real approved arguments; the webhook endpoint
    # (a channel) the redacted ones; the stream and the export too.
    resume = until(lambda: [r for r in receiver.received if r.path == "/resume"], what="resume")
    assert json.loads(resume[0].body)["data"]["detail"]["arguments"]["password"] == "hunter2-SECRET"
    hooked = until(lambda: len(receiver.received) >= 3 and receiver.received, what="webhooks")
    for delivery in hooked:
        if delivery.path == "/hook":
            assert leaks(delivery.body) == [], delivery.body
    with server.client(bob) as http:
        stream = read_stream(http, "/v1/events?history=true", "approval.resolved")
        export = http.get("/v1/events", params={"format": "ndjson"}).text
        resolved = http.get(f"/v1/approvals/{approval_id}").json()
    assert "approval.resolved" in stream and leaks(stream) == []
    assert "steering_request" in export and leaks(export) == []
    assert resolved["editedArguments"]["password"] == "[redacted]"
    # Nothing stored is redacted: the log keeps what the agent sent.
    stored = server.db.scalar("SELECT detail FROM events WHERE type = 'steering_request'")
    assert "hunter2-SECRET" in (stored if isinstance(stored, str) else json.dumps(stored))


def test_display_templates_are_checked_sandboxed_and_shown_as_the_headline(
    database: Database, make_server: Callable[..., Server], slack: SlackStandIn
) -> None:
    server = make_server(
        database,
        approvals_slack_bot_token=TOKEN,
        approvals_slack_signing_secret=SIGNING_SECRET,
        approvals_slack_api_url=slack.url,
        approvals_public_url=PUBLIC,
    )
    admin = server.db.key("admin", name="ops")
    agent_key = server.db.key("events:write", "approvals:read", name="agent")
    with server.client(admin) as http:
        bad = [
            ({"display": "Refund {{ arguments.amount "}, "not a valid template"),
            ({"display": "{{ secrets.key }}"}, "uses 'secrets'"),
            ({"redact": ["headers..authorization"]}, "is not a path"),
            ({"redact": ["a b"]}, "is not a path"),
        ]
        for extra, says in bad:
            refused = http.post("/v1/policies", json={"action": "require", **extra})
            assert refused.status_code == 422, refused.text
            assert says in refused.json()["message"]
            assert refused.json()["field"].startswith(("body.display", "body.redact"))
        assert http.get("/v1/policies").json()["policies"] == []
        for tool, template in (
            ("refund", "Refund {{ arguments.amount }} € to {{ arguments.customer }}"),
            ("escape", "{{ arguments.__class__.__mro__ }}"),
            ("login", "Log in as {{ arguments.user }} with {{ arguments.password }}"),
        ):
            policy = {"action": "require", "tool": tool, "display": template}
            if tool == "login":
                policy["redact"] = ["password"]
            assert http.post("/v1/policies", json=policy).status_code == 201
        slack_route(http)
    with server.client(agent_key) as http:

        def ask(tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
            body = {"title": f"Run {tool}?", "detail": {"tool": tool, "arguments": arguments}}
            answer = http.post("/v1/approvals", json=body)
            assert answer.status_code == 201, answer.text
            return dict(answer.json())

        refund = ask("refund", {"amount": 40, "customer": "<script>alert(1)</script> <!here>"})
        escaped = ask("escape", {})
        login = ask("login", {"user": "ann", "password": "hunter2-SECRET"})
    assert refund["headline"] == "Refund 40 € to <script>alert(1)</script> <!here>"
    assert escaped["headline"] == "Run escape?"  # the sandbox refused: the title instead
    assert login["headline"] == "Log in as ann with [redacted]"
    [message] = posted_for(slack, refund["id"])
    blocks = json.dumps(message.body)
    assert "Refund 40" in blocks and "<!here>" not in blocks and "&lt;!here&gt;" in blocks
    add_user(server.db, "carol")
    carol, _ = sign_in(server, "carol")
    with contextlib.closing(carol):
        page = carol.get(f"/approvals/{refund['id']}").text
        inbox = carol.get("/").text
    assert "Refund 40 € to &lt;script&gt;" in page and "<script>alert(1)" not in page
    assert "Asked: Run refund?" in page
    assert "Refund 40 €" in inbox
