"""``approvals users``: contacts, listing, password reset and disabling, over the real CLI."""

from __future__ import annotations

import contextlib

from conftest import Database, Server
from test_notify_slack import PASSWORD, cli, sign_in


def test_contacts_list_update_and_password(sqlite_database: Database) -> None:
    db = sqlite_database
    made = cli(
        db,
        "users", "create", "alice", "--email", "alice@example.com", "--slack-user", "U0ALICE",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    listed = cli(db, "users", "list").stdout
    assert "alice\talice@example.com\tU0ALICE\tactive" in listed
    assert cli(db, "users", "update", "alice", "--slack-user", "U0OTHER").returncode == 0
    assert "alice\talice@example.com\tU0OTHER\tactive" in cli(db, "users", "list").stdout
    assert cli(db, "users", "update", "alice", "--email", "").returncode == 0
    assert "alice\t-\tU0OTHER" in cli(db, "users", "list").stdout
    guid = "6F1C2D3E-0000-4000-8000-00000000000A"
    linked = cli(
        db, "users", "update", "alice", "--discord-user", "123456789012345678", "--teams-user", guid
    )
    assert linked.returncode == 0, linked.stderr
    assert "\tdiscord:123456789012345678\tteams:" + guid.lower() in cli(db, "users", "list").stdout
    assert cli(db, "users", "update", "alice", "--discord-user", "").returncode == 0
    assert "discord:" not in cli(db, "users", "list").stdout
    for args, message in (
        (("update", "alice", "--email", "nope"), "not an email address"),
        (("update", "alice", "--slack-user", "#general"), "not a Slack user id"),
        (("update", "nobody", "--email", "x@example.com"), "no user named"),
        (("update", "alice", "--discord-user", "@alice"), "not a Discord user id"),
        (("update", "alice", "--teams-user", "alice@example.com"), "not a Teams user's Entra"),
        (
            ("update", "alice"),
            "give --email, --slack-user, --discord-user, --teams-user, --admin/--no-admin, "
            "--away-until and/or --delegate",
        ),
        (("disable", "nobody"), "no user named"),
    ):
        failed = cli(db, "users", *args)
        assert failed.returncode == 2 and message in failed.stderr, failed.stderr
    short = cli(db, "users", "password", "alice", "--password-stdin", stdin="short\n")
    assert short.returncode == 2 and "at least 8" in short.stderr
    stored = db.scalar("SELECT password_hash FROM users WHERE username = 'alice'")
    changed = cli(db, "users", "password", "alice", "--password-stdin", stdin="a new passphrase\n")
    assert changed.returncode == 0, changed.stderr
    assert db.scalar("SELECT password_hash FROM users WHERE username = 'alice'") != stored


def test_a_disabled_reviewer_cannot_sign_in_or_decide(server: Server) -> None:
    made = cli(server.db, "users", "create", "bob", "--password-stdin", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    with server.client(server.db.key("events:write", "approvals:read")) as api:
        opened = api.post("/v1/approvals", json={"title": "Ship it?"}).json()
        browser, csrf = sign_in(server, "bob")
        with contextlib.closing(browser):
            assert cli(server.db, "users", "disable", "bob").returncode == 0
            assert "bob\t-\t-\tdisabled" in cli(server.db, "users", "list").stdout
            # The open session ends, and its form posts decide nothing.
            assert browser.get("/").status_code == 303
            answer = browser.post(
                f"/approvals/{opened['id']}/decide",
                data={"csrf_token": csrf, "decision": "approve"},
            )
            assert answer.status_code == 401
        assert api.get(f"/v1/approvals/{opened['id']}").json()["status"] == "pending"
    with server.client(follow_redirects=False) as http:
        page = http.get("/login").text
        token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        refused = http.post(
            "/login", data={"csrf_token": token, "username": "bob", "password": PASSWORD}
        )
        assert refused.status_code == 401
