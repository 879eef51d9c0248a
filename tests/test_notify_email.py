"""Email over real SMTP and HTTP: personal links that confirm on GET and decide once on POST."""

from __future__ import annotations

import re
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import httpx
import pytest

from conftest import Database, Server
from smtp_standin import Mailbox
from test_notify_slack import PUBLIC, approval, cli, open_request, reviewer, until

# The test SMTP server takes AUTH without TLS on loopback, and aiosmtpd warns about it.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


def start(make_server: Callable[..., Server], db: Database, mailbox: Mailbox) -> Server:
    return make_server(
        db,
        approvals_smtp_url=mailbox.url,
        approvals_email_from="Approvals <approvals@example.com>",
        approvals_public_url=PUBLIC,
        approvals_webhook_allowed_destinations="127.0.0.1/32",
        approvals_webhook_schedule="0.3,0.3,0.3",
    )


def contact(db: Database, name: str, email: str) -> None:
    reviewer(db, name)
    done = cli(db, "users", "update", name, "--email", email)
    assert done.returncode == 0, done.stderr


def route(http: httpx.Client, **fields: Any) -> None:
    body = {"channel": "email", "target": "reviewers", **fields}
    answer = http.post("/v1/notifications", json=body)
    assert answer.status_code == 201, answer.text


def to(messages: list[EmailMessage], address: str) -> list[EmailMessage]:
    return [m for m in messages if m["To"] == address]


def parts(mail: EmailMessage) -> tuple[str, str]:
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def links(mail: EmailMessage, server: Server) -> dict[str, str]:
    """The approve and reject links, pointed at the test server instead of the public URL."""
    text, _ = parts(mail)
    found = dict(re.findall(r"^(Approve|Reject):\s+(\S+)", text, re.MULTILINE))
    return {k.lower(): v.replace(PUBLIC, server.base) for k, v in found.items()}


def test_link_confirms_on_get_and_decides_once_on_post(
    database: Database, make_server: Callable[..., Server], mailbox: Mailbox
) -> None:
    contact(database, "alice", "alice@example.com")
    contact(database, "bob", "bob@example.com")
    contact(database, "agent", "agent@example.com")  # the requester: not allowed, not mailed
    server = start(make_server, database, mailbox)
    with server.client(server.db.key("admin", name="agent")) as http:
        route(http)
        opened = open_request(
            http,
            title="<script>alert(1)</script> & pay the invoice",
            detail={"tool": "pay", "arguments": {"amount": 5, "memo": "<b>urgent</b>"}},
            timeoutSeconds=3600,
        )
        messages = mailbox.wait_for(2)
        [mail] = to(messages, "alice@example.com")
        assert to(messages, "bob@example.com") and not to(messages, "agent@example.com")
        assert mailbox.logins  # signed in with the user and password of APPROVALS_SMTP_URL
        assert mail["Subject"] == "[approval] <script>alert(1)</script> & pay the invoice"
        assert mail["From"] == "Approvals <approvals@example.com>"
        text, html = parts(mail)
        assert "<script>" not in html and "&lt;script&gt;" in html
        assert "<b>urgent</b>" not in html and "&lt;b&gt;urgent&lt;/b&gt;" in html
        assert "deployer" in text and "pay" in text and f"{PUBLIC}/approvals/{opened['id']}" in text
        mine = links(mail, server)
        assert set(mine) == {"approve", "reject"}, text
        assert links(to(messages, "bob@example.com")[0], server)["approve"] != mine["approve"]

        # A GET (a mail scanner, a preview) never decides.
        for _ in range(2):
            page = httpx.get(mine["approve"])
            assert page.status_code == 200 and "deciding as <strong>alice</strong>" in page.text
            assert "&lt;script&gt;" in page.text and "<script>alert" not in page.text
        assert approval(http, opened["id"])["status"] == "pending"

        done = httpx.post(mine["approve"])
        assert done.status_code == 200 and "Approved by <strong>alice</strong>" in done.text
        decided = approval(http, opened["id"])
        assert decided["status"] == "approved" and decided["resolvedBy"] == "alice"

        # Used again, or the other link of the same mail, or another reviewer's: no decision.
        for url in (
            mine["approve"],
            mine["reject"],
            links(to(messages, "bob@example.com")[0], server)["reject"],
        ):
            again = httpx.post(url)
            assert "Approved by <strong>alice</strong>" in again.text
            assert "<form" not in httpx.get(url).text
        assert approval(http, opened["id"])["resolvedBy"] == "alice"
        resolutions = server.db.scalar(
            "SELECT count(*) FROM events WHERE type = 'approval.resolved' AND approval_id = :a",
            a=opened["id"],
        )
        assert resolutions == 1


def test_reject_with_reason_and_reuse_refused_in_a_quorum(
    database: Database, make_server: Callable[..., Server], mailbox: Mailbox
) -> None:
    contact(database, "alice", "alice@example.com")
    contact(database, "bob", "bob@example.com")
    server = start(make_server, database, mailbox)
    with server.client(server.db.key("admin")) as http:
        route(http)
        policy = {"tool": "wire", "action": "require", "minApprovals": 2}
        assert http.post("/v1/policies", json=policy).status_code == 201
        opened = open_request(http, detail={"tool": "wire"})
        messages = mailbox.wait_for(2)
        alice = links(to(messages, "alice@example.com")[0], server)
        bob = links(to(messages, "bob@example.com")[0], server)

        vote = httpx.post(alice["approve"])
        assert vote.status_code == 200 and "1 of 2" in vote.text
        assert approval(http, opened["id"])["status"] == "pending"
        for url in (alice["approve"], alice["reject"]):  # one decision per mail
            assert httpx.post(url).status_code == 410
            assert "already used" in httpx.get(url).text
        assert len(approval(http, opened["id"])["votes"]) == 1

        page = httpx.get(bob["reject"])
        assert 'name="comment"' in page.text
        done = httpx.post(bob["reject"], data={"comment": "Not this quarter"})
        assert done.status_code == 200 and "Rejected by <strong>bob</strong>" in done.text
        final = approval(http, opened["id"])
        assert final["status"] == "rejected" and final["comment"] == "Not this quarter"


def test_links_expire_with_the_approval_and_forgeries_fail(
    database: Database, make_server: Callable[..., Server], mailbox: Mailbox
) -> None:
    contact(database, "alice", "alice@example.com")
    contact(database, "carol", "carol@example.com")
    server = start(make_server, database, mailbox)
    with server.client(server.db.key("admin")) as http:
        route(http)
        opened = open_request(http, timeoutSeconds=1)
        messages = mailbox.wait_for(2)
        mine = links(to(messages, "alice@example.com")[0], server)
        until(lambda: approval(http, opened["id"])["status"] == "expired")
        page = httpx.get(mine["approve"])
        assert "Expired" in page.text and "<form" not in page.text
        httpx.post(mine["approve"])
        assert approval(http, opened["id"])["resolvedBy"] == "system:timeout"

        token = mine["reject"].rsplit("/", 1)[1]
        forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        for bad in (f"{server.base}/email/{forged}", f"{server.base}/email/nonsense"):
            assert httpx.get(bad).status_code == 400
            assert httpx.post(bad).status_code == 400

        # A disabled reviewer's links stop working.
        live = open_request(http, title="still open")
        later = mailbox.wait_for(4)
        carol = links(to(later, "carol@example.com")[-1], server)
        assert cli(database, "users", "disable", "carol").returncode == 0
        assert httpx.post(carol["approve"]).status_code == 403
        assert approval(http, live["id"])["status"] == "pending"


def test_an_email_reminder_follows_once(
    database: Database, make_server: Callable[..., Server], mailbox: Mailbox
) -> None:
    contact(database, "alice", "alice@example.com")
    server = start(make_server, database, mailbox)
    with server.client(server.db.key("admin")) as http:
        route(http, remindAfterSeconds=1)
        opened = open_request(http, title="Rotate the keys?")
        first, reminder = mailbox.wait_for(2)
        assert first["Subject"] == "[approval] Rotate the keys?"
        assert reminder["Subject"] == "[approval] Reminder: Rotate the keys?"
        assert links(reminder, server)["approve"] != links(first, server)["approve"]
        until(
            lambda: (
                server.db.scalar(
                    "SELECT status FROM webhook_deliveries WHERE event_type ="
                    " 'notification.email.remind'"
                )
                == "succeeded"
            )
        )
        reminders = server.db.scalar(
            "SELECT count(*) FROM webhook_deliveries WHERE event_type = 'notification.email.remind'"
        )
        assert reminders == 1 and len(mailbox.messages) == 2
        assert approval(http, opened["id"])["status"] == "pending"
