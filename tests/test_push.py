"""Web Push over real HTTP: reviewers' browsers subscribe from the dashboard, a push service
stand-in on loopback receives RFC 8291 messages signed with VAPID, and the test decrypts
them as a browser would."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece
import httpx
import pytest
import test_browser
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from test_dashboard import sign_in

from approvals.core import outbound
from approvals.core.config import Settings
from approvals.core.errors import ApiError
from approvals.delivery.channels import push, vapid
from conftest import Database, Server, until
from test_notify_slack import PUBLIC, approval, cli, open_request, reviewer

ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/130.0.0.0 Mobile Safari/537.36"
)
SUBJECT = "mailto:ops@example.com"
browser = test_browser.browser  # the module's Chromium and the two-reviewer site
site = test_browser.site


def in_chromium(test: Callable[..., None]) -> Callable[..., None]:
    """A browser test: skipped, saying why, when APPROVALS_TEST_CHROMIUM names no Chromium."""
    for mark in reversed(test_browser.pytestmark):
        test = mark(test)
    return test


@dataclass
class Pushed:
    """One message the push service got."""

    name: str  # the subscription's name: the last part of its endpoint's path
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class PushService:
    """A push service on loopback: records every POST; answers per subscription from
    ``answers`` (consumed in order), then 201 Created."""

    answers: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    received: list[Pushed] = field(default_factory=list)
    port: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> PushService:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                name = self.path.rsplit("/", 1)[-1]
                with service._lock:
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    service.received.append(Pushed(name, headers, body, time.monotonic()))
                    queue = service.answers.get(name) or []
                    status, extra = queue.pop(0) if queue else (201, {})
                self.send_response(status)
                for key, value in {
                    "location": f"/message/{len(service.received)}",
                    **extra,
                }.items():
                    self.send_header(key, value)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def endpoint(self, name: str) -> str:
        return f"{self.origin}/wpush/v2/{name}"

    def of(self, name: str) -> list[Pushed]:
        with self._lock:
            return [p for p in self.received if p.name == name]

    def wait_for(self, name: str, count: int, timeout: float = 20) -> list[Pushed]:
        return list(
            until(lambda: len(self.of(name)) >= count and self.of(name), timeout, f"{name} pushes")
        )


@dataclass
class Browser:
    """A browser's push subscription: its own P-256 key pair and authentication secret."""

    endpoint: str
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth: bytes = field(default_factory=lambda: os.urandom(16))

    def subscription(self) -> dict[str, Any]:
        """What ``PushSubscription.toJSON()`` gives."""
        point = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": self.endpoint,
            "expirationTime": None,
            "keys": {"p256dh": b64(point), "auth": b64(self.auth)},
        }

    def read(self, pushed: Pushed) -> dict[str, Any]:
        """Decrypt a message as the browser does (RFC 8291, aes128gcm)."""
        assert pushed.headers["content-encoding"] == "aes128gcm"
        plain = http_ece.decrypt(
            pushed.body, private_key=self.key, auth_secret=self.auth, version="aes128gcm"
        )
        return dict(json.loads(plain))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.fixture
def push_service() -> Iterator[PushService]:
    service = PushService().start()
    yield service
    service.stop()


def start(make_server: Callable[..., Server], db: Database) -> Server:
    return make_server(
        db,
        approvals_public_url=PUBLIC,
        approvals_vapid_subject=SUBJECT,
        approvals_webhook_allowed_destinations="127.0.0.1/32",
        approvals_webhook_schedule="0.3,0.3,0.3",
    )


def signed_in(server: Server, name: str) -> tuple[httpx.Client, str]:
    reviewer(server.db, name)
    return sign_in(server, name)


def subscribe(http: httpx.Client, csrf: str, body: Any) -> httpx.Response:
    headers = {"X-CSRF-Token": csrf, "User-Agent": ANDROID}
    return http.post("/dashboard/push/subscribe", json=body, headers=headers)


def vapid_claims(authorization: str, public_key: str) -> dict[str, Any]:
    """The claims of a ``vapid t=<JWT>, k=<key>`` header, its ES256 signature checked
    against ``public_key`` (which ``k`` must name)."""
    scheme, _, params = authorization.partition(" ")
    assert scheme == "vapid"
    parts = dict(p.strip().split("=", 1) for p in params.split(","))
    assert parts["k"] == public_key
    header, claims, signature = parts["t"].split(".")
    assert json.loads(unb64(header)) == {"typ": "JWT", "alg": "ES256"}
    raw = unb64(signature)
    assert len(raw) == 64
    der = utils.encode_dss_signature(int.from_bytes(raw[:32]), int.from_bytes(raw[32:]))
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64(public_key))
    key.verify(der, f"{header}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))  # raises if forged
    return dict(json.loads(unb64(claims)))


def expected_topic(approval_id: str) -> str:
    return b64(hashlib.sha256(approval_id.encode()).digest()[:24])


def test_a_reviewer_who_may_decide_gets_the_request_and_then_decided_elsewhere(
    database: Database, make_server: Callable[..., Server], push_service: PushService
) -> None:
    server = start(make_server, database)
    alice, alice_csrf = signed_in(server, "alice")
    bob, bob_csrf = signed_in(server, "bob")
    phone, laptop = Browser(push_service.endpoint("alice")), Browser(push_service.endpoint("bob"))
    with contextlib.closing(alice), contextlib.closing(bob):
        made = subscribe(alice, alice_csrf, phone.subscription())
        assert made.status_code == 201, made.text
        assert made.json()["label"] == "Chrome on Android"
        assert subscribe(bob, bob_csrf, laptop.subscription()).status_code == 201
        page = alice.get("/settings").text
        assert f'id="device-{made.json()["id"]}"' in page and "Chrome on Android" in page
        assert made.json()["id"] not in bob.get("/settings").text
        key = alice.get("/dashboard/push/key").json()["publicKey"]
    # The key was made once and kept: the stored private key is its other half.
    stored = database.scalar("SELECT value FROM service_secrets WHERE name = 'vapid_private_key'")
    assert vapid.public_text(vapid.load(stored)) == key and len(unb64(key)) == 65

    with server.client(server.db.key("admin", name="agent")) as http:
        policy = {
            "action": "require",
            "tool": "deploy",
            "reviewers": ["alice"],  # bob may not decide: he is told nothing
            "redact": ["token"],
            "display": "Deploy {{ arguments.service }} with {{ arguments.token }}",
        }
        assert http.post("/v1/policies", json=policy).status_code == 201
        arguments = {"service": "api\u202egnp.exe\nsecond line", "token": "s3cret-TOKEN"}
        opened = open_request(
            http, detail={"tool": "deploy", "arguments": arguments}, timeoutSeconds=3600
        )
        [request] = push_service.wait_for("alice", 1)
        headers = request.headers
        assert 3500 < int(headers["ttl"]) <= 3600  # until the request times out
        assert headers["topic"] == expected_topic(opened["id"])
        assert len(headers["topic"]) <= 32 and re.fullmatch(r"[A-Za-z0-9_-]+", headers["topic"])
        assert headers["urgency"] == "high"
        claims = vapid_claims(headers["authorization"], key)
        assert claims["aud"] == push_service.origin and claims["sub"] == SUBJECT
        assert time.time() < claims["exp"] <= time.time() + 24 * 3600

        shown = phone.read(request)
        assert shown["title"] == "Deploy api gnp.exe second line with [redacted]"
        assert "s3cret" not in json.dumps(shown) and "\u202e" not in json.dumps(shown)
        assert shown["body"].startswith("deployer · deploy · ")
        assert shown["url"] == f"{PUBLIC}/approvals/{opened['id']}"
        assert shown["tag"] == opened["id"] and shown["decided"] is False
        actions = {a["action"]: a for a in shown["actions"]}
        assert [a["title"] for a in shown["actions"]] == ["Approve", "Reject"]
        assert all(a["url"].startswith(f"{PUBLIC}/email/") for a in shown["actions"])

        # The Approve action opens the email links' confirmation page: a GET never decides.
        link = actions["approve"]["url"].replace(PUBLIC, server.base)
        confirm = httpx.get(link)
        assert confirm.status_code == 200 and "<form" in confirm.text
        assert approval(http, opened["id"])["status"] == "pending"
        assert httpx.post(link).status_code == 200
        decided = approval(http, opened["id"])
        assert decided["status"] == "approved" and decided["resolvedBy"] == "alice"

        _, update = push_service.wait_for("alice", 2)
        assert update.headers["topic"] == headers["topic"]  # it replaces the request
        told = phone.read(update)
        assert told["decided"] is True and told["title"] == "Decided elsewhere"
        assert told["body"].startswith("Approved by alice: Deploy api")
        assert told["tag"] == opened["id"] and told["actions"] == []
    assert push_service.of("bob") == []
    assert (
        database.scalar(
            "SELECT count(*) FROM webhook_deliveries WHERE kind = 'push' AND url LIKE 'push:bob/%'"
        )
        == 0
    )
    assert database.scalar(
        "SELECT last_success_at FROM push_subscriptions WHERE username = 'alice'"
    )


def test_gone_subscriptions_are_removed_and_throttling_is_retried(
    database: Database, make_server: Callable[..., Server], push_service: PushService
) -> None:
    server = start(make_server, database)
    push_service.answers["carol"] = [(410, {})]
    push_service.answers["dave"] = [(429, {"Retry-After": "1"}), (503, {})]
    carol, carol_csrf = signed_in(server, "carol")
    dave, dave_csrf = signed_in(server, "dave")
    erin, erin_csrf = signed_in(server, "erin")
    with contextlib.closing(carol), contextlib.closing(dave), contextlib.closing(erin):
        # Erin is away: what would come to her goes to dave's devices (once), not hers.
        away = Browser(push_service.endpoint("erin")).subscription()
        assert subscribe(erin, erin_csrf, away).status_code == 201
        until_then = ("--away-until", "2099-01-01T00:00:00Z", "--delegate", "dave")
        assert cli(database, "users", "update", "erin", *until_then).returncode == 0
        gone = subscribe(carol, carol_csrf, Browser(push_service.endpoint("carol")).subscription())
        assert gone.status_code == 201
        assert gone.json()["id"] in carol.get("/settings").text
        slow = Browser(push_service.endpoint("dave"))
        assert subscribe(dave, dave_csrf, slow.subscription()).status_code == 201
        with server.client(server.db.key("admin", name="agent")) as http:
            opened = open_request(http, title="Rotate the keys?")

            # 410: the device is forgotten (database and Settings page), never tried again.
            push_service.wait_for("carol", 1)
            until(
                lambda: (
                    database.scalar(
                        "SELECT count(*) FROM push_subscriptions WHERE username = 'carol'"
                    )
                    == 0
                ),
                what="carol's device removed",
            )
            assert gone.json()["id"] not in carol.get("/settings").text
            assert "No device gets notifications yet." in carol.get("/settings").text

            # 429 with Retry-After, then 503: retried on the schedule, the wait honoured.
            first, second, third = push_service.wait_for("dave", 3)
            assert second.at - first.at >= 0.9  # Retry-After: 1 beats the 0.3 s schedule
            assert slow.read(third)["tag"] == opened["id"]
        with server.client(server.db.key(name="ops")) as ops:
            ops.post(f"/v1/approvals/{opened['id']}/decision", json={"decision": "reject"})
        push_service.wait_for("dave", 4)  # the decided push reaches dave's device
    time.sleep(1.5)  # the schedule (0.3 s) would have tried three times by now
    assert len(push_service.of("carol")) == 1 and len(push_service.of("dave")) == 4
    assert push_service.of("erin") == []
    by_device = (
        "SELECT status || '|' || attempts FROM webhook_deliveries WHERE kind = 'push' "
        "AND event_type = :type AND url LIKE :who"
    )
    request, decided = "notification.push.request", "notification.push.decided"
    assert database.scalar(by_device, type=request, who="push:carol/%") == "failed|1"
    assert database.scalar(by_device, type=decided, who="push:carol/%") is None
    assert database.scalar(by_device, type=request, who="push:dave/%") == "succeeded|3"
    assert database.scalar(by_device, type=decided, who="push:dave/%") == "succeeded|1"


def test_subscriptions_are_checked_and_belong_to_their_reviewer(
    database: Database, make_server: Callable[..., Server], push_service: PushService
) -> None:
    server = start(make_server, database)
    alice, csrf = signed_in(server, "alice")
    bob, bob_csrf = signed_in(server, "bob")
    good = Browser(push_service.endpoint("alice")).subscription()
    with contextlib.closing(alice), contextlib.closing(bob), server.client() as anonymous:
        assert anonymous.get("/dashboard/push/key").status_code == 401
        refused = anonymous.post("/dashboard/push/subscribe", json=good)
        assert refused.status_code == 403
        assert alice.post("/dashboard/push/subscribe", json=good).status_code == 403  # no CSRF

        def bad(body: Any, field: str, says: str = "") -> None:
            answer = subscribe(alice, csrf, body)
            assert answer.status_code in (400, 422), answer.text
            assert field in answer.json()["message"], answer.text
            assert says in answer.json()["message"], answer.text

        keys = good["keys"]
        bad({"keys": keys}, "endpoint")
        bad({"endpoint": good["endpoint"]}, "keys")
        bad({**good, "extra": 1}, "extra")
        bad({**good, "keys": {**keys, "p256dh": b64(b"\x04" + b"\x01" * 64)}}, "body.keys.p256dh")
        bad({**good, "keys": {**keys, "p256dh": "not base64!" * 8}}, "body.keys.p256dh")
        bad({**good, "keys": {**keys, "auth": b64(os.urandom(12))}}, "keys.auth")
        bad({**good, "keys": {**keys, "auth": b64(os.urandom(32))}}, "keys.auth")
        for endpoint, says in (
            ("javascript:alert(1)", "http"),
            ("http://10.1.2.3/push/x", "private address"),
            ("http://169.254.169.254/latest/meta-data", "metadata"),
            ("http://[fe80::1]/push", "link-local"),
            ("http://localhost:9/push", "local name"),
            ("http://user:pw@127.0.0.1/push", "user name"),
            (push_service.endpoint("ålice"), "ASCII"),
        ):
            bad({**good, "endpoint": endpoint}, "body.endpoint", says)
        assert database.scalar("SELECT count(*) FROM push_subscriptions") == 0

        made = subscribe(alice, csrf, good).json()
        again = subscribe(alice, csrf, good).json()  # the same browser: one device
        assert again["id"] == made["id"]
        assert database.scalar("SELECT count(*) FROM push_subscriptions") == 1
        stored = database.scalar("SELECT p256dh || auth FROM push_subscriptions")
        assert stored == keys["p256dh"] + keys["auth"]

        # Bob cannot remove alice's device; alice removes it from the Settings page.
        other = bob.post(
            "/dashboard/push/unsubscribe",
            json={"id": made["id"]},
            headers={"X-CSRF-Token": bob_csrf},
        )
        assert other.status_code == 200 and other.json() == {"removed": 0}
        form = {"csrf_token": csrf, "id": made["id"]}
        removed = alice.post("/dashboard/push/unsubscribe", data=form)
        assert removed.status_code == 303 and removed.headers["location"] == "/settings#push"
        assert made["id"] not in alice.get("/settings").text

        # The browser turning notifications off names its endpoint.
        subscribe(alice, csrf, good)
        by_endpoint = alice.post(
            "/dashboard/push/unsubscribe",
            json={"endpoint": good["endpoint"]},
            headers={"X-CSRF-Token": csrf},
        )
        assert by_endpoint.json() == {"removed": 1}
        assert database.scalar("SELECT count(*) FROM push_subscriptions") == 0
        trail = database.scalar(
            "SELECT count(*) FROM events WHERE type = 'audit.user.updated' "
            "AND title LIKE '%notifications on Chrome on Android'"
        )
        assert trail == 5  # three times on (once again), twice off
        leaked = database.scalar(
            "SELECT count(*) FROM events WHERE type LIKE 'audit.%' "
            "AND (CAST(detail AS TEXT) LIKE :secret OR title LIKE :secret)",
            secret=f"%{keys['auth']}%",
        )
        assert leaked == 0


def test_the_outbound_rules_refuse_private_link_local_and_metadata_endpoints() -> None:
    policy = outbound.parse("")  # the default: public addresses only
    for endpoint in (
        "https://10.0.0.8/push",
        "https://192.168.1.20/push",
        "https://172.16.5.5/push",
        "https://169.254.169.254/latest",
        "https://[fe80::1]/push",
        "https://[::ffff:169.254.169.254]/push",
        "https://100.100.100.200/push",
        "https://127.0.0.1/push",
        "https://metadata.google.internal/push",
        "https://2130706433/push",
    ):
        with pytest.raises(ApiError) as refused:
            push.check_endpoint(endpoint, policy)
        assert refused.value.status == 422 and refused.value.extra["field"] == "body.endpoint"
    # A public name passes at subscription; where it resolves is checked at every send,
    # and an address the policy refuses then is refused too (resolved here, never connected).
    name = "https://fcm.googleapis.com/fcm/send/abc"
    assert push.check_endpoint(name, policy) == name
    guard = outbound.Guard(policy, outbound.Resolver({"fcm.googleapis.com": ("10.9.8.7",)}))
    with pytest.raises(outbound.Refused, match="private"):
        asyncio.run(guard.check_url(name))


def test_vapid_keys_and_topics() -> None:
    made = vapid.generate()
    public = vapid.public_text(vapid.load(made))
    assert vapid.configured(Settings(vapid_private_key=made, vapid_public_key=public))
    other = vapid.public_text(vapid.load(vapid.generate()))
    with pytest.raises(SystemExit, match="not the public half"):
        vapid.configured(Settings(vapid_private_key=made, vapid_public_key=other))
    with pytest.raises(SystemExit, match="P-256"):
        vapid.configured(Settings(vapid_private_key="bm90IGEga2V5"))
    pem = (
        vapid.load(made)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    assert vapid.public_text(vapid.load(pem)) == public
    assert (
        Settings(email_from="Approvals <ops@example.com>").vapid_contact == "mailto:ops@example.com"
    )
    topic = push.topic("apr_" + "x" * 200)
    assert len(topic) == 32 and re.fullmatch(r"[A-Za-z0-9_-]+", topic)
    assert push.plain("a\u202eb\u2066c\x00d\n\te", 100) == "a b c d e"
    assert push.plain("x" * 300, 10) == "x" * 9 + "…"


# Stands in for the browser's connection to its push service, which a test cannot reach:
# subscribe hands back a subscription to the loopback stand-in and keeps the key it was
# given; both outlive the page's reloads (sessionStorage).
FAKE_PUSH_MANAGER = """
(() => {
  const subscription = %s;
  const made = () => ({
    endpoint: subscription.endpoint,
    toJSON: () => subscription,
    unsubscribe: async () => { sessionStorage.removeItem("subscribed"); return true; },
  });
  PushManager.prototype.getSubscription = async function () {
    return sessionStorage.getItem("subscribed") ? made() : null;
  };
  PushManager.prototype.subscribe = async function (options) {
    const key = Array.from(new Uint8Array(options.applicationServerKey));
    sessionStorage.setItem("key", JSON.stringify(key));
    sessionStorage.setItem("subscribed", "1");
    return made();
  };
})();
"""


@in_chromium
def test_the_settings_page_turns_notifications_on_and_off_in_a_browser(
    browser: Any, site: Server, push_service: PushService
) -> None:
    phone = Browser(push_service.endpoint("alice"))
    context = browser.new_context()
    context.grant_permissions(["notifications"], origin=site.base)
    context.add_init_script(FAKE_PUSH_MANAGER % json.dumps(phone.subscription()))
    problems: list[str] = []
    try:
        page = context.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto(site.base + "/login")
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill(test_browser.PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(site.base + "/")
        page.goto(site.base + "/settings")
        assert page.get_by_text("No device gets notifications yet.").is_visible()
        assert page.get_by_role("button", name="Turn off on this device").is_hidden()
        page.get_by_role("button", name="Turn on notifications on this device").click()
        page.get_by_role("cell", name="Chrome on Linux").wait_for()
        page.get_by_text("Notifications are on for this device.").wait_for()
        cookies = {c["name"]: c["value"] for c in context.cookies()}
        key = httpx.get(site.base + "/dashboard/push/key", cookies=cookies).json()["publicKey"]
        assert page.evaluate("JSON.parse(sessionStorage.getItem('key'))") == list(unb64(key))
        assert site.db.scalar("SELECT endpoint FROM push_subscriptions") == phone.endpoint

        page.get_by_role("button", name="Turn off on this device").click()
        page.get_by_text("No device gets notifications yet.").wait_for()
        assert site.db.scalar("SELECT count(*) FROM push_subscriptions") == 0
        assert problems == []  # no script error, no CSP refusal
    finally:
        context.close()
