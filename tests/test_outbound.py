"""Outbound calls: refused where they must not go, at creation and after DNS resolution.

Every request here goes to loopback. Private, link-local and metadata addresses are
checked by calling the policy on them, or are refused by the service before it connects.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest

from approvals.core import outbound
from approvals.core.errors import ApiError
from conftest import Database, Server, until
from receiver import Receiver

FAST = {"approvals_webhook_schedule": "0.2,0.2"}
SETTING = "APPROVALS_WEBHOOK_ALLOWED_DESTINATIONS"


def deliveries(http: httpx.Client, endpoint_id: str, **params: str) -> list[dict[str, Any]]:
    answer = http.get(f"/v1/webhooks/{endpoint_id}/deliveries", params=params)
    return list(answer.json()["deliveries"])


# --- the policy, on addresses (nothing is contacted) ---------------------------------


@pytest.mark.parametrize(
    ("host", "what"),
    [
        ("127.0.0.1", "loopback"),
        ("127.1", "loopback"),  # inet_aton forms reach 127.0.0.1 too
        ("2130706433", "loopback"),
        ("0x7f.0.0.1", "loopback"),
        ("[::1]", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("::127.0.0.1", "loopback"),  # IPv4-compatible
        ("2002:7f00:1::", "loopback"),  # 6to4
        ("169.254.169.254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("::ffff:10.0.0.1", "private"),
        ("64:ff9b::a00:1", "private"),  # NAT64
        ("100.64.0.1", "shared"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("192.0.2.1", "reserved"),
        ("localhost", "local name"),
        ("api.localhost", "local name"),
        ("metadata.google.internal", "local name"),
        ("metadata", "local name"),
        ("printer.local", "local name"),
    ],
)
def test_the_default_refuses_every_address_that_is_not_public(host: str, what: str) -> None:
    reason = outbound.parse("").refusal(host)
    assert reason is not None and what in reason and SETTING in reason, reason
    assert reason.startswith("refused: ")


def test_public_addresses_and_names_pass_by_default() -> None:
    default = outbound.parse("")
    for host in ("8.8.8.8", "2001:4860:4860::8888", "::ffff:8.8.8.8", "hooks.example.com"):
        assert default.refusal(host) is None, host
    assert default.refusal("hooks.example.com", ["93.184.215.14"]) is None
    # A name is checked on every address it resolves to.
    reason = default.refusal("rebind.example", ["93.184.215.14", "10.1.2.3"])
    assert reason is not None and "rebind.example resolves to 10.1.2.3, a private" in reason
    assert default.refusal("gone.example", []) is not None


def test_the_setting_adds_exceptions_and_a_list_without_public_allows_only_itself() -> None:
    loopback = outbound.parse("public,127.0.0.1")
    assert loopback.refusal("127.0.0.1") is None
    assert loopback.refusal("::ffff:127.0.0.1") is None
    assert loopback.refusal("8.8.8.8") is None
    assert loopback.refusal("127.0.0.2") is not None
    assert loopback.refusal("localhost") is not None  # names are listed by name
    assert outbound.parse("localhost").refusal("localhost", ["127.0.0.1"]) is None

    internal = outbound.parse("10.0.0.0/8,hooks.internal,.corp.example")
    assert internal.refusal("10.9.8.7") is None
    assert internal.refusal("hooks.internal") is None
    assert internal.refusal("corp.example") is None and internal.refusal("a.corp.example") is None
    assert internal.refusal("other.example") is None  # a name waits for its addresses…
    assert internal.refusal("other.example", ["10.1.1.1"]) is None
    reason = internal.refusal("other.example", ["8.8.8.8"])  # …public ones are not listed
    assert reason is not None and "`public`" in reason
    assert internal.refusal("169.254.169.254") is not None

    names = outbound.parse("hooks.example.com")  # only names: others can never pass
    assert names.refusal("other.example.com") is not None
    assert outbound.parse("*").refusal("169.254.169.254") is None


def test_check_url_is_a_422_naming_the_field() -> None:
    with pytest.raises(ApiError) as caught:
        outbound.check_url("http://169.254.169.254/latest", "body.callbackUrl", outbound.parse(""))
    assert caught.value.status == 422 and caught.value.extra["field"] == "body.callbackUrl"
    assert "metadata" in caught.value.message
    url = "https://hooks.example.com/x"
    assert outbound.check_url(url, "body.url", outbound.parse("")) == url


def test_dns_overrides_parse_and_bad_ones_stop_the_service() -> None:
    assert outbound.parse_overrides("a.example=10.1.2.3, A.example.=[::1],b.example=1.2.3.4") == {
        "a.example": ("10.1.2.3", "::1"),
        "b.example": ("1.2.3.4",),
    }
    for bad in ("a.example", "a.example=nowhere", "=1.2.3.4"):
        with pytest.raises(ValueError):
            outbound.parse_overrides(bad)
    done = subprocess.run(
        [sys.executable, "-m", "approvals", "serve", "--port", "9"],
        env={**os.environ, "APPROVALS_DNS_OVERRIDES": "a.example=nowhere"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "APPROVALS_DNS_OVERRIDES" in done.stderr


# --- the guarded connection, in process --------------------------------------------


class Recording(httpcore.AsyncNetworkBackend):
    """Records where connections were asked to go and never connects."""

    def __init__(self) -> None:
        self.hosts: list[str] = []

    async def connect_tcp(self, host: str, port: int, **_: Any) -> httpcore.AsyncNetworkStream:
        self.hosts.append(host)
        raise httpcore.ConnectError("not connecting in this test")


def test_the_backend_connects_to_the_checked_address_never_to_the_name() -> None:
    guard = outbound.Guard(
        outbound.parse("127.0.0.1"),
        outbound.Resolver({"two.example": ("127.0.0.1",), "rebind.example": ("10.1.2.3",)}),
    )
    inner = Recording()
    backend = outbound.GuardedBackend(guard, inner)

    async def attempt(host: str) -> str:
        try:
            await backend.connect_tcp(host, 80, timeout=2)
        except outbound.Refused as exc:
            return f"refused: {exc}"
        except httpcore.ConnectError:
            return "connect"
        return "connected"

    async def main() -> list[str]:
        return [await attempt(h) for h in ("two.example", "rebind.example", "127.0.0.2")]

    two, rebind, other = asyncio.run(main())
    assert two == "connect"  # reached the socket layer, at the checked address
    assert "10.1.2.3" in rebind and "127.0.0.2" in other
    assert set(inner.hosts) == {"127.0.0.1"}  # the refused ones never reached the socket layer


def test_a_name_that_does_not_resolve_is_an_ordinary_connect_error() -> None:
    class Nowhere(outbound.Resolver):
        async def resolve(self, host: str, port: int) -> list[str]:
            raise OSError("no such name")

    inner = Recording()
    backend = outbound.GuardedBackend(outbound.Guard(outbound.parse(""), Nowhere()), inner)
    with pytest.raises(httpcore.ConnectError, match=r"cannot resolve gone\.example"):
        asyncio.run(backend.connect_tcp("gone.example", 80, timeout=2))
    assert inner.hosts == []


def test_an_overridden_name_keeps_its_host_header(receiver: Receiver) -> None:
    guard = outbound.Guard(
        outbound.parse("127.0.0.1"), outbound.Resolver({"loop.example": ("127.0.0.1",)})
    )

    async def main() -> int:
        async with outbound.client(guard, 5) as http:
            answer = await http.post(f"http://loop.example:{receiver.port}/hook", content=b"{}")
            return answer.status_code

    assert asyncio.run(main()) == 204
    (got,) = receiver.wait_for(1)
    assert got.headers["host"] == f"loop.example:{receiver.port}"


def _certificate(tmp: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for ``name`` (its own CA) and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / f"{name}.pem", tmp / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls_is_verified_for_the_name_while_connecting_to_the_checked_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = _certificate(tmp_path, "tls.example")
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trust the test certificate only
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append(self.headers["host"])
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    guard = outbound.Guard(
        outbound.parse("127.0.0.1"),
        outbound.Resolver({"tls.example": ("127.0.0.1",), "wrong.example": ("127.0.0.1",)}),
    )

    async def post(host: str) -> int | str:
        async with outbound.client(guard, 5) as http:
            try:
                return (await http.post(f"https://{host}:{port}/hook")).status_code
            except httpx.ConnectError as exc:
                return str(exc)

    try:
        assert asyncio.run(post("tls.example")) == 204
        assert seen == [f"tls.example:{port}"]
        mismatch = asyncio.run(post("wrong.example"))  # the certificate names tls.example
        assert isinstance(mismatch, str) and "certificate" in mismatch.lower()
    finally:
        server.shutdown()
        server.server_close()


# --- the service -------------------------------------------------------------------


def test_metadata_and_loopback_destinations_are_refused_at_creation_by_default(
    database: Database, make_server: Callable[..., Server], receiver: Receiver
) -> None:
    server = make_server(database, approvals_webhook_allowed_destinations="")
    admin = database.key("admin")
    refused = {
        "/v1/approvals": [
            ({"title": "t", "callbackUrl": "http://169.254.169.254/latest/meta-data"}, "metadata"),
            ({"title": "t", "callbackUrl": receiver.url}, "loopback"),
            ({"title": "t", "callbackUrl": "http://[::ffff:127.0.0.1]:9/x"}, "loopback"),
            ({"title": "t", "callbackUrl": "http://metadata.google.internal/x"}, "local name"),
        ],
        "/v1/webhooks": [
            ({"url": receiver.url, "eventTypes": ["*"]}, "loopback"),
            ({"url": "http://10.1.2.3/hook", "eventTypes": ["*"]}, "private"),
            ({"url": "http://localhost:9/hook", "eventTypes": ["*"]}, "local name"),
        ],
        "/v1/sources": [
            (
                {
                    "name": "s",
                    "dialect": "prism",
                    "url": "http://127.0.0.1:9/stream",
                    "token": "t",
                    "resumeUrl": "http://169.254.169.254/x",
                },
                "metadata",
            ),
        ],
    }
    fields = {"/v1/approvals": "body.callbackUrl", "/v1/webhooks": "body.url"}
    with server.client(admin) as http:
        for path, cases in refused.items():
            for body, what in cases:
                answer = http.post(path, json=body)
                assert answer.status_code == 422, (path, body, answer.text)
                error = answer.json()
                assert error["error"] == "invalid"
                assert error["field"] == fields.get(path, "body.resumeUrl")
                assert what in error["message"] and SETTING in error["message"]
        # Public names pass at creation (they are checked again after DNS when sent).
        ok = http.post(
            "/v1/webhooks", json={"url": "https://hooks.example.com/x", "eventTypes": ["none"]}
        )
        assert ok.status_code == 201, ok.text
        assert http.post(
            "/v1/approvals", json={"title": "t", "callbackUrl": "https://agent.example/resume"}
        ).status_code in (200, 201)
    assert database.scalar("SELECT count(*) FROM sources") == 0


def test_loopback_and_metadata_are_allowed_when_configured(
    database: Database, make_server: Callable[..., Server], receiver: Receiver
) -> None:
    server = make_server(
        database, approvals_webhook_allowed_destinations="127.0.0.1,169.254.0.0/16"
    )
    agent = database.key("events:write", name="agent")
    alice = database.key("approvals:resolve", name="alice")
    with server.client(agent) as http:
        metadata = http.post(
            "/v1/approvals", json={"title": "t", "callbackUrl": "http://169.254.169.254/x"}
        )
        assert metadata.status_code == 201, metadata.text  # allowed; never resolved here
        approval = http.post("/v1/approvals", json={"title": "t", "callbackUrl": receiver.url})
        assert approval.status_code == 201, approval.text
    with server.client(alice) as http:
        decided = http.post(
            f"/v1/approvals/{approval.json()['id']}/decision", json={"decision": "approve"}
        )
        assert decided.status_code == 200, decided.text
    (got,) = receiver.wait_for(1)
    assert got.path == "/hook" and b"approval.resolved" in got.body.encode()


def test_a_name_resolving_to_a_private_address_is_refused_when_sent(
    database: Database, make_server: Callable[..., Server], receiver: Receiver
) -> None:
    server = make_server(
        database,
        approvals_dns_overrides="rebind.example=10.1.2.3,loop.example=127.0.0.1",
        **FAST,
    )  # 127.0.0.1 is allowed (the tests' default), 10.1.2.3 is not
    admin = database.key("admin")
    with server.client(admin) as http:
        hooks = {}
        for name in ("rebind.example", "loop.example"):
            created = http.post(
                "/v1/webhooks",
                json={"url": f"http://{name}:{receiver.port}/hook", "eventTypes": ["*"]},
            )
            assert created.status_code == 201, created.text  # a name: accepted at creation
            hooks[name] = created.json()["id"]
        http.post("/v1/events", json={"type": "x"})
        (done,) = until(lambda: deliveries(http, hooks["loop.example"], status="succeeded"))
        (refused,) = until(lambda: deliveries(http, hooks["rebind.example"], status="failed"))
    assert refused["attempts"] == 1  # a refusal is not retried
    error = refused["lastError"]
    assert error.startswith("refused: rebind.example resolves to 10.1.2.3, a private address")
    assert SETTING in error and refused["lastStatusCode"] is None
    assert done["attempts"] == 1
    (got,) = receiver.wait_for(1)  # only the allowed name arrived
    assert got.headers["host"] == f"loop.example:{receiver.port}"
    time.sleep(0.5)
    assert len(receiver.received) == 1


def test_redirects_are_not_followed(
    database: Database, make_server: Callable[..., Server], receiver: Receiver
) -> None:
    elsewhere = Receiver().start()
    try:
        receiver.default = (302, {"location": elsewhere.url})
        server = make_server(database, approvals_webhook_schedule="0.2")
        admin = database.key("admin")
        with server.client(admin) as http:
            hook = http.post("/v1/webhooks", json={"url": receiver.url, "eventTypes": ["*"]})
            http.post("/v1/events", json={"type": "x"})
            (failed,) = until(lambda: deliveries(http, hook.json()["id"], status="failed"))
        assert failed["attempts"] == 2 and failed["lastStatusCode"] == 302
        assert "redirects are not followed" in failed["lastError"]
        assert elsewhere.url in failed["lastError"]
        assert len(receiver.received) == 2 and elsewhere.received == []
    finally:
        elsewhere.stop()


def test_a_huge_answer_is_read_only_up_to_the_bound(
    database: Database, make_server: Callable[..., Server]
) -> None:
    sent = {"bytes": 0}

    class Endless(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            self.send_response(200)
            self.send_header("content-length", str(10**12))
            self.end_headers()
            chunk = b"x" * 65536
            try:
                while sent["bytes"] < 2 * 10**9:  # ~forever, unless the client hangs up
                    self.wfile.write(chunk)
                    sent["bytes"] += len(chunk)
            except OSError:
                pass

        def log_message(self, *_: object) -> None:
            pass

    endless = ThreadingHTTPServer(("127.0.0.1", 0), Endless)
    threading.Thread(target=endless.serve_forever, daemon=True).start()
    try:
        server = make_server(database, approvals_webhook_timeout_seconds="20")
        admin = database.key("admin")
        url = f"http://127.0.0.1:{endless.server_address[1]}/hook"
        with server.client(admin) as http:
            hook = http.post("/v1/webhooks", json={"url": url, "eventTypes": ["*"]}).json()
            began = time.monotonic()
            http.post("/v1/events", json={"type": "x"})
            (done,) = until(lambda: deliveries(http, hook["id"], status="succeeded"), timeout=15)
        assert time.monotonic() - began < 15  # well inside the 20 s attempt limit
        assert done["lastStatusCode"] == 200 and done["attempts"] == 1
        # The worker hung up after its 64 KiB; socket buffers took a few MB at most.
        until(lambda: sent["bytes"] > 0)
        time.sleep(0.5)
        assert sent["bytes"] < 64 * 2**20
    finally:
        endless.shutdown()
        endless.server_close()


def test_sources_add_checks_the_resume_url(sqlite_database: Database) -> None:
    def add(name: str, resume: str, allowed: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                *(sys.executable, "-m", "approvals", "sources", "add", name),
                *("--dialect", "prism", "--url", "https://platform.example/stream"),
                *("--token", "t", "--resume-url", resume),
            ],
            env={**os.environ, "APPROVALS_DATABASE_URL": sqlite_database.url, SETTING: allowed},
            capture_output=True,
            text=True,
            timeout=60,
        )

    refused = add("one", "http://127.0.0.1:9/resume", "")
    assert refused.returncode == 2 and "loopback" in refused.stderr and SETTING in refused.stderr
    allowed = add("two", "http://127.0.0.1:9/resume", "127.0.0.1")
    assert allowed.returncode == 0, allowed.stderr
    assert sqlite_database.scalar("SELECT count(*) FROM sources") == 1
