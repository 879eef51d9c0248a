"""The dashboard over real HTTP: sign-in, sessions, CSRF, escaping and security headers."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from conftest import Database, Server

PASSWORD = "correct horse battery"


def add_user(db: Database, name: str, password: str = PASSWORD) -> None:
    subprocess.run(
        [sys.executable, "-m", "approvals", "users", "create", name, "--password-stdin"],
        input=password + "\n",
        text=True,
        check=True,
        capture_output=True,
        env={**os.environ, "APPROVALS_DATABASE_URL": db.url},
    )


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def sign_in(server: Server, name: str, password: str = PASSWORD) -> tuple[httpx.Client, str]:
    http = server.client(follow_redirects=False)
    token = csrf_of(http.get("/login").text)
    answer = http.post("/login", data={"csrf_token": token, "username": name, "password": password})
    assert answer.status_code == 303, answer.text
    page = http.get("/")
    assert page.status_code == 200
    return http, csrf_of(page.text)


def test_pages_need_a_session(server: Server) -> None:
    with server.client(follow_redirects=False) as http:
        for path in ("/", "/history", "/events", "/webhooks", "/approvals/apr_x"):
            answer = http.get(path)
            assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
        assert http.get("/dashboard/stream").status_code == 401


def test_sign_in_wrong_password_and_rate_limit(server: Server) -> None:
    add_user(server.db, "alice")
    stored = server.db.scalar("SELECT password_hash FROM users WHERE username = 'alice'")
    assert stored.startswith("$argon2") and PASSWORD not in stored
    with server.client(follow_redirects=False) as http:
        token = csrf_of(http.get("/login").text)
        wrong = http.post(
            "/login", data={"csrf_token": token, "username": "alice", "password": "nope"}
        )
        assert wrong.status_code == 401 and "Wrong username or password" in wrong.text
        for _ in range(4):
            http.post("/login", data={"csrf_token": token, "username": "alice", "password": "nope"})
        blocked = http.post(
            "/login", data={"csrf_token": token, "username": "alice", "password": PASSWORD}
        )
        assert blocked.status_code == 429 and "Too many failed sign-ins" in blocked.text
    add_user(server.db, "bob")
    http, _ = sign_in(server, "bob")
    cookie = next(c for c in http.cookies.jar if c.name == "approvals_session")
    assert cookie.has_nonstandard_attr("HttpOnly")
    http.close()


def test_login_form_without_csrf_is_refused(server: Server) -> None:
    add_user(server.db, "alice")
    with server.client(follow_redirects=False) as http:
        answer = http.post("/login", data={"username": "alice", "password": PASSWORD})
    assert answer.status_code == 403


def test_state_changing_posts_without_csrf_are_refused_and_change_nothing(server: Server) -> None:
    add_user(server.db, "alice")
    agent = server.db.key("events:write")
    with server.client(agent) as api:
        approval = api.post("/v1/approvals", json={"title": "Refund?"}).json()
    http, token = sign_in(server, "alice")
    with contextlib.closing(http):
        url = f"/approvals/{approval['id']}/decide"
        missing = http.post(url, data={"decision": "approve"})
        wrong = http.post(url, data={"decision": "approve", "csrf_token": "forged"})
        assert missing.status_code == 403 and wrong.status_code == 403
        assert server.db.scalar("SELECT status FROM approvals") == "pending"
        assert http.post("/logout", data={}).status_code == 403
        ok = http.post(
            url, data={"decision": "reject", "comment": "no"}, headers={"X-CSRF-Token": token}
        )
        assert ok.status_code == 303
    assert server.db.scalar("SELECT status FROM approvals") == "rejected"
    assert server.db.scalar("SELECT resolved_by FROM approvals") == "alice"


@pytest.mark.parametrize("payload", ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>"])
def test_agent_text_is_escaped_everywhere(server: Server, payload: str) -> None:
    add_user(server.db, "alice")
    agent = server.db.key("events:write")
    with server.client(agent) as api:
        api.post(
            "/v1/events",
            json={"type": "token", "runId": "r1", "title": payload, "detail": {"delta": payload}},
        )
        approval = api.post(
            "/v1/approvals",
            json={
                "title": payload,
                "runId": "r1",
                "agentId": payload,
                "detail": {"tool": payload, "arguments": {"note": payload}},
            },
        ).json()
    http, _ = sign_in(server, "alice")
    with contextlib.closing(http):
        pages = [
            http.get("/").text,
            http.get(f"/approvals/{approval['id']}").text,
            http.get("/events").text,
        ]
    for html in pages:
        assert payload not in html
        assert "&lt;" in html


def test_security_headers(server: Server) -> None:
    with server.client() as http:
        answer = http.get("/login")
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert answer.headers["x-frame-options"] == "DENY"


def test_users_create_refuses_short_passwords_and_duplicates(server: Server) -> None:
    add_user(server.db, "alice")
    for name, password, message in (
        ("carol", "short", "at least 8"),
        ("alice", PASSWORD, "exists"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "approvals", "users", "create", name, "--password-stdin"],
            input=password + "\n",
            text=True,
            capture_output=True,
            env={**os.environ, "APPROVALS_DATABASE_URL": server.db.url},
        )
        assert result.returncode == 2 and message in result.stderr


def test_history_and_webhooks_pages(server: Server) -> None:
    add_user(server.db, "alice")
    admin = server.db.key("admin")
    with server.client(admin) as api:
        first = api.post("/v1/approvals", json={"title": "Post ads?", "agentId": "growth"}).json()
        second = api.post("/v1/approvals", json={"title": "Refund?", "agentId": "support"}).json()
        api.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "eventTypes": ["*"]})
    http, token = sign_in(server, "alice")
    with contextlib.closing(http):
        for approval, decision in ((first, "approve"), (second, "reject")):
            http.post(
                f"/approvals/{approval['id']}/decide",
                data={"decision": decision, "csrf_token": token},
            )
        everything = http.get("/history").text
        rejected = http.get("/history", params={"status": "rejected"}).text
        growth = http.get("/history", params={"agent": "growth", "reviewer": "alice"}).text
        hooks = http.get("/webhooks").text
    assert "Post ads?" in everything and "Refund?" in everything
    assert "Refund?" in rejected and "Post ads?" not in rejected
    assert "Post ads?" in growth and "Refund?" not in growth
    assert "http://127.0.0.1:9/hook" in hooks and "Retry" in hooks


def test_the_request_page_stream_starts_where_the_page_was_rendered(
    database: Database, make_server: Callable[..., Server]
) -> None:
    """Connecting does not re-render the decision form (a reason being typed survives);
    only later changes arrive."""
    from test_notify_slack import PASSWORD, sign_in

    server = make_server(database, approvals_keepalive_seconds="1")
    made = subprocess.run(
        [sys.executable, "-m", "approvals", "users", "create", "rita", "--password-stdin"],
        input=PASSWORD + "\n",
        text=True,
        capture_output=True,
        env={**os.environ, "APPROVALS_DATABASE_URL": server.db.url},
    )
    assert made.returncode == 0, made.stderr
    form = 'id="decision-'

    def read_until(lines: Iterator[str], text: str, seconds: float = 20) -> list[str]:
        seen: list[str] = []
        deadline = time.monotonic() + seconds
        for line in lines:  # keepalives every second keep this loop turning
            seen.append(line)
            if text in line:
                return seen
            assert time.monotonic() < deadline, f"no {text!r} in {seen}"
        raise AssertionError(f"the stream ended before {text!r}")

    with server.client(server.db.key()) as api:
        opened = api.post("/v1/approvals", json={"title": "Refund $129?"}).json()
        browser, _ = sign_in(server, "rita")
        with contextlib.closing(browser):
            html = browser.get(f"/approvals/{opened['id']}").text
            found = re.search(r'hx-sse:connect="([^"]+)"', html)
            assert found and "since=" in found.group(1)
            url = found.group(1).replace("&amp;", "&")
            with browser.stream("GET", url, timeout=30) as stream:
                lines = stream.iter_lines()
                first = read_until(lines, "presence")  # who else is viewing
                first += read_until(lines, ": keepalive")  # and nothing else meanwhile
                assert not any(form in line for line in first), first
                with server.client(server.db.key("approvals:resolve")) as reviewer:
                    decided = reviewer.post(
                        f"/v1/approvals/{opened['id']}/decision",
                        json={"decision": "reject", "comment": "no"},
                    )
                assert decided.status_code == 200, decided.text
                later = read_until(lines, "Rejected by")
                assert any(form in line for line in later)
