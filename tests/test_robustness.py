"""No key can break it: what one agent key, a stale cookie or a hostile header must not do,
on each database, against a real server."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
from typing import Any

import httpx
import pytest

from conftest import Database, Server, until
from receiver import Receiver
from test_notify_slack import PASSWORD, cli, sign_in


def ask(server: Server, body: dict[str, Any]) -> httpx.Response:
    """Open an approval as an agent (a requester may not decide its own request)."""
    with server.client(server.db.key("events:write")) as http:
        return http.post("/v1/approvals", json=body)


def readers_answer(server: Server, key: str) -> None:
    """Every reader of the queue and the log still answers 2xx."""
    with server.client(key) as http:
        for path in ("/v1/approvals", "/v1/approvals?status=all", "/v1/events", "/readyz"):
            answer = http.get(path)
            assert answer.status_code == 200, (path, answer.text)
        for approval in http.get("/v1/approvals", params={"status": "all"}).json()["approvals"]:
            assert http.get(f"/v1/approvals/{approval['id']}").status_code == 200


EVENTS = ["approval.resolved"]
UNSENDABLE = [
    "http://[::1",  # an unclosed IPv6 bracket: urlsplit and httpx both refuse it
    "http://\uff11\uff12\uff17.0.0.1/",  # fullwidth digits: httpx refuses the host
    "http://256.1.1.1/",
    "http://host:99999/",
    "http://exa mple.com/",
    "http://a..b/",
]


@pytest.mark.parametrize("url", UNSENDABLE)
def test_urls_the_sender_cannot_call_are_refused_at_creation(server: Server, url: str) -> None:
    admin = server.db.key()
    with server.client(admin) as http:
        for path, body, field in (
            ("/v1/approvals", {"title": "Go?", "callbackUrl": url}, "body.callbackUrl"),
            ("/v1/webhooks", {"url": url, "eventTypes": EVENTS}, "body.url"),
            (
                "/v1/sources",
                {"name": "s", "dialect": "prism", "url": url, "token": "t"},
                "body.url",
            ),
        ):
            answer = http.post(path, json=body)
            assert answer.status_code == 422, (path, answer.text)
            assert answer.json()["field"] == field, answer.text
        assert http.get("/v1/approvals").json()["approvals"] == []


def test_an_unsendable_delivery_never_stops_the_others(server: Server, receiver: Receiver) -> None:
    """A delivery stored before the URL check (or by a bug) fails on its own: it is recorded
    with its error and settled, every other delivery flows, and /readyz stays honest."""
    admin = server.db.key()
    with server.client(admin) as http:
        hook = http.post(
            "/v1/webhooks",
            json={"url": f"http://127.0.0.1:{receiver.port}/hook", "eventTypes": EVENTS},
        ).json()
        poisoned = ask(server, {"title": "first"}).json()
    # What the old check let through, as the worker would find it.
    server.db.execute(
        "INSERT INTO webhook_deliveries (id, msg_id, kind, url, event_id, event_type, payload,"
        " status, attempts, next_attempt_at, next_trigger, created_at, updated_at)"
        " VALUES (:id, :id, 'callback', :url, :event, 'approval.resolved', '{}', 'pending', 0,"
        " '2000-01-01T00:00:00.000Z', 'scheduled', '2000-01-01T00:00:00.000Z',"
        " '2000-01-01T00:00:00.000Z')",
        id="dlv_poison",
        url="http://[::1",
        event=int(poisoned["requestEventId"]),
    )
    with server.client(admin) as http:
        for _ in range(3):
            opened = ask(server, {"title": "go on"}).json()
            decided = http.post(
                f"/v1/approvals/{opened['id']}/decision", json={"decision": "approve"}
            )
            assert decided.status_code == 200, decided.text
        until(lambda: len(receiver.received) >= 3, what="the other deliveries")
        until(
            lambda: server.db.scalar(
                "SELECT attempts FROM webhook_deliveries WHERE id = 'dlv_poison'"
            ),
            what="the poison delivery's attempt",
        )
        assert (
            server.db.scalar("SELECT status FROM webhook_deliveries WHERE id = 'dlv_poison'")
            == "failed"
        )
        error = server.db.scalar(
            "SELECT last_error FROM webhook_deliveries WHERE id = 'dlv_poison'"
        )
        assert "URL" in error, error
        attempts = http.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["deliveries"]
        assert len(attempts) == 3 and {d["status"] for d in attempts} == {"succeeded"}
        assert http.get("/readyz").status_code == 200


def test_request_events_the_queue_cannot_serve_are_refused(server: Server) -> None:
    agent = server.db.key("events:write", name="agent")
    reader = server.db.key("approvals:read", "events:read", name="reader")
    bad = [
        ({"type": "steering_request", "detail": {"arguments": [1, 2]}}, "body.detail.arguments"),
        ({"type": "tool", "status": "pending_approval", "detail": {"arguments": "x"}},
         "body.detail.arguments"),
        ({"type": "steering_request", "detail": {"tool": "t" * 201}}, "body.detail.tool"),
        ({"type": "note", "category": "audit", "title": "forged"}, "body.category"),
        ({"type": "note", "category": "Audit"}, "body.category"),
    ]  # fmt: skip
    with server.client(agent) as http:
        for body, field in bad:
            for sent in (body, [body]):  # the fast path (one object) and a batch
                answer = http.post("/v1/events", json=sent)
                assert answer.status_code == 422, (body, answer.text)
                expected = field if isinstance(sent, dict) else field.replace("body", "body[0]")
                assert answer.json()["field"] == expected, answer.text
        opened = http.post(
            "/v1/approvals", json={"title": "t", "detail": {"arguments": ["not", "named"]}}
        )
        assert opened.status_code == 422 and opened.json()["field"] == "body.detail.arguments"
        # What the readers serve is still accepted.
        ok = http.post(
            "/v1/events",
            json={"type": "steering_request", "detail": {"tool": "t" * 200, "arguments": None}},
        )
        assert ok.status_code == 201, ok.text
    assert server.db.scalar("SELECT count(*) FROM events WHERE category = 'audit'") == 0
    readers_answer(server, reader)


def test_rows_stored_before_the_shape_check_are_still_served(server: Server) -> None:
    """An approval whose arguments a release before the ingest check stored as a list is
    served with null arguments (its request event keeps them) and can still be decided."""
    reader = server.db.key("approvals:read", "approvals:resolve", "events:read", name="reviewer")
    opened = ask(server, {"title": "old row", "detail": {"arguments": {"a": 1}}}).json()
    server.db.execute("UPDATE approvals SET arguments = '[1, 2]'")
    with server.client(reader) as http:
        (listed,) = http.get("/v1/approvals").json()["approvals"]
        assert listed["arguments"] is None
        decided = http.post(f"/v1/approvals/{opened['id']}/decision", json={"decision": "reject"})
        assert decided.status_code == 200, decided.text
    readers_answer(server, reader)


@pytest.mark.parametrize("number", ["\u00b2", "\u0661\u0662", "\uff11", "+1", "-1", "1.0"])
def test_numbers_on_the_wire_are_ascii_digits_only(server: Server, number: str) -> None:
    key = server.db.key()
    with server.client(key) as http:
        http.post("/v1/events", json={"type": "token"})
        assert http.get(f"/v1/events/{number}").status_code == 400
        answer = http.get(
            "/v1/events", headers={"Last-Event-ID": number.encode(), "Accept": "text/event-stream"}
        )
        assert answer.status_code == 400, answer.text
        assert http.get("/v1/events", params={"after": number}).status_code == 400
    make_reviewer(server.db, "ann")
    browser, _ = sign_in(server, "ann")
    with contextlib.closing(browser):
        assert browser.get("/dashboard/stream", params={"since": number}).status_code == 400


@pytest.mark.parametrize(
    "path",
    [
        "/v1/approvals/apr%00x",
        "/v1/events/%00",
        "/v1/approvals?run_id=a%00b",
        "/v1/events?thread_id=%00",
        "/v1/webhooks/wh%00",
        "/v1/sources/src%00",
        "/approvals/apr%00",
    ],
)
def test_nul_in_a_path_or_query_is_400_on_both_databases(server: Server, path: str) -> None:
    key = server.db.key()
    with server.client(key) as http:
        answer = http.get(path)
        assert answer.status_code == 400, answer.text
        assert "NUL" in answer.json()["message"]
        decided = http.post("/v1/approvals/apr%00/decision", json={"decision": "approve"})
        assert decided.status_code == 400, decided.text
    readers_answer(server, key)


def test_headers_over_64_kib_are_431(server: Server) -> None:
    key = server.db.key()
    with server.client(key) as http:
        big = {"X-Padding": "a" * (65 * 1024)}
        for method, path in (("GET", "/v1/approvals"), ("POST", "/v1/events"), ("GET", "/")):
            answer = http.request(method, path, headers=big, json={"type": "token"})
            assert answer.status_code == 431, (path, answer.text)
            assert answer.json()["error"] == "too_large"
        many = {f"X-H{i}": "b" * 1000 for i in range(70)}
        assert http.get("/v1/approvals", headers=many).status_code == 431
        assert http.get("/v1/approvals", headers={"X-Padding": "a" * 60_000}).status_code == 200
    assert server.db.scalar("SELECT count(*) FROM events WHERE type = 'token'") == 0


def test_bodies_where_none_is_taken_are_refused_and_retries_are_audited(
    server: Server,
) -> None:
    admin = server.db.key(name="ops")
    with server.client(admin) as http:
        hook = http.post(
            "/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "eventTypes": EVENTS}
        ).json()
        rotated = http.post(f"/v1/webhooks/{hook['id']}/rotate-secret", json={"secret": "mine"})
        assert rotated.status_code == 400 and rotated.json()["field"] == "body", rotated.text
        assert http.post(f"/v1/webhooks/{hook['id']}/rotate-secret").status_code == 200
        opened = ask(server, {"title": "t"}).json()
        http.post(f"/v1/approvals/{opened['id']}/decision", json={"decision": "approve"})
        delivery = until(
            lambda: http.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["deliveries"],
            what="a delivery",
        )[0]
        retry = f"/v1/deliveries/{delivery['id']}/retry"
        assert http.post(retry, json={"now": True}).status_code == 400
        assert http.post(retry, json={}).status_code == 202
        audited = http.get("/v1/events", params={"type": "audit.delivery.retried"}).json()
        (event,) = audited["events"]
        assert event["detail"]["actor"] == "key:ops"
        assert event["detail"]["delivery"] == delivery["id"]


def make_reviewer(db: Database, name: str, *flags: str) -> None:
    done = cli(db, "users", "create", name, *flags, "--password-stdin", stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr


def dashboard_writes(server: Server) -> list[tuple[str, dict[str, str]]]:
    """Every state-changing dashboard route of the running app, with a form that would
    change something if admitted (found from the app's own routes, so a new one is walked
    too)."""
    script = (
        "import json; from approvals.main.app import create_app;"
        "from approvals.dashboard import admit;"
        "from approvals.core.config import Settings;"
        "app = create_app(Settings(database_url='sqlite:///:memory:'));"
        "print(json.dumps(sorted(r.path for r in app.routes"
        " if any(h.opt.get(admit.ROLE) for h in getattr(r, 'route_handlers', [])))))"
    )
    paths = json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True,
                                      text=True, check=True).stdout)  # fmt: skip
    return [(path, {}) for path in paths]


def one_delivery(server: Server, admin: str, receiver: Receiver) -> str:
    """A webhook endpoint at ``receiver`` and one approval decided: its delivery's id, once
    the receiver has it."""
    with server.client(admin) as http:
        http.post(
            "/v1/webhooks",
            json={"url": f"http://127.0.0.1:{receiver.port}/hook", "eventTypes": EVENTS},
        )
        decided = ask(server, {"title": "done"}).json()
        http.post(f"/v1/approvals/{decided['id']}/decision", json={"decision": "reject"})
    until(lambda: receiver.received, what="the delivery")
    return str(server.db.scalar("SELECT id FROM webhook_deliveries"))


def test_a_disabled_or_signed_out_reviewer_decides_nothing_anywhere(
    server: Server, receiver: Receiver
) -> None:
    admin = server.db.key()
    for name in ("dora", "sam", "rita"):
        make_reviewer(server.db, name, "--admin")
    delivery = one_delivery(server, admin, receiver)
    opened = ask(server, {"title": "Rotate the prod DB password?"}).json()
    routes = dashboard_writes(server)
    assert {p for p, _ in routes} >= {
        "/approvals/{approval_id:str}/decide",
        "/approvals/{approval_id:str}/claim",
        "/approvals/batch",
        "/webhooks/deliveries/{delivery_id:str}/retry",
    }
    dora, dora_csrf = sign_in(server, "dora")
    sam, sam_csrf = sign_in(server, "sam")
    with contextlib.closing(dora), contextlib.closing(sam):
        assert cli(server.db, "users", "disable", "dora").returncode == 0
        # Sam signs out; a copy of his old cookie is kept.
        stale = httpx.Client(base_url=server.base, cookies=dict(sam.cookies))
        assert sam.post("/logout", data={"csrf_token": sam_csrf}).status_code == 303
        with contextlib.closing(stale):
            for browser, csrf in ((dora, dora_csrf), (stale, sam_csrf)):
                for path, _ in routes:
                    url = path.replace("{approval_id:str}", opened["id"]).replace(
                        "{delivery_id:str}", delivery
                    )
                    form = {
                        "csrf_token": csrf,
                        "decision": "approve",
                        "ids": opened["id"],
                        "confirmed": "1",
                    }
                    for headers in ({}, {"HX-Request": "true"}):
                        answer = browser.post(url, data=form, headers=headers)
                        assert answer.status_code == 401, (path, answer.text)
    with server.client(admin) as http:
        approval = http.get(f"/v1/approvals/{opened['id']}").json()
        assert approval["status"] == "pending" and approval["claimedBy"] is None
    assert (
        server.db.scalar("SELECT attempts FROM webhook_deliveries WHERE id = :d", d=delivery) == 1
    )


def test_retrying_a_delivery_from_the_dashboard_needs_admin(
    server: Server, receiver: Receiver
) -> None:
    admin = server.db.key()
    make_reviewer(server.db, "rev")
    make_reviewer(server.db, "boss", "--admin")
    delivery = one_delivery(server, admin, receiver)
    rev, rev_csrf = sign_in(server, "rev")
    boss, boss_csrf = sign_in(server, "boss")
    with contextlib.closing(rev), contextlib.closing(boss):
        path = f"/webhooks/deliveries/{delivery}/retry"
        refused = rev.post(path, data={"csrf_token": rev_csrf})
        assert refused.status_code == 403 and "admin" in refused.json()["message"]
        assert server.db.scalar("SELECT next_trigger FROM webhook_deliveries") == "scheduled"
        assert boss.post(path, data={"csrf_token": boss_csrf}).status_code == 303
        until(lambda: len(receiver.received) >= 2, what="the manual retry")
    with server.client(admin) as http:
        (event,) = http.get("/v1/events", params={"type": "audit.delivery.retried"}).json()[
            "events"
        ]
        assert event["detail"]["actor"] == "user:boss"


def test_sqlite_is_durable_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from approvals.core.db import sqlite_pragmas

    for setting, expected in (("", 2), ("full", 2), ("normal", 1), ("NORMAL", 1)):
        monkeypatch.setenv("APPROVALS_SQLITE_SYNCHRONOUS", setting)
        conn = sqlite3.connect(":memory:")
        sqlite_pragmas(conn, None)
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == expected
        conn.close()
    monkeypatch.setenv("APPROVALS_SQLITE_SYNCHRONOUS", "off")
    with pytest.raises(SystemExit, match="full or normal"):
        sqlite_pragmas(sqlite3.connect(":memory:"), None)


def test_keys_with_the_longest_names_rotate_and_revoke_on_both_databases(
    database: Database,
) -> None:
    """Found by the CLI fuzzer: renaming a retired key (`NAME (revoked 1a2b3c)`) overflowed
    the 200-character name column, which PostgreSQL refuses (a traceback) and SQLite stored;
    and revoking a name longer than any key failed the same way."""
    longest = "k" * 200
    made = cli(database, "keys", "create", longest, "--scope", "admin")
    assert made.returncode == 0, made.stderr
    for args in (("keys", "rotate", longest), ("keys", "revoke", longest)):
        done = cli(database, *args)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3_000:]
    names = [line.split("\t")[0] for line in cli(database, "keys", "list").stdout.splitlines()]
    assert len(names) == 2 and all(len(n) <= 200 for n in names), names
    # The old key, renamed when rotated; the new one, renamed when revoked.
    how = sorted(n.rsplit(" (", 1)[1][:7] for n in names)
    assert how == ["revoked", "rotated"] and all(n.startswith("k" * 180) for n in names), names
    refused = cli(database, "keys", "revoke", "x" * 5000)
    assert refused.returncode == 2 and "no active key named" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
