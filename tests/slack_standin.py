"""A Slack Web API stand-in on loopback, and interaction payloads signed the way Slack signs them.

It answers ``chat.postMessage``, ``chat.update``, ``chat.postEphemeral`` and ``views.open``
like Slack does (HTTP 200 with ``{"ok": true, ...}``; ``ok: false`` with an ``error`` code;
429 with ``Retry-After`` and ``{"ok": false, "error": "ratelimited"}``), records every call,
and checks the bot token.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode

TOKEN = "xoxb-test-token"
SIGNING_SECRET = "slack-signing-secret-for-tests"
METHODS = ("chat.postMessage", "chat.update", "chat.postEphemeral", "views.open")


@dataclass
class Call:
    """One Web API call the stand-in received."""

    method: str
    body: dict[str, Any]
    headers: dict[str, str]
    at: float
    answer: dict[str, Any] = field(default_factory=dict)


@dataclass
class SlackStandIn:
    """Scripted ``answers[method]`` (status, headers, body) first, then what Slack answers."""

    calls: list[Call] = field(default_factory=list)
    answers: dict[str, list[tuple[int, dict[str, str], dict[str, Any]]]] = field(
        default_factory=dict
    )
    port: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def start(self, port: int = 0) -> SlackStandIn:
        """Listen on 127.0.0.1 (a free port unless one is given)."""
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                raw = self.rfile.read(length).decode()
                kind = self.headers.get("content-type", "")
                body = json.loads(raw) if "json" in kind else dict(parse_qsl(raw))
                method = self.path.rsplit("/", 1)[-1]
                status, headers, answer = standin._answer(method, body, dict(self.headers))
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

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening (connections are refused afterwards)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        """The base URL for APPROVALS_SLACK_API_URL."""
        return f"http://127.0.0.1:{self.port}/api/"

    def _answer(
        self, method: str, body: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        call = Call(method, body, {k.lower(): v for k, v in headers.items()}, time.time())
        status, extra, answer = self._reply(method, body, headers)
        call.answer = answer
        with self._lock:
            self.calls.append(call)
        return status, extra, answer

    def _reply(
        self, method: str, body: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        with self._lock:
            scripted = self.answers.get(method)
            if scripted:
                return scripted.pop(0)
        auth = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        if auth != f"Bearer {TOKEN}":
            return 200, {}, {"ok": False, "error": "not_authed"}
        if method not in METHODS:
            return 200, {}, {"ok": False, "error": "unknown_method"}
        if method == "chat.postMessage":
            if not body.get("channel"):
                return 200, {}, {"ok": False, "error": "channel_not_found"}
            ts = f"{int(time.time())}.{next(self._ts):06d}"
            message = {"type": "message", "text": body.get("text"), "blocks": body.get("blocks")}
            return 200, {}, {"ok": True, "channel": body["channel"], "ts": ts, "message": message}
        if method == "chat.update":
            return 200, {}, {"ok": True, "channel": body["channel"], "ts": body["ts"]}
        if method == "chat.postEphemeral":
            return 200, {}, {"ok": True, "message_ts": f"{int(time.time())}.000001"}
        return 200, {}, {"ok": True, "view": {"id": "V0TEST", **(body.get("view") or {})}}

    def of(self, method: str, where: Callable[[Call], bool] = lambda c: True) -> list[Call]:
        """The calls of one method so far."""
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


def sign(
    body: str | bytes, timestamp: int | str | None = None, secret: str = SIGNING_SECRET
) -> dict[str, str]:
    """The headers Slack sends with a request body: ``v0=`` HMAC-SHA256 of ``v0:{ts}:{body}``."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    raw = body.encode() if isinstance(body, str) else body
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + raw, hashlib.sha256).hexdigest()
    return {
        "x-slack-request-timestamp": ts,
        "x-slack-signature": f"v0={digest}",
        "content-type": "application/x-www-form-urlencoded",
    }


def form(payload: dict[str, Any]) -> str:
    """An interaction body: the JSON payload in the form field ``payload``."""
    return urlencode({"payload": json.dumps(payload)})


def click(user: str, action: str, approval_id: str, channel: str = "C0APPROVALS") -> dict[str, Any]:
    """A ``block_actions`` payload: ``user`` pressed Approve or Reject on a message."""
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "team_id": "T0TEAM"},
        "team": {"id": "T0TEAM"},
        "channel": {"id": channel, "name": "approvals"},
        "container": {"type": "message", "channel_id": channel, "message_ts": "1.000001"},
        "trigger_id": f"trigger-{user}-{approval_id}",
        "response_url": "http://127.0.0.1:9/unused",
        "actions": [
            {
                "type": "button",
                "block_id": "decision",
                "action_id": action,
                "value": approval_id,
                "action_ts": str(time.time()),
            }
        ],
    }


def submission(user: str, approval_id: str, reason: str | None) -> dict[str, Any]:
    """A ``view_submission`` payload for the reject reason modal."""
    return {
        "type": "view_submission",
        "user": {"id": user},
        "team": {"id": "T0TEAM"},
        "view": {
            "id": "V0TEST",
            "callback_id": "reject_reason",
            "private_metadata": approval_id,
            "state": {
                "values": {"reason": {"reason": {"type": "plain_text_input", "value": reason}}}
            },
        },
    }
