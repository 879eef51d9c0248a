"""Keys that end, per-key limits, the audit trail, sessions and security headers (#14).

Every test runs a real server (and, for keys and reviewers, the real CLI) on
SQLite and, when configured, PostgreSQL.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from approvals.auth.rates import RateError, parse_rate
from conftest import Database, Server, until
from receiver import Receiver
from test_notify_slack import PASSWORD, cli, csrf_of, sign_in


def new_key(db: Database, name: str, *options: str) -> str:
    made = cli(db, "keys", "create", name, *options)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip().splitlines()[-1]


def sleep_past(moment: str) -> None:
    """Sleep until just after an ISO time the CLI printed."""
    end = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    time.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()) + 0.3)


def status_of(server: Server, key: str) -> httpx.Response:
    with server.client(key) as http:
        return http.get("/v1/events", params={"tail": "1"})


def test_rates_are_read_or_refused_clearly() -> None:
    assert parse_rate("50/s burst 200").per_second == 50
    assert parse_rate("50/s burst 200").burst == 200
    assert parse_rate("120/m").per_second == 2 and parse_rate("120/m").burst == 2
    assert parse_rate("off").unlimited
    for bad in ("fast", "0/s", "5/fortnight", "5/s burst"):
        with pytest.raises(RateError, match="rate"):
            parse_rate(bad)


def test_an_expiring_key_works_then_answers_401_saying_it_expired(server: Server) -> None:
    db = server.db
    # Generous lifetimes and waits measured from the listed expiry: a loaded CI machine
    # can take seconds to run the CLI twice.
    key = new_key(db, "short-lived", "--scope", "events:read", "--expires", "8s")
    assert status_of(server, key).status_code == 200
    listed = cli(db, "keys", "list").stdout
    assert "short-lived" in listed and "expires 20" in listed
    sleep_past(listed.split("expires ")[1].split()[0])
    answer = status_of(server, key)
    assert answer.status_code == 401
    assert answer.json()["error"] == "unauthorized"
    assert "expired at" in answer.json()["message"]
    assert "short-lived" in cli(db, "keys", "list").stdout.split("expired 20")[0]
    bad = cli(db, "keys", "create", "x", "--scope", "events:read", "--expires", "soon")
    assert bad.returncode == 2 and "not a duration" in bad.stderr


def test_a_key_revoked_between_two_writes_is_refused_and_stores_nothing(server: Server) -> None:
    # Writes admit a key they verified lately without a lookup and confirm it in the
    # append's own transaction: a revocation in between must still refuse the next write.
    db = server.db
    key = new_key(db, "writer", "--scope", "events:write")
    with server.client(key) as http:
        for route, body in (("/v1/events", {"type": "tick"}), ("/v1/approvals", {"title": "x"})):
            assert http.post(route, json=body).status_code == 201
        assert cli(db, "keys", "revoke", "writer").returncode == 0
        before = db.scalar("SELECT count(*) FROM events")
        for route, body in (("/v1/events", {"type": "tick"}), ("/v1/approvals", {"title": "y"})):
            refused = http.post(route, json=body)
            assert refused.status_code == 401, refused.text
            assert refused.json()["message"] == "the API key is unknown or revoked"
        assert db.scalar("SELECT count(*) FROM events") == before


def test_a_key_that_expires_after_a_write_is_refused_on_the_next(server: Server) -> None:
    db = server.db
    key = new_key(db, "brief", "--scope", "events:write", "--expires", "8s")
    with server.client(key) as http:
        assert http.post("/v1/events", json={"type": "tick"}).status_code == 201
        listed = cli(db, "keys", "list").stdout
        sleep_past(listed.split("expires ")[1].split()[0])
        refused = http.post("/v1/events", json={"type": "tick"})
    assert refused.status_code == 401 and "expired at" in refused.json()["message"]


def test_a_rotated_key_has_the_old_scopes_and_the_old_one_lapses(server: Server) -> None:
    db = server.db
    old = new_key(db, "agent", "--scope", "events:read", "--scope", "events:write")
    rotated = cli(db, "keys", "rotate", "agent", "--grace", "8s")
    assert rotated.returncode == 0, rotated.stderr
    new = rotated.stdout.strip().splitlines()[-1]
    assert new.startswith("apk_") and new != old
    with server.client(new) as http:  # same scopes: may write and read
        assert http.post("/v1/events", json={"type": "tick"}).status_code == 201
        assert http.post("/v1/approvals", json={"title": "x"}).status_code == 201
    assert status_of(server, old).status_code == 200  # within the grace period
    listed = cli(db, "keys", "list").stdout
    assert "agent (rotated" in listed
    sleep_past(listed.split("agent (rotated")[1].split("expires ")[1].split()[0])
    assert "expired at" in status_of(server, old).json()["message"]
    assert status_of(server, new).status_code == 200
    missing = cli(db, "keys", "rotate", "nobody")
    assert missing.returncode == 2 and "no active key named 'nobody'" in missing.stderr


def test_a_key_over_its_rate_gets_429_with_retry_after(
    database: Database, make_server: Callable[..., Server]
) -> None:
    server = make_server(database, approvals_rate_limit="1000/s burst 1000")
    slow = new_key(database, "slow", "--scope", "events:read", "--rate", "1/s burst 3")
    free = new_key(database, "free", "--scope", "events:read", "--rate", "off")
    default = new_key(database, "default", "--scope", "events:read")
    with server.client(slow) as http:
        answers = [http.get("/v1/events", params={"tail": "1"}) for _ in range(6)]
    codes = [a.status_code for a in answers]
    assert codes[:3] == [200, 200, 200] and 429 in codes[3:], codes
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.json()["error"] == "rate_limited"
    assert "'slow'" in refused.json()["message"] and "1/s burst 3" in refused.json()["message"]
    assert int(refused.headers["Retry-After"]) >= 1
    time.sleep(1.1)  # the bucket refills at one a second
    with server.client(slow) as http:
        assert http.get("/v1/events", params={"tail": "1"}).status_code == 200
    for key in (free, default):  # 'off', and the service default of 1000/s
        with server.client(key) as http:
            assert all(
                http.get("/v1/events", params={"tail": "1"}).status_code == 200 for _ in range(20)
            )
    bad = cli(database, "keys", "create", "x", "--scope", "events:read", "--rate", "lots")
    assert bad.returncode == 2 and "--rate" in bad.stderr


@pytest.mark.postgres
def test_one_rate_holds_across_two_instances(
    postgres_database: Database, make_server: Callable[..., Server]
) -> None:
    first = make_server(postgres_database)
    second = make_server(postgres_database)
    key = new_key(postgres_database, "shared", "--scope", "events:read", "--rate", "2/s burst 4")
    began = time.monotonic()
    admitted = 0
    for n in range(16):  # alternate between the instances
        with (first if n % 2 else second).client(key) as http:
            admitted += http.get("/v1/events", params={"tail": "1"}).status_code == 200
    elapsed = time.monotonic() - began
    # The bucket: 4 at once plus 2 a second; each instance may hold one token (the handful
    # at 2/s) beyond that — the stated tolerance.
    assert 4 <= admitted <= 4 + 2 * elapsed + 2, (admitted, elapsed)


def test_streams_per_key_are_capped(database: Database, make_server: Callable[..., Server]) -> None:
    server = make_server(database, approvals_max_streams_per_key="2")
    key = database.key("events:read", "approvals:read")
    other = database.key("events:read")
    headers = {"Authorization": f"Bearer {key}"}
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(httpx.Client(base_url=server.base, timeout=30))
        held = []  # a dropped message iterator would close its connection
        for path in ("/v1/events", "/v1/approvals/stream"):
            source = stack.enter_context(connect_sse(client, "GET", path, headers=headers))
            held.append(source.iter_sse())
            assert next(held[-1]).event == "connected"
        third = client.get(
            "/v1/events", headers={**headers, "Accept": "text/event-stream"}, timeout=10
        )
        assert third.status_code == 429
        assert third.json()["error"] == "rate_limited"
        assert "APPROVALS_MAX_STREAMS_PER_KEY" in third.json()["message"]
        assert "Retry-After" in third.headers
        with connect_sse(
            client, "GET", "/v1/events", headers={"Authorization": f"Bearer {other}"}
        ) as source:  # another key has its own count
            assert next(source.iter_sse()).event == "connected"

    def opened() -> bool:
        with (
            httpx.Client(base_url=server.base, timeout=30) as client,
            connect_sse(client, "GET", "/v1/events", headers=headers) as source,
        ):
            return next(source.iter_sse()).event == "connected"

    deadline = time.monotonic() + 10  # closed streams are counted out once the server notices
    while True:
        try:
            assert opened()
            break
        except httpx.HTTPStatusError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class AuditFollower:
    """Follows ``/v1/events?source=audit`` in a thread."""

    def __init__(self, base: str, key: str) -> None:
        self.events: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._client = httpx.Client(base_url=base, timeout=httpx.Timeout(30, read=None))
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(key,), daemon=True)
        self._thread.start()
        assert self._ready.wait(30)

    def _run(self, key: str) -> None:
        with (
            contextlib.suppress(httpx.HTTPError),
            connect_sse(
                self._client,
                "GET",
                "/v1/events",
                params={"source": "audit"},
                headers={"Authorization": f"Bearer {key}"},
            ) as source,
        ):
            for message in source.iter_sse():
                if message.event == "connected":
                    self._ready.set()
                elif message.data:
                    self.raw.append(message.data)
                    self.events.append(json.loads(message.data))

    def types(self) -> list[str]:
        return [event["type"] for event in self.events]

    def close(self) -> None:
        self._client.close()


def test_every_admin_change_and_sign_in_is_an_audit_event_without_secrets(
    server: Server,
) -> None:
    db = server.db
    admin = new_key(db, "ops", "--scope", "admin")
    follower = AuditFollower(server.base, admin)
    try:
        secrets_seen: list[str] = [admin, PASSWORD]
        secrets_seen.append(new_key(db, "ci", "--scope", "events:write", "--expires", "90d"))
        rotated = cli(db, "keys", "rotate", "ci")
        secrets_seen.append(rotated.stdout.strip().splitlines()[-1])
        assert cli(db, "keys", "revoke", "ci").returncode == 0
        made = cli(db, "users", "create", "alice", "--admin", "--password-stdin", stdin=PASSWORD)
        assert made.returncode == 0, made.stderr
        assert cli(db, "users", "update", "alice", "--email", "a@example.com").returncode == 0
        with server.client(admin) as api:
            policy = api.post("/v1/policies", json={"tool": "deploy", "action": "require"})
            assert policy.status_code == 201, policy.text
            assert api.delete(f"/v1/policies/{policy.json()['id']}").status_code == 204
            hook = api.post(
                "/v1/webhooks", json={"url": "http://127.0.0.1:9/in", "eventTypes": ["never.sent"]}
            )
            assert hook.status_code == 201, hook.text
            secrets_seen.append(hook.json()["secret"])
            turned = api.post(f"/v1/webhooks/{hook.json()['id']}/rotate-secret")
            secrets_seen.append(turned.json()["secret"])
            assert api.delete(f"/v1/webhooks/{hook.json()['id']}").status_code == 204
            token = "platform-token-not-for-logs"
            secrets_seen.append(token)
            source = api.post(
                "/v1/sources",
                json={
                    "name": "prism-1",
                    "dialect": "prism",
                    "url": "http://127.0.0.1:9/stream",
                    "token": token,
                },
            )
            assert source.status_code == 201, source.text
            secrets_seen.append(source.json()["resumeSecret"])
            changed = api.patch(f"/v1/sources/{source.json()['id']}", json={"token": "t2-secret"})
            assert changed.status_code == 200, changed.text
            secrets_seen.append("t2-secret")
            assert api.delete(f"/v1/sources/{source.json()['id']}").status_code == 204
            route = api.post("/v1/notifications", json={"channel": "email", "target": "a@b.co"})
            assert route.status_code == 201, route.text
            assert api.delete(f"/v1/notifications/{route.json()['id']}").status_code == 204
        with server.client(follow_redirects=False) as http:
            token_ = csrf_of(http.get("/login").text)
            wrong = http.post(
                "/login", data={"csrf_token": token_, "username": "alice", "password": "nope-x"}
            )
            assert wrong.status_code == 401
            typo = http.post(
                "/login",
                data={"csrf_token": token_, "username": "hunter2-pass", "password": "x"},
            )
            assert typo.status_code == 401
        browser, _ = sign_in(server, "alice")
        browser.close()
        assert cli(db, "users", "signout", "alice").returncode == 0
        assert cli(db, "users", "disable", "alice").returncode == 0
        expected = [
            "audit.key.created",  # ops itself, before the follower
            "audit.key.created",
            "audit.key.rotated",
            "audit.key.revoked",
            "audit.user.created",
            "audit.user.updated",
            "audit.policy.created",
            "audit.policy.deleted",
            "audit.webhook.created",
            "audit.webhook.secret_rotated",
            "audit.webhook.deleted",
            "audit.source.added",
            "audit.source.changed",
            "audit.source.removed",
            "audit.notification.created",
            "audit.notification.deleted",
            "audit.user.sign_in_failed",
            "audit.user.sign_in_failed",
            "audit.user.signed_in",
            "audit.user.signed_out",
            "audit.user.disabled",
        ]
        until(lambda: len(follower.events) >= len(expected) - 1, what="every audit event")
    finally:
        follower.close()
    assert follower.types() == expected[1:]
    with server.client(admin) as api:
        page = api.get("/v1/events", params={"source": "audit", "tail": "100"}).json()["events"]
    assert [e["type"] for e in page] == expected  # also filtered and paged like any event
    actors = {e["type"]: e["detail"]["actor"] for e in follower.events}
    assert actors["audit.key.rotated"].startswith("cli:")
    assert actors["audit.policy.created"] == "key:ops"
    assert actors["audit.user.signed_in"] == "user:alice"
    failed = [e for e in follower.events if e["type"] == "audit.user.sign_in_failed"]
    assert failed[0]["detail"]["user"] == "alice" and failed[0]["detail"]["actor"] == "anonymous"
    assert "user" not in failed[1]["detail"]  # an unknown name may be a mistyped password
    changed_source = next(e for e in follower.events if e["type"] == "audit.source.changed")
    assert changed_source["detail"]["changed"] == ["token"]
    everything = "\n".join(follower.raw) + json.dumps(page)
    for secret in secrets_seen:
        assert secret not in everything
    assert "hunter2-pass" not in everything


def test_agents_cannot_forge_audit_events(server: Server) -> None:
    with server.client(server.db.key("events:write")) as api:
        forged = api.post("/v1/events", json={"type": "audit.key.revoked", "title": "fake"})
        assert forged.status_code == 422
        assert forged.json()["field"] == "body.type"
        posing = api.post("/v1/events", json={"type": "note", "source": "audit"})
        assert posing.status_code == 422 and posing.json()["field"] == "body.source"
        assert api.post("/v1/events", json={"type": "auditing"}).status_code == 201


def test_the_audit_page_is_for_admins(server: Server) -> None:
    db = server.db
    for name, admin in (("root", True), ("plain", False)):
        extra = ["--admin"] if admin else []
        made = cli(db, "users", "create", name, *extra, "--password-stdin", stdin=PASSWORD)
        assert made.returncode == 0, made.stderr
    new_key(db, "page-key", "--scope", "events:read")
    plain, _ = sign_in(server, "plain")
    with contextlib.closing(plain):
        refused = plain.get("/audit")
        assert refused.status_code == 403 and "--admin" in refused.text
    root, _ = sign_in(server, "root")
    with contextlib.closing(root):
        shown = root.get("/audit")
        assert shown.status_code == 200
        assert "audit.key.created" in shown.text and "page-key" in shown.text
        assert "audit.user.signed_in" in shown.text
        only = root.get("/audit", params={"type": "key.created"}).text
        assert "audit.key.created" in only and "audit.user.signed_in" not in only
    assert cli(db, "users", "update", "plain", "--admin").returncode == 0
    again, _ = sign_in(server, "plain")
    with contextlib.closing(again):
        assert again.get("/audit").status_code == 200


def test_signout_everywhere_and_password_reset_end_open_sessions(server: Server) -> None:
    db = server.db
    assert cli(db, "users", "create", "carol", "--password-stdin", stdin=PASSWORD).returncode == 0
    first, _ = sign_in(server, "carol")
    second, _ = sign_in(server, "carol")
    with contextlib.closing(first), contextlib.closing(second):
        assert first.get("/").status_code == 200 and second.get("/").status_code == 200
        assert cli(db, "users", "signout", "carol").returncode == 0
        assert first.get("/").status_code == 303  # to the sign-in page
        assert second.get("/").status_code == 303
        assert first.get("/dashboard/stream").status_code == 401
    third, _ = sign_in(server, "carol")  # signing in again works
    with contextlib.closing(third):
        assert third.get("/").status_code == 200
        changed = cli(db, "users", "password", "carol", "--password-stdin", stdin="new phrase 1")
        assert changed.returncode == 0
        assert third.get("/").status_code == 303


def test_a_new_session_cookie_at_sign_in(server: Server) -> None:
    made = cli(server.db, "users", "create", "dan", "--password-stdin", stdin=PASSWORD)
    assert made.returncode == 0, made.stderr
    with server.client(follow_redirects=False) as http:
        before = http.get("/login").cookies.get("approvals_session") or http.cookies.get(
            "approvals_session"
        )
        token = csrf_of(http.get("/login").text)
        done = http.post(
            "/login", data={"csrf_token": token, "username": "dan", "password": PASSWORD}
        )
        assert done.status_code == 303
        after = http.cookies.get("approvals_session")
        assert after and after != before
        assert csrf_of(http.get("/").text) != token  # a new CSRF token too


@pytest.mark.postgres
def test_the_login_limit_is_shared_across_instances(
    postgres_database: Database, make_server: Callable[..., Server]
) -> None:
    first = make_server(postgres_database)
    second = make_server(postgres_database)
    made = cli(postgres_database, "users", "create", "erin", "--password-stdin", stdin=PASSWORD)
    assert made.returncode == 0, made.stderr
    for n in range(5):
        with (first if n % 2 else second).client(follow_redirects=False) as http:
            token = csrf_of(http.get("/login").text)
            wrong = http.post(
                "/login", data={"csrf_token": token, "username": "erin", "password": "wrong-pw"}
            )
            assert wrong.status_code == 401
    for instance in (first, second):
        with instance.client(follow_redirects=False) as http:
            token = csrf_of(http.get("/login").text)
            blocked = http.post(
                "/login", data={"csrf_token": token, "username": "erin", "password": PASSWORD}
            )
            assert blocked.status_code == 429 and "Too many failed sign-ins" in blocked.text


def test_hsts_only_over_https_from_a_trusted_proxy(
    sqlite_database: Database, make_server: Callable[..., Server]
) -> None:
    trusting = make_server(sqlite_database, approvals_trusted_proxies="127.0.0.1")
    with trusting.client() as http:
        assert "strict-transport-security" not in http.get("/login").headers
        secure = http.get("/login", headers={"X-Forwarded-Proto": "https"})
        assert secure.headers["strict-transport-security"].startswith("max-age=31536000")
    untrusting = make_server(sqlite_database)
    with untrusting.client() as http:  # a forged header from an untrusted client changes nothing
        forged = http.get("/login", headers={"X-Forwarded-Proto": "https"})
        assert "strict-transport-security" not in forged.headers


def test_the_audit_trail_reaches_only_webhooks_that_name_it(server: Server) -> None:
    everything, trail = Receiver().start(), Receiver().start()
    with contextlib.ExitStack() as stack, server.client(server.db.key()) as api:
        stack.callback(everything.stop)
        stack.callback(trail.stop)
        for url, types in ((everything.url, ["*"]), (trail.url, ["audit.*"])):
            made = api.post("/v1/webhooks", json={"url": url, "eventTypes": types})
            assert made.status_code == 201, made.text
        new_key(server.db, "watched", "--scope", "events:read")
        assert api.post("/v1/events", json={"type": "tick"}).status_code == 201
        got = trail.wait_for(1, where=lambda r: "audit.key.created" in r.body)
        assert json.loads(got[-1].body)["data"]["detail"]["key"] == "watched"
        agent = everything.wait_for(1)
        time.sleep(0.5)  # an audit delivery to '*' would have arrived by now
    assert [json.loads(r.body)["type"] for r in agent] == ["tick"]
    assert len(everything.received) == 1
