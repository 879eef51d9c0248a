"""Webhooks over real HTTP: signing, retries, durability, rotation, callbacks, processes."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from approvals.delivery.schedule import parse_retry_after, retry_delay
from conftest import Database, Server, until
from receiver import Receiver

FAST = {"approvals_webhook_schedule": "0.3,0.3,0.3"}


def endpoint(http: httpx.Client, url: str, types: list[str]) -> dict[str, Any]:
    answer = http.post("/v1/webhooks", json={"url": url, "eventTypes": types})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def deliveries(http: httpx.Client, endpoint_id: str, **params: str) -> list[dict[str, Any]]:
    return list(
        http.get(f"/v1/webhooks/{endpoint_id}/deliveries", params=params).json()["deliveries"]
    )


def test_schedule_is_the_configured_delays_with_jitter() -> None:
    rng = random.Random(7)
    schedule = (5, 300, 1800)
    delays = [retry_delay(n, schedule, rng) for n in (1, 2, 3)]
    for delay, base in zip(delays, schedule, strict=True):
        assert delay is not None and base * 0.9 <= delay <= base * 1.1
    assert retry_delay(4, schedule, rng) is None
    assert retry_delay(1, schedule, rng, retry_after=60) == 60
    assert retry_delay(2, schedule, rng, retry_after=1) >= 270  # never shortened
    assert retry_delay(1, schedule, rng, retry_after=10**9) == 24 * 3600
    assert parse_retry_after("120", 0) == 120
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480 - 30) == 30
    assert parse_retry_after("soon", 0) is None


def test_signed_delivery_verifies_with_standardwebhooks(server: Server, receiver: Receiver) -> None:
    admin = server.db.key("admin")
    with server.client(admin) as http:
        hook = endpoint(http, receiver.url, ["steering_request", "tool_call"])
        assert hook["secret"].startswith("whsec_")
        assert "secret" not in http.get(f"/v1/webhooks/{hook['id']}").json()
        assert all("secret" not in w for w in http.get("/v1/webhooks").json()["webhooks"])
        stored = http.post(
            "/v1/events",
            json=[
                {"type": "token"},
                {"type": "steering_request", "title": "Post ads?"},
                {"type": "tool_call"},
            ],
        ).json()
    got = receiver.wait_for(2)
    time.sleep(0.3)
    assert len(receiver.received) == 2  # the token event is filtered out
    got.sort(key=lambda r: int(json.loads(r.body)["data"]["id"]))
    for request, event in zip(got, [stored[1], stored[2]], strict=True):
        payload = Webhook(hook["secret"]).verify(request.body, request.headers)
        assert payload["type"] == event["type"]
        assert payload["data"] == event
        assert request.headers["webhook-id"]
        with pytest.raises(WebhookVerificationError):
            Webhook("whsec_" + "A" * 43 + "=").verify(request.body, request.headers)


def test_a_500_then_204_is_retried_with_the_same_webhook_id(
    database: Database, make_server: Callable[..., Server], receiver: Receiver
) -> None:
    server = make_server(database, **FAST)
    admin = database.key("admin")
    receiver.answers = [(500, {})]
    with server.client(admin) as http:
        hook = endpoint(http, receiver.url, ["*"])
        http.post("/v1/events", json={"type": "deploy_started"})
        got = receiver.wait_for(2)
        assert got[0].headers["webhook-id"] == got[1].headers["webhook-id"]
        assert got[0].body == got[1].body
        (delivery,) = until(
            lambda: [d for d in deliveries(http, hook["id"]) if d["status"] == "succeeded"]
        )
        health = http.get(f"/v1/webhooks/{hook['id']}").json()
    assert [a["statusCode"] for a in delivery["history"]] == [500, 204]
    assert [a["trigger"] for a in delivery["history"]] == ["scheduled", "scheduled"]
    assert delivery["history"][0]["error"] == "HTTP 500"
    assert health["status"] == "healthy" and health["failureStreak"] == 0
    assert health["lastSuccessAt"]


def test_retry_after_is_honoured(
    database: Database, make_server: Callable[..., Server], receiver: Receiver
) -> None:
    server = make_server(database, **FAST)
    admin = database.key("admin")
    receiver.answers = [(429, {"Retry-After": "2"})]
    with server.client(admin) as http:
        endpoint(http, receiver.url, ["*"])
        http.post("/v1/events", json={"type": "x"})
    first, second = receiver.wait_for(2, timeout=10)
    assert second.at - first.at >= 1.9


def test_a_spent_schedule_fails_the_delivery_and_marks_the_endpoint_failing(
    database: Database, make_server: Callable[..., Server], receiver: Receiver
) -> None:
    server = make_server(
        database, approvals_webhook_schedule="0.2,0.2", approvals_webhook_failing_after_seconds="0"
    )
    admin = database.key("admin")
    receiver.default = (503, {})
    with server.client(admin) as http:
        hook = endpoint(http, receiver.url, ["*"])
        http.post("/v1/events", json={"type": "x"})
        (failed,) = until(lambda: deliveries(http, hook["id"], status="failed"))
        assert failed["attempts"] == 3
        health = http.get(f"/v1/webhooks/{hook['id']}").json()
        assert health["status"] == "failing" and health["failureStreak"] == 3
        # A manual retry once the receiver recovers.
        receiver.default = (200, {})
        retried = http.post(f"/v1/deliveries/{failed['id']}/retry")
        assert retried.status_code == 202
        (done,) = until(lambda: deliveries(http, hook["id"], status="succeeded"))
        assert done["history"][-1]["trigger"] == "manual"
        assert http.get(f"/v1/webhooks/{hook['id']}").json()["status"] == "healthy"
        assert http.post("/v1/deliveries/dlv_nope/retry").status_code == 404


def test_410_gone_disables_the_endpoint(server: Server, receiver: Receiver) -> None:
    admin = server.db.key("admin")
    receiver.default = (410, {})
    with server.client(admin) as http:
        hook = endpoint(http, receiver.url, ["*"])
        http.post("/v1/events", json={"type": "x"})
        until(lambda: deliveries(http, hook["id"], status="failed"))
        state = http.get(f"/v1/webhooks/{hook['id']}").json()
        assert state["status"] == "disabled" and "410" in state["disabledReason"]
        http.post("/v1/events", json={"type": "y"})
        time.sleep(0.5)
    assert len(receiver.received) == 1


def test_deliveries_survive_sigkill_while_the_receiver_is_down(
    database: Database, make_server: Callable[..., Server]
) -> None:
    receiver = Receiver().start()
    port = receiver.port
    receiver.stop()  # down: connections are refused
    first = make_server(database, **FAST)
    admin = database.key("admin")
    with first.client(admin) as http:
        hook = endpoint(http, f"http://127.0.0.1:{port}/hook", ["*"])
        stored = http.post(
            "/v1/events", json=[{"type": "e", "title": str(i)} for i in range(5)]
        ).json()
    first.stop(signal.SIGKILL)
    receiver = Receiver().start(port)
    try:
        second = make_server(database, approvals_webhook_schedule="0.3,0.3,0.3,0.3,0.3,0.3")
        got = receiver.wait_for(5, timeout=30)  # a claim held at the kill lapses in 10 s
        assert sorted(json.loads(r.body)["data"]["id"] for r in got) == sorted(
            e["id"] for e in stored
        )
        with second.client(admin) as http:
            until(lambda: len(deliveries(http, hook["id"], status="succeeded")) == 5)
    finally:
        receiver.stop()


class Silent:
    """A loopback listener that accepts connections and never answers, until closed."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requests = 0
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.sock.accept()
                self.held.append(conn)
                if conn.recv(65536):
                    self.requests += 1

    def close(self) -> None:
        for conn in self.held:
            conn.close()
        self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept, frees the port
        self.sock.close()


def test_a_delivery_whose_sender_was_killed_mid_send_goes_out_from_the_restart(
    database: Database, make_server: Callable[..., Server]
) -> None:
    silent = Silent()
    first = make_server(database, approvals_webhook_timeout_seconds="60")
    admin = database.key("admin")
    with first.client(admin) as http:
        hook = endpoint(http, f"http://127.0.0.1:{silent.port}/hook", ["*"])
        (stored,) = http.post("/v1/events", json=[{"type": "e"}]).json()
    until(lambda: silent.requests == 1, what="the attempt reached the silent receiver")
    first.stop(signal.SIGKILL)  # claimed, mid-send, never recorded
    silent.close()
    receiver = Receiver().start(silent.port)
    try:
        second = make_server(database)
        # The dead process's claim lapses within its 10 s lease (it was 2 minutes).
        (got,) = receiver.wait_for(1, timeout=30)
        assert json.loads(got.body)["data"]["id"] == stored["id"]
        with second.client(admin) as http:
            (delivery,) = until(lambda: deliveries(http, hook["id"], status="succeeded"))
        assert delivery["attempts"] == 1  # the killed attempt left no record
    finally:
        receiver.stop()


def test_a_receiver_slower_than_the_lease_is_sent_once_by_two_processes(
    database: Database, make_server: Callable[..., Server]
) -> None:
    receiver = Receiver(delay=13).start()  # longer than the 10 s claim: it is renewed
    try:
        servers = [make_server(database), make_server(database)]
        admin = database.key("admin")
        with servers[0].client(admin) as http:
            hook = endpoint(http, receiver.url, ["*"])
            http.post("/v1/events", json={"type": "e"})
            until(lambda: deliveries(http, hook["id"], status="succeeded"), timeout=40)
        assert len(receiver.received) == 1
    finally:
        receiver.stop()


def test_secret_rotation_signs_with_both_secrets(server: Server, receiver: Receiver) -> None:
    admin = server.db.key("admin")
    with server.client(admin) as http:
        hook = endpoint(http, receiver.url, ["*"])
        rotated = http.post(f"/v1/webhooks/{hook['id']}/rotate-secret").json()
        assert rotated["secret"] != hook["secret"] and rotated["previousSecretValidUntil"]
        http.post("/v1/events", json={"type": "x"})
        assert http.post("/v1/webhooks/wh_nope/rotate-secret").status_code == 404
    (request,) = receiver.wait_for(1)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    Webhook(hook["secret"]).verify(request.body, request.headers)
    Webhook(rotated["secret"]).verify(request.body, request.headers)


def test_callback_url_receives_the_resolution_signed_with_the_callback_secret(
    server: Server, receiver: Receiver
) -> None:
    agent = server.db.key("events:write", name="agent")
    alice = server.db.key("approvals:resolve", name="alice")
    with server.client(agent) as http:
        approval = http.post(
            "/v1/approvals", json={"title": "Refund?", "runId": "r9", "callbackUrl": receiver.url}
        ).json()
    with server.client(alice) as http:
        http.post(
            f"/v1/approvals/{approval['id']}/decision",
            json={"decision": "reject", "comment": "too much"},
        )
    (request,) = receiver.wait_for(1)
    secret = subprocess.run(
        [sys.executable, "-m", "approvals", "webhooks", "callback-secret"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "APPROVALS_DATABASE_URL": server.db.url},
    ).stdout.strip()
    payload = Webhook(secret).verify(request.body, request.headers)
    assert payload["type"] == "approval.resolved"
    data = payload["data"]
    assert data["approvalId"] == approval["id"] and data["runId"] == "r9"
    assert data["resolvedBy"] == "alice"
    assert data["detail"]["decision"] == "reject" and data["detail"]["comment"] == "too much"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "not a url", "eventTypes": ["*"]}, "body.url"),
        ({"url": "ftp://example.com/x", "eventTypes": ["*"]}, "body.url"),
        ({"url": "https://example.com/x"}, "body.eventTypes"),
        ({"url": "https://example.com/x", "eventTypes": []}, "body.eventTypes"),
        ({"url": "https://example.com/x", "eventTypes": ["two words"]}, "body.eventTypes[0]"),
        ({"url": "https://example.com/x", "eventTypes": ["ok", "a*b"]}, "body.eventTypes[1]"),
        ({"url": "https://example.com/x", "eventTypes": ["*"], "secret": "mine"}, "body.secret"),
    ],
)
def test_bad_endpoints_are_refused(server: Server, body: dict[str, Any], field: str) -> None:
    admin = server.db.key("admin")
    with server.client(admin) as http:
        answer = http.post("/v1/webhooks", json=body)
    assert answer.status_code == 422 and answer.json()["field"] == field
    assert server.db.scalar("SELECT count(*) FROM webhook_endpoints") == 0


def test_allowed_destinations_setting_blocks_other_hosts(
    database: Database, make_server: Callable[..., Server], receiver: Receiver
) -> None:
    server = make_server(
        database, approvals_webhook_allowed_destinations="hooks.example.com,10.0.0.0/8"
    )
    admin = database.key("admin")
    with server.client(admin) as http:
        refused = http.post("/v1/webhooks", json={"url": receiver.url, "eventTypes": ["*"]})
        assert refused.status_code == 422 and refused.json()["field"] == "body.url"
        message = refused.json()["message"]
        assert "127.0.0.1 is a loopback address" in message
        assert "APPROVALS_WEBHOOK_ALLOWED_DESTINATIONS" in message
        # A list without `public` allows only what it names, public addresses included.
        public = http.post("/v1/webhooks", json={"url": "http://8.8.8.8/x", "eventTypes": ["*"]})
        assert public.status_code == 422 and "`public`" in public.json()["message"]
        ok = http.post(
            "/v1/webhooks", json={"url": "https://hooks.example.com/x", "eventTypes": ["*"]}
        )
        assert ok.status_code == 201
        hook = ok.json()
        assert http.delete(f"/v1/webhooks/{hook['id']}").status_code == 204
        assert http.get(f"/v1/webhooks/{hook['id']}").status_code == 404


@pytest.mark.postgres
def test_two_processes_on_postgres_deliver_each_message_once(
    postgres_database: Database, make_server: Callable[..., Server], receiver: Receiver
) -> None:
    one = make_server(postgres_database)
    two = make_server(postgres_database)
    admin = postgres_database.key("admin")
    with one.client(admin) as http:
        endpoint(http, receiver.url, ["*"])
    stored: list[dict[str, Any]] = []
    for n in range(20):
        target = (one, two)[n % 2]
        with target.client(admin) as http:
            stored += http.post("/v1/events", json=[{"type": "e"}] * 3).json()
    got = receiver.wait_for(60, timeout=20)
    time.sleep(1.5)
    ids = [json.loads(r.body)["data"]["id"] for r in receiver.received]
    assert sorted(ids) == sorted(e["id"] for e in stored)
    assert len(receiver.received) == len(got) == 60
