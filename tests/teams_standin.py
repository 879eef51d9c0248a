"""A Bot Framework stand-in on loopback, and activities signed the way the Bot Framework
signs them.

One HTTP server plays three parts:

- the OpenID metadata (``GET /openid``) and its keys (``GET /keys``): an RSA key made with
  ``cryptography``, endorsed for ``msteams``, that signs the test activities' JWTs;
- the login URL (``POST /login``): client credentials checked, a bearer token answered;
- the connector (``{url}/connector/``): ``POST …/v3/conversations/{id}/activities`` and
  ``PUT …/activities/{activity id}``, the bearer token checked, every call recorded;
  scripted answers (a 429 with ``Retry-After``) come first.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt
from joserfc.jwk import RSAKey

APP_ID = "6d1f3c2b-7a1e-4f3a-9b55-0c0ffee0a001"
APP_PASSWORD = "teams-client-secret-for-tests"
ISSUER = "https://api.botframework.com"
TOKEN = "bot-framework-access-token"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
KID = "standin-key-1"


def rsa_key(kid: str) -> RSAKey:
    """A fresh 2048-bit RSA key (made with cryptography) as a JWK with ``kid``."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return RSAKey.import_key(pem, {"kid": kid, "use": "sig"})


@dataclass
class Call:
    """One connector call the stand-in received."""

    method: str  # POST, PUT
    conversation: str  # decoded from the path
    ref: str | None  # the activity id in a PUT's path
    body: dict[str, Any]
    headers: dict[str, str]
    at: float
    answer: dict[str, Any] = field(default_factory=dict)

    @property
    def card(self) -> dict[str, Any]:
        """The Adaptive Card the activity carries."""
        [attachment] = self.body["attachments"]
        assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
        return dict(attachment["content"])


@dataclass
class TeamsStandIn:
    """Scripted ``answers[method]`` (status, headers, body) first, then what the Bot
    Framework answers."""

    key: RSAKey = field(default_factory=lambda: rsa_key(KID))
    calls: list[Call] = field(default_factory=list)
    logins: list[dict[str, str]] = field(default_factory=list)
    key_fetches: int = 0
    answers: dict[str, list[tuple[int, dict[str, str], dict[str, Any]]]] = field(
        default_factory=dict
    )
    port: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def start(self) -> TeamsStandIn:
        """Listen on a free port of 127.0.0.1."""
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._send(*standin._get(self.path))

            def do_POST(self) -> None:
                self._send(*standin._write("POST", self.path, self._body(), self._headers()))

            def do_PUT(self) -> None:
                self._send(*standin._write("PUT", self.path, self._body(), self._headers()))

            def _body(self) -> str:
                return self.rfile.read(int(self.headers.get("content-length", "0"))).decode()

            def _headers(self) -> dict[str, str]:
                return {k.lower(): v for k, v in self.headers.items()}

            def _send(self, status: int, headers: dict[str, str], answer: Any) -> None:
                data = json.dumps(answer).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-type", "application/json; charset=utf-8")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def service_url(self) -> str:
        """The connector's service URL, as activities carry it (with a trailing slash)."""
        return f"{self.base}/connector/"

    def settings(self) -> dict[str, str]:
        """The service's settings that point it at this stand-in."""
        return {
            "approvals_teams_app_id": APP_ID,
            "approvals_teams_app_password": APP_PASSWORD,
            "approvals_teams_openid_url": f"{self.base}/openid",
            "approvals_teams_login_url": f"{self.base}/login",
        }

    # -- the parts it plays -----------------------------------------------------------------

    def _get(self, path: str) -> tuple[int, dict[str, str], Any]:
        if path == "/openid":
            metadata = {
                "issuer": ISSUER,
                "authorization_endpoint": "https://invalid.example/authorize",
                "jwks_uri": f"{self.base}/keys",
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            }
            return 200, {}, metadata
        if path == "/keys":
            with self._lock:
                self.key_fetches += 1
            public = {**self.key.as_dict(private=False), "endorsements": ["msteams"]}
            return 200, {}, {"keys": [public]}
        return 404, {}, {"error": "not found"}

    def _write(
        self, method: str, path: str, raw: str, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], Any]:
        if method == "POST" and path == "/login":
            return self._login(dict(parse_qsl(raw)))
        prefix = "/connector/v3/conversations/"
        if not path.startswith(prefix):
            return 404, {}, {"error": "not found"}
        parts = path[len(prefix) :].split("/")
        if method == "POST" and len(parts) == 2 and parts[1] == "activities":
            ref = None
        elif method == "PUT" and len(parts) == 3 and parts[1] == "activities":
            ref = unquote(parts[2])
        else:
            return 404, {}, {"error": "not found"}
        call = Call(method, unquote(parts[0]), ref, json.loads(raw), headers, time.time())
        status, extra, answer = self._reply(call)
        call.answer = answer
        with self._lock:
            self.calls.append(call)
        return status, extra, answer

    def _login(self, form: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        with self._lock:
            self.logins.append(form)
        expected = {
            "grant_type": "client_credentials",
            "client_id": APP_ID,
            "client_secret": APP_PASSWORD,
            "scope": "https://api.botframework.com/.default",
        }
        if form != expected:
            return 401, {}, {"error": "invalid_client"}
        return 200, {}, {"token_type": "Bearer", "expires_in": 3599, "access_token": TOKEN}

    def _reply(self, call: Call) -> tuple[int, dict[str, str], Any]:
        with self._lock:
            scripted = self.answers.get(call.method)
            if scripted:
                return scripted.pop(0)
        if call.headers.get("authorization") != f"Bearer {TOKEN}":
            return 401, {}, {"error": {"code": "Unauthorized", "message": "bad token"}}
        if call.body.get("type") != "message":
            return 400, {}, {"error": {"code": "BadArgument", "message": "not a message"}}
        if call.method == "PUT":
            return 200, {}, {"id": call.ref}
        return 201, {}, {"id": f"1:activity-{next(self._ids)}"}

    # -- what the tests read -----------------------------------------------------------------

    def of(self, method: str, where: Callable[[Call], bool] = lambda c: True) -> list[Call]:
        """The connector calls of one method so far."""
        with self._lock:
            return [c for c in self.calls if c.method == method and where(c)]

    def wait_for(
        self,
        method: str,
        count: int = 1,
        where: Callable[[Call], bool] = lambda c: True,
        timeout: float = 15,
    ) -> list[Call]:
        """Wait until ``count`` matching calls of ``method`` arrived; return them."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.of(method, where)
            if len(got) >= count:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"{method}: got {len(got)} of {count}: {got}")
            time.sleep(0.05)

    # -- signing activities -------------------------------------------------------------------

    def token(
        self,
        service_url: str | None = None,
        key: RSAKey | None = None,
        kid: str | None = None,
        **claims: Any,
    ) -> str:
        """A Bot Framework JWT for an activity from ``service_url`` (this connector by
        default); ``claims`` override (``None`` drops one)."""
        now = int(time.time())
        body: dict[str, Any] = {
            "serviceurl": service_url or self.service_url,
            "nbf": now - 5,
            "exp": now + 3600,
            "iss": ISSUER,
            "aud": APP_ID,
        }
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        signer = key or self.key
        header = {"alg": "RS256", "typ": "JWT", "kid": kid or signer.kid or KID}
        return jwt.encode(header, body, signer)

    def headers(self, token: str | None = None) -> dict[str, str]:
        """The headers the Bot Framework sends with an activity."""
        return {
            "authorization": f"Bearer {token or self.token()}",
            "content-type": "application/json",
        }


def account(aad: str | None, name: str = "Reviewer") -> dict[str, Any]:
    """A Teams user as activities name one (``29:`` id and their AAD object id)."""
    out: dict[str, Any] = {"id": f"29:{uuid.uuid4().hex}", "name": name}
    if aad is not None:
        out["aadObjectId"] = aad
    return out


def installation(
    standin: TeamsStandIn,
    conversation: str,
    kind: str = "channel",
    user: str | None = None,
    action: str = "add",
) -> dict[str, Any]:
    """An ``installationUpdate``: the bot was added to (or removed from) a conversation."""
    return {
        "type": "installationUpdate",
        "action": action,
        "id": f"f:{uuid.uuid4().hex}",
        "timestamp": "2026-12-08T10:00:00.000Z",
        "serviceUrl": standin.service_url,
        "channelId": "msteams",
        "from": account(user, "Installer"),
        "conversation": {"id": conversation, "conversationType": kind, "tenantId": TENANT},
        "recipient": {"id": f"28:{APP_ID}", "name": "Approvals"},
        "channelData": {"tenant": {"id": TENANT}, "source": {"name": "message"}},
    }


def invoke(
    standin: TeamsStandIn,
    user: str | None,
    verb: str,
    approval_id: str,
    conversation: str = "19:approvals@thread.tacv2",
    digest: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """An ``adaptiveCard/action`` invoke: ``user`` pressed Approve or Reject on a card."""
    data: dict[str, Any] = {"approvalId": approval_id}
    if digest is not None:
        data["digest"] = digest
    if reason is not None:
        data["reason"] = reason
    return {
        "type": "invoke",
        "name": "adaptiveCard/action",
        "id": f"f:{uuid.uuid4().hex}",
        "timestamp": "2026-12-08T10:01:00.000Z",
        "serviceUrl": standin.service_url,
        "channelId": "msteams",
        "from": account(user),
        "conversation": {"id": conversation, "conversationType": "channel", "tenantId": TENANT},
        "recipient": {"id": f"28:{APP_ID}", "name": "Approvals"},
        "channelData": {"tenant": {"id": TENANT}},
        "replyToId": "1:activity-1",
        "value": {
            "action": {"type": "Action.Execute", "verb": verb, "data": data},
            "trigger": "manual",
        },
    }
