"""Delegation: assigning a request to a reviewer, and reviewers away with a delegate who gets
what would have gone to them; the resolution names who assigned it and for whom."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from test_dashboard import sign_in
from test_notify_email import contact, route, start, to

from approvals.client import Approvals
from conftest import Database, Server, until
from smtp_standin import Mailbox
from test_notify_slack import cli, open_request

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


def later(days: int = 2) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def events_of(server: Server, kind: str) -> int:
    return int(server.db.scalar("SELECT count(*) FROM events WHERE type = :t", t=kind))


def test_a_delegated_request_reaches_the_delegate_and_names_both(
    database: Database, make_server: Callable[..., Server], mailbox: Mailbox
) -> None:
    for name in ("alice", "bob", "carol"):
        contact(database, name, f"{name}@example.com")
    away = cli(database, "users", "update", "alice", "--away-until", later(), "--delegate", "bob")
    assert away.returncode == 0, away.stderr
    listed = cli(database, "users", "list").stdout
    assert re.search(r"alice\t.*away until .* \(delegate bob\)", listed), listed
    server = start(make_server, database, mailbox)
    with server.client(server.db.key("admin")) as http:
        route(http)  # every reviewer who may decide, by email
    with server.client(server.db.key("events:write", name="agent")) as http:
        opened = open_request(http)
    # The announcement meant for alice went to bob; bob and carol got their own too.
    mails = mailbox.wait_for(2)
    until(lambda: len(mailbox.messages) >= 2, what="the announcements")
    assert not to(mailbox.messages, "alice@example.com")
    assert len(to(mailbox.messages, "bob@example.com")) == 1  # one, not two: deduplicated
    assert len(to(mailbox.messages, "carol@example.com")) == 1
    sent = len(mails)

    carol = server.db.key("approvals:resolve", "approvals:read", name="carol")
    with server.client(carol) as http:
        before = events_of(server, "approval.assigned")
        assigned = http.post(f"/v1/approvals/{opened['id']}/assign", json={"to": "alice"})
        assert assigned.status_code == 200, assigned.text
        body = assigned.json()
        assert body["assignedTo"] == "bob" and body["assignedBy"] == "carol"
        assert body["delegatedFrom"] == "alice" and body["claimedBy"] == "bob"
        assert events_of(server, "approval.assigned") == before + 1
        # The assignee is told, with who handed it over and for whom.
        mailbox.wait_for(sent + 1)
        [told] = [m for m in to(mailbox.messages, "bob@example.com") if "Assigned" in m["Subject"]]
        assert told["Subject"].startswith("[approval] Assigned to you: ")
        text = told.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert "carol handed this request to you for alice, who is away." in text
        # Listed as assigned in the queue and the inbox feed's reads.
        pending = http.get("/v1/approvals", params={"status": "pending"}).json()["approvals"]
        assert pending[0]["assignedTo"] == "bob"

    bob = server.db.key("approvals:resolve", name="bob")
    with server.client(bob) as http:
        done = http.post(f"/v1/approvals/{opened['id']}/decision", json={"decision": "approve"})
        assert done.status_code == 200, done.text
    resolution = done.json()["resolution"]["detail"]
    assert resolution["assignedBy"] == "carol" and resolution["delegatedFrom"] == "alice"
    assert resolution["assignedTo"] == "bob"
    assert done.json()["resolvedBy"] == "bob"
    # Back: alice gets her own mail again.
    back = cli(database, "users", "update", "alice", "--away-until", "")
    assert back.returncode == 0, back.stderr
    with server.client(server.db.key("events:write", name="agent2")) as http:
        open_request(http, title="Second")
    until(
        lambda: any("Second" in m["Subject"] for m in to(mailbox.messages, "alice@example.com")),
        what="alice's own mail",
    )


def test_bad_assignments_are_refused_and_change_nothing(server: Server) -> None:
    for name in ("bob", "dave"):
        done = cli(server.db, "users", "create", name, "--password-stdin", stdin="pw-long-enough\n")
        assert done.returncode == 0, done.stderr
    assert cli(server.db, "users", "disable", "dave").returncode == 0
    agent = server.db.key("events:write", name="agent")
    with server.client(server.db.key("admin")) as http:
        made = http.post(
            "/v1/policies", json={"action": "require", "tool": "wire", "reviewers": ["bob"]}
        )
        assert made.status_code == 201, made.text
    with server.client(agent) as http:
        opened = open_request(http, detail={"tool": "wire"})
        other = open_request(http)
    reviewer = server.db.key("approvals:resolve", "approvals:read", name="ops")
    url = f"/v1/approvals/{opened['id']}/assign"
    with server.client(reviewer) as http:
        before = events_of(server, "approval.assigned")
        for body, status, field in (
            ({"to": "nobody"}, 422, "body.to"),
            ({"to": "dave"}, 422, "body.to"),  # disabled
            ({"to": "ops"}, 422, "body.to"),  # no such reviewer (a key's name is not one)
            ({}, 422, "body.to"),
            ({"to": "bob", "extra": 1}, 422, None),
        ):
            answer = http.post(url, json=body)
            assert answer.status_code == status, (body, answer.text)
            if field is not None:
                assert answer.json()["field"] == field, answer.json()
        # The policy names bob alone: anyone else is refused, saying why.
        assert cli(server.db, "users", "create", "erin", "--password-stdin",
                   stdin="pw-long-enough\n").returncode == 0  # fmt: skip
        refused = http.post(url, json={"to": "erin"})
        assert refused.status_code == 422 and "reviewers" in refused.json()["message"]
        assert http.post(f"/v1/approvals/{other['id']}/decision", json={"decision": "reject"})
        assert (
            http.post(f"/v1/approvals/{other['id']}/assign", json={"to": "bob"}).status_code == 409
        )
        assert http.post("/v1/approvals/apr_nope/assign", json={"to": "bob"}).status_code == 404
        assert events_of(server, "approval.assigned") == before
        row = http.get(f"/v1/approvals/{opened['id']}").json()
        assert row["assignedTo"] is None and row["claimedBy"] is None
    with server.client(agent) as http:  # deciding scope needed
        assert http.post(url, json={"to": "bob"}).status_code == 403


def test_absences_are_checked_in_one_place_for_the_cli_and_the_settings_page(
    database: Database, make_server: Callable[..., Server]
) -> None:
    for name in ("alice", "bob"):
        done = cli(
            database, "users", "create", name, "--password-stdin", stdin="correct horse battery\n"
        )
        assert done.returncode == 0, done.stderr
    for args, said in (
        (["--away-until", "2020-01-01T00:00:00Z", "--delegate", "bob"], "has passed"),
        (["--away-until", "next week", "--delegate", "bob"], "is not a time"),
        (["--away-until", later(), "--delegate", "alice"], "themselves"),
        (["--away-until", later(), "--delegate", "zed"], "no active reviewer"),
        (["--away-until", later()], "needs a delegate"),
    ):
        done = cli(database, "users", "update", "alice", *args)
        assert done.returncode != 0 and said in done.stderr, (args, done.stderr)
    assert "away" not in cli(database, "users", "list").stdout

    server = make_server(database)
    browser, csrf = sign_in(server, "alice")
    with contextlib.closing(browser):
        page = browser.get("/settings").text
        assert 'name="away_until"' in page and '<option value="bob"' in page
        bad = browser.post(
            "/settings/away",
            data={"csrf_token": csrf, "away_until": "2020-01-01T00:00", "delegate": "bob"},
        )
        assert bad.status_code == 400 and "has passed" in bad.text
        until_ = later()[:16]
        set_ = browser.post(
            "/settings/away", data={"csrf_token": csrf, "away_until": until_, "delegate": "bob"}
        )
        assert set_.status_code == 303, set_.text
        assert "You are away until" in browser.get("/settings").text
        assert re.search(
            r"alice\t.*away until .* \(delegate bob\)", cli(database, "users", "list").stdout
        )
        back = browser.post("/settings/away", data={"csrf_token": csrf, "back": "1"})
        assert back.status_code == 303
        assert "You are away until" not in browser.get("/settings").text
        assert "away" not in cli(database, "users", "list").stdout
        # Without the CSRF token nothing changes.
        forged = browser.post("/settings/away", data={"away_until": until_, "delegate": "bob"})
        assert forged.status_code in (400, 403)
        assert "away" not in cli(database, "users", "list").stdout


def test_assigning_from_the_dashboard_and_the_terminal(server: Server) -> None:
    for name in ("alice", "bob"):
        done = cli(
            server.db, "users", "create", name, "--password-stdin", stdin="correct horse battery\n"
        )
        assert done.returncode == 0, done.stderr
    with server.client(server.db.key("events:write", name="agent")) as http:
        first = open_request(http)
        second = open_request(http)
    browser, csrf = sign_in(server, "alice")
    with contextlib.closing(browser):
        page = browser.get(f"/approvals/{first['id']}").text
        assert '<option value="bob">' in page and 'action="/approvals/' in page
        done = browser.post(
            f"/approvals/{first['id']}/assign",
            data={"csrf_token": csrf, "to": "bob"},
            headers={"HX-Request": "true"},
        )
        assert done.status_code == 200 and "Assigned to <strong>bob</strong> by alice" in done.text
        inbox = browser.get("/").text
        assert "assigned to bob by alice" in inbox
        refused = browser.post(
            f"/approvals/{second['id']}/assign",
            data={"csrf_token": csrf, "to": "nobody"},
            headers={"HX-Request": "true"},
        )
        assert refused.status_code == 200 and "no active reviewer named" in refused.text
    key = server.db.key("approvals:resolve", "approvals:read", name="ops")
    env = ["--url", server.base, "--key", key]
    said = cli(server.db, "assign", second["id"], "--to", "bob", *env)
    assert said.returncode == 0, said.stderr
    assert said.stdout.strip() == f"{second['id']} assigned to bob"
    shown = cli(server.db, "show", second["id"], *env).stdout
    assert re.search(r"assigned to:\s+bob\n", shown) and re.search(r"assigned by:\s+ops\n", shown)
    wrong = cli(server.db, "assign", second["id"], "--to", "nobody", *env)
    assert wrong.returncode != 0 and "no active reviewer named 'nobody'" in wrong.stderr
    # The SDK's assign.
    with Approvals(server.base, key) as client:
        again = client.assign(first["id"], "alice")
    assert again["assignedTo"] == "alice" and again["assignedBy"] == "ops"
