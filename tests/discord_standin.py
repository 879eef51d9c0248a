"""A Discord REST API stand-in on loopback, and interactions signed the way Discord signs
them (Ed25519 over the timestamp and the body, with a test key pair).

It answers what the service calls, like Discord does: ``POST /channels/{id}/messages``
(the new message), ``PATCH /channels/{id}/messages/{id}`` (404 ``Unknown Message`` for a
message it never made), ``POST /users/@me/channels`` (a DM channel per user); 401 without
``Authorization: Bot TOKEN``; 400 for a message past Discord's limits. Scripted answers
(a 429 with ``Retry-After``, a 403) come first. Every call is recorded.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from nacl.encoding import HexEncoder
from nacl.signing import SigningKey

TOKEN = "discord-bot-token-for-tests"
KEY = SigningKey.generate()  # the application's key pair; Discord keeps the private half
PUBLIC_KEY = KEY.verify_key.encode(encoder=HexEncoder).decode()
MESSAGES = re.compile(r"/api/v10/channels/([0-9]+)/messages")
MESSAGE = re.compile(r"/api/v10/channels/([0-9]+)/messages/([0-9]+)")
DM = "/api/v10/users/@me/channels"
# Discord's limits on a message (it answers 400 "Invalid Form Body" past them).
LIMITS = {"title": 256, "description": 4096, "field name": 256, "field value": 1024}
EMBED_TOTAL = 6000
CONTENT = 2000
CUSTOM_ID = 100

Answer = tuple[int, dict[str, str], dict[str, Any]]


@dataclass
class Call:
    """One API call the stand-in received."""

    kind: str  # post, edit, dm, unknown
    method: str
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    at: float
    status: int = 0
    answer: dict[str, Any] = field(default_factory=dict)

    @property
    def channel(self) -> str:
        """The channel of a post or an edit."""
        match = MESSAGES.match(self.path)
        return match.group(1) if match else ""

    @property
    def message(self) -> str:
        """The message an edit changes."""
        match = MESSAGE.fullmatch(self.path)
        return match.group(2) if match else ""

    def text(self) -> str:
        """Everything a reader sees in the message: its text and its embeds."""
        return json.dumps([self.body.get("content"), self.body.get("embeds")], ensure_ascii=False)

    def buttons(self) -> list[dict[str, Any]]:
        """The buttons of the message."""
        return [b for row in self.body.get("components") or [] for b in row["components"]]


@dataclass
class DiscordStandIn:
    """Scripted ``answers[kind]`` (status, headers, body) first, then what Discord answers."""

    calls: list[Call] = field(default_factory=list)
    answers: dict[str, list[Answer]] = field(default_factory=dict)
    port: int = 0
    dms: dict[str, str] = field(default_factory=dict)  # user id -> their DM channel id
    made: set[tuple[str, str]] = field(default_factory=set)  # (channel, message) posted
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def start(self) -> DiscordStandIn:
        """Listen on 127.0.0.1 (a free port)."""
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self._handle("POST")

            def do_PATCH(self) -> None:
                self._handle("PATCH")

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("content-length", "0"))
                raw = self.rfile.read(length)
                body = json.loads(raw) if raw else {}
                status, headers, answer = standin._answer(
                    method, self.path, body, {k.lower(): v for k, v in self.headers.items()}
                )
                data = json.dumps(answer).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-type", "application/json")
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
    def url(self) -> str:
        """The base URL for APPROVALS_DISCORD_API_URL."""
        return f"http://127.0.0.1:{self.port}/api/v10"

    def snowflake(self) -> str:
        """A new id, as long as Discord's."""
        return str(1_300_000_000_000_000_000 + next(self._ids))

    def _answer(
        self, method: str, path: str, body: dict[str, Any], headers: dict[str, str]
    ) -> Answer:
        kind = "unknown"
        if method == "POST" and MESSAGES.fullmatch(path):
            kind = "post"
        elif method == "PATCH" and MESSAGE.fullmatch(path):
            kind = "edit"
        elif method == "POST" and path == DM:
            kind = "dm"
        call = Call(kind, method, path, body, headers, time.time())
        status, extra, answer = self._reply(call)
        call.status, call.answer = status, answer
        with self._lock:
            self.calls.append(call)
        return status, extra, answer

    def _reply(self, call: Call) -> Answer:
        with self._lock:
            scripted = self.answers.get(call.kind)
            if scripted:
                return scripted.pop(0)
        if call.headers.get("authorization") != f"Bot {TOKEN}":
            return 401, {}, {"message": "401: Unauthorized", "code": 0}
        if call.kind == "unknown":
            return 404, {}, {"message": "404: Not Found", "code": 0}
        if call.kind == "dm":
            user = str(call.body.get("recipient_id"))
            with self._lock:
                channel = self.dms.setdefault(user, self.snowflake())
            return 200, {}, {"id": channel, "type": 1, "recipients": [{"id": user}]}
        problem = too_long(call.body)
        if problem:
            return 400, {}, {"message": "Invalid Form Body", "code": 50035, "errors": problem}
        if call.kind == "post":
            message = self.snowflake()
            with self._lock:
                self.made.add((call.channel, message))
            return 200, {}, {"id": message, "channel_id": call.channel, **call.body}
        with self._lock:
            known = (call.channel, call.message) in self.made
        if not known:
            return 404, {}, {"message": "Unknown Message", "code": 10008}
        return 200, {}, {"id": call.message, "channel_id": call.channel, **call.body}

    def of(self, kind: str, where: Callable[[Call], bool] = lambda c: True) -> list[Call]:
        """The calls of one kind so far."""
        with self._lock:
            return [c for c in self.calls if c.kind == kind and where(c)]

    def wait_for(
        self,
        kind: str,
        count: int = 1,
        where: Callable[[Call], bool] = lambda c: True,
        timeout: float = 15,
    ) -> list[Call]:
        """Wait until ``count`` matching calls of ``kind`` arrived; return them."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.of(kind, where)
            if len(got) >= count:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"{kind}: got {len(got)} of {count}: {got}")
            time.sleep(0.05)


def too_long(body: dict[str, Any]) -> str:
    """What in a message is past Discord's limits ("" when nothing is)."""
    if len(body.get("content") or "") > CONTENT:
        return "content"
    for embed in body.get("embeds") or []:
        sizes = {
            "title": len(embed.get("title") or ""),
            "description": len(embed.get("description") or ""),
        }
        total = sum(sizes.values())
        for item in embed.get("fields") or []:
            for part in ("name", "value"):
                size = len(item.get(part) or "")
                if size > LIMITS[f"field {part}"] or size == 0:
                    return f"field {part}"
                total += size
        for name, size in sizes.items():
            if size > LIMITS[name]:
                return name
        if total > EMBED_TOTAL:
            return "embed total"
    for row in body.get("components") or []:
        for button in row.get("components") or []:
            if len(button.get("custom_id") or "") > CUSTOM_ID:
                return "custom_id"
    return ""


def sign(
    body: str | bytes, timestamp: int | str | None = None, key: SigningKey = KEY
) -> dict[str, str]:
    """The headers Discord sends with an interaction: the Ed25519 signature (hex) of the
    timestamp followed by the body."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    raw = body.encode() if isinstance(body, str) else body
    signature = key.sign(stamp.encode() + raw).signature.hex()
    return {
        "x-signature-ed25519": signature,
        "x-signature-timestamp": stamp,
        "content-type": "application/json",
    }


_interaction_ids = itertools.count(1)


def interaction_id() -> str:
    """A new interaction id."""
    return str(1_200_000_000_000_000_000 + next(_interaction_ids))


def ping() -> dict[str, Any]:
    """Discord checking the endpoint (when it is saved, and now and then)."""
    return {"id": interaction_id(), "type": 1, "application_id": "1100000000000000001"}


def click(
    user: str, custom_id: str, channel: str = "", in_dm: bool = False, message: str = "1"
) -> dict[str, Any]:
    """A ``MESSAGE_COMPONENT`` interaction: ``user`` pressed a button with ``custom_id`` on a
    message in a server channel (``member``) or a direct message (``user``)."""
    who: dict[str, Any] = (
        {"user": {"id": user, "username": f"user{user[-4:]}"}}
        if in_dm
        else {
            "guild_id": "1000000000000000001",
            "member": {"user": {"id": user, "username": f"user{user[-4:]}"}, "roles": []},
        }
    )
    return {
        "id": interaction_id(),
        "application_id": "1100000000000000001",
        "type": 3,
        "token": "interaction-token",
        "version": 1,
        "channel_id": channel or "1000000000000000002",
        "message": {"id": message, "channel_id": channel or "1000000000000000002"},
        "data": {"custom_id": custom_id, "component_type": 2},
        **who,
    }


def submission(
    user: str, approval_id: str, reason: str | None, from_message: bool = True
) -> dict[str, Any]:
    """A ``MODAL_SUBMIT`` interaction: the reject form sent with ``reason``."""
    payload: dict[str, Any] = {
        "id": interaction_id(),
        "application_id": "1100000000000000001",
        "type": 5,
        "token": "interaction-token",
        "version": 1,
        "guild_id": "1000000000000000001",
        "member": {"user": {"id": user}, "roles": []},
        "data": {
            "custom_id": f"reason:{approval_id}",
            "components": [
                {"type": 1, "components": [{"type": 4, "custom_id": "reason", "value": reason}]}
            ],
        },
    }
    if from_message:
        payload["message"] = {"id": "1", "channel_id": "1000000000000000002"}
    return payload
