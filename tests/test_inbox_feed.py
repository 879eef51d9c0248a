"""The inbox feed `GET /v1/approvals/stream` against real servers, on both databases."""

from __future__ import annotations

import json
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from conftest import Database, Server


@dataclass
class Message:
    id: str | None
    event: str
    data: Any


@dataclass
class Feed:
    """Reads the feed in a thread into a queue of messages."""

    base: str
    key: str
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    messages: queue.Queue[Message] = field(default_factory=queue.Queue)
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self._opened = threading.Event()
        self._closed = False
        self._response: httpx.Response | None = None
        threading.Thread(target=self._run, daemon=True).start()
        assert self._opened.wait(20), "the feed did not open"
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}", **self.headers}
        try:
            with (
                httpx.Client(base_url=self.base, timeout=httpx.Timeout(30, read=120)) as http,
                http.stream(
                    "GET", "/v1/approvals/stream", params=self.params, headers=headers
                ) as response,
            ):
                self._response = response
                response.raise_for_status()
                self._opened.set()
                fields: dict[str, str] = {}
                for line in response.iter_lines():
                    if line == "":
                        if "event" in fields:
                            data = json.loads(fields.get("data", "null"))
                            self.messages.put(Message(fields.get("id"), fields["event"], data))
                        fields = {}
                    elif not line.startswith(":"):
                        name, _, value = line.partition(":")
                        fields[name] = value[1:] if value.startswith(" ") else value
        except BaseException as exc:
            if not self._closed:
                self.error = exc
        finally:
            self._opened.set()

    def next(self, timeout: float = 20) -> Message:
        return self.messages.get(timeout=timeout)

    def until(self, predicate: Callable[[Message], bool], timeout: float = 60) -> list[Message]:
        """Every message up to and including the first that satisfies ``predicate``."""
        seen: list[Message] = []
        deadline = time.monotonic() + timeout
        while True:
            message = self.messages.get(timeout=max(deadline - time.monotonic(), 0.01))
            seen.append(message)
            if predicate(message):
                return seen

    def close(self) -> None:
        self._closed = True
        if self._response is not None:
            self._response.close()


def fold(messages: list[Message], pending: dict[str, Any] | None = None) -> dict[str, Any]:
    """The pending set a client keeps from the snapshot and the changes."""
    state = dict(pending or {})
    for message in messages:
        if message.event == "snapshot":
            state = {a["id"]: a for a in message.data["approvals"]}
        elif message.event in ("approval.opened", "approval.updated"):
            if message.data["status"] == "pending":
                state[message.data["id"]] = message.data
            else:
                state.pop(message.data["id"], None)
        elif message.event in ("approval.resolved", "approval.expired"):
            state.pop(message.data["id"], None)
    return state


def _open(http: httpx.Client, title: str, **extra: Any) -> dict[str, Any]:
    answer = http.post("/v1/approvals", json={"title": title, **extra})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def test_snapshot_then_each_change_in_log_order(server: Server) -> None:
    agent = server.db.key("events:write", "approvals:read", name="agent")
    alice = server.db.key("approvals:resolve", "approvals:read", name="alice")
    bob = server.db.key("approvals:resolve", "approvals:read", name="bob")
    admin = server.db.key("admin", name="root")
    with server.client(admin) as http:
        http.post(
            "/v1/policies", json={"tool": "deploy", "action": "require", "minApprovals": 2}
        ).raise_for_status()
    with server.client(agent) as http:
        first = _open(http, "Refund 40 EUR?")
        second = _open(http, "Email 300 customers?")
    with server.client(alice) as http:
        http.post(f"/v1/approvals/{first['id']}/decision", json={"decision": "approve"})
    feed = Feed(server.base, alice)
    try:
        connected = feed.next()
        assert connected.event == "connected"
        snap = feed.next()
        assert snap.event == "snapshot"
        assert [a["id"] for a in snap.data["approvals"]] == [second["id"]]
        head = server.db.scalar("SELECT max(id) FROM events")
        assert snap.id == str(head)
        with server.client(agent) as http:
            deploy = _open(http, "Deploy to prod?", detail={"tool": "deploy"})
            short = _open(http, "Quick one", timeoutSeconds=1)
        with server.client(alice) as http:
            http.post(f"/v1/approvals/{deploy['id']}/decision", json={"decision": "approve"})
        with server.client(bob) as http:
            http.post(f"/v1/approvals/{deploy['id']}/decision", json={"decision": "approve"})
            http.post(
                f"/v1/approvals/{second['id']}/decision",
                json={"decision": "reject", "comment": "too many"},
            )
        changes = feed.until(lambda m: m.event == "approval.expired")
        while len([m for m in changes if m.event == "approval.resolved"]) < 2:
            changes.append(feed.next())
        kinds = [(m.event, m.data["id"]) for m in changes]
        assert ("approval.opened", deploy["id"]) in kinds
        assert ("approval.opened", short["id"]) in kinds
        assert ("approval.updated", deploy["id"]) in kinds  # alice's vote, 1 of 2
        assert ("approval.resolved", deploy["id"]) in kinds
        assert ("approval.resolved", second["id"]) in kinds
        assert ("approval.expired", short["id"]) in kinds
        ids = [int(m.id or 0) for m in changes]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        for message in changes:  # each id is the position of the event that caused it
            event = httpx.get(
                f"{server.base}/v1/events/{message.id}",
                headers={"Authorization": f"Bearer {admin}"},
            ).json()
            assert event["approvalId"] == message.data["id"]
        vote = next(m for m in changes if m.event == "approval.updated")
        assert [v["by"] for v in vote.data["votes"]] == ["alice"]
        assert fold([snap, *changes]) == {}
    finally:
        feed.close()


def test_resume_sends_exactly_the_missed_changes(server: Server) -> None:
    agent = server.db.key("events:write", "approvals:read", name="agent")
    alice = server.db.key("approvals:resolve", "approvals:read", name="alice")
    with server.client(agent) as http:
        a = _open(http, "a")
    feed = Feed(server.base, alice)
    assert feed.next().event == "connected"
    snap = feed.next()
    feed.close()
    with server.client(agent) as http:
        b = _open(http, "b")
        c = _open(http, "c")
    with server.client(alice) as http:
        http.post(f"/v1/approvals/{a['id']}/decision", json={"decision": "reject"})
    resumed = Feed(server.base, alice, headers={"Last-Event-ID": snap.id or ""})
    try:
        assert resumed.next().event == "connected"
        missed = [resumed.next() for _ in range(3)]
        assert [(m.event, m.data["id"]) for m in missed] == [
            ("approval.opened", b["id"]),
            ("approval.opened", c["id"]),
            ("approval.resolved", a["id"]),
        ]
        with pytest.raises(queue.Empty):
            resumed.next(timeout=1.5)
        assert set(fold(missed, fold([snap]))) == {b["id"], c["id"]}
    finally:
        resumed.close()
    with_after = Feed(server.base, alice, params={"after": missed[0].id or ""})
    try:
        assert with_after.next().event == "connected"
        assert [with_after.next().data["id"] for _ in range(2)] == [c["id"], a["id"]]
    finally:
        with_after.close()
    bad = httpx.get(
        f"{server.base}/v1/approvals/stream",
        headers={"Authorization": f"Bearer {alice}", "Last-Event-ID": "x"},
        timeout=10,
    )
    assert bad.status_code == 400 and bad.json()["field"] == "Last-Event-ID"


def test_filters_and_decidable(server: Server) -> None:
    agent = server.db.key("events:write", "approvals:read", "approvals:resolve", name="agent")
    alice = server.db.key("events:write", "approvals:resolve", "approvals:read", name="alice")
    reader = server.db.key("approvals:read", name="reader")
    with server.client(agent) as http:
        own = _open(http, "mine", agentId="ag_1", detail={"tool": "sql"})
        other = _open(http, "other agent", agentId="ag_2", detail={"tool": "mail"})
    with server.client(alice) as http:
        theirs = _open(http, "alice asks", agentId="ag_1", detail={"tool": "sql"})

    def snapshot_ids(key: str, **params: str) -> list[str]:
        feed = Feed(server.base, key, params=params)
        try:
            assert feed.next().event == "connected"
            return [a["id"] for a in feed.next().data["approvals"]]
        finally:
            feed.close()

    assert snapshot_ids(agent, agent_id="ag_1") == [own["id"], theirs["id"]]
    assert snapshot_ids(agent, tool="mail") == [other["id"]]
    assert snapshot_ids(agent, agent_id="ag_1", tool="sql", run_id="none") == []
    # The requester may not decide its own requests; a reader may decide nothing.
    assert snapshot_ids(agent, decidable="true") == [theirs["id"]]
    assert snapshot_ids(alice, decidable="true") == [own["id"], other["id"]]
    assert snapshot_ids(reader, decidable="true") == []
    feed = Feed(server.base, alice, params={"decidable": "true"})
    try:
        feed.next(), feed.next()
        with server.client(alice) as http:
            _open(http, "alice again")
        with server.client(agent) as http:
            visible = _open(http, "for alice")
        assert feed.next().data["id"] == visible["id"]
    finally:
        feed.close()


def _concurrent(servers: list[Server], db: Database) -> None:
    """Four writers open and decide approvals through every instance while 20 follow."""
    agent = db.key("events:write", "approvals:read", name="agent")
    reviewer = db.key("approvals:resolve", "approvals:read", name="reviewer")
    rng = random.Random(7)
    feeds: list[tuple[Feed, dict[str, Any]]] = [
        (Feed(rng.choice(servers).base, reviewer), {}) for _ in range(14)
    ]
    errors: list[BaseException] = []

    def write(seed: int) -> None:
        pick = random.Random(seed)
        base = servers[seed % len(servers)].base
        try:
            with (
                httpx.Client(base_url=base, headers={"Authorization": f"Bearer {agent}"}) as a,
                httpx.Client(base_url=base, headers={"Authorization": f"Bearer {reviewer}"}) as r,
            ):
                opened: list[str] = []
                for n in range(15):
                    opened.append(_open(a, f"w{seed}-{n}")["id"])
                    if pick.random() < 0.6:
                        choice = opened.pop(pick.randrange(len(opened)))
                        r.post(f"/v1/approvals/{choice}/decision", json={"decision": "approve"})
        except BaseException as exc:
            errors.append(exc)

    writers = [threading.Thread(target=write, args=(seed,)) for seed in range(4)]
    for thread in writers:
        thread.start()
    # Six more join while the writers run: three fresh, three resuming from a snapshot
    # they took and dropped (the state they hold is that snapshot).
    for index in range(6):
        time.sleep(0.2)
        base = rng.choice(servers).base
        if index % 2:
            feeds.append((Feed(base, reviewer), {}))
            continue
        first = Feed(base, reviewer)
        assert first.next().event == "connected"
        snap = first.next()
        first.close()
        resumed = Feed(rng.choice(servers).base, reviewer, headers={"Last-Event-ID": snap.id or ""})
        feeds.append((resumed, fold([snap])))
    for thread in writers:
        thread.join(600)
        assert not thread.is_alive(), "a writer did not finish"
    assert not errors, errors
    head = int(db.scalar("SELECT max(id) FROM events"))
    with httpx.Client(base_url=servers[0].base, headers={"Authorization": f"Bearer {agent}"}) as h:
        queue_now = h.get("/v1/approvals", params={"limit": 500}).json()["approvals"]
    expected = {a["id"] for a in queue_now}
    assert len(feeds) == 20 and expected
    for feed, start in feeds:
        messages = _drain(feed, head)
        assert all(m.event != "snapshot" for m in messages[1:] if start), "a resume sent a snapshot"
        assert set(fold(messages, start)) == expected
        feed.close()


def _drain(feed: Feed, head: int) -> list[Message]:
    """Messages until the feed stands at ``head`` (every event here changes an approval).

    A feed resumed at ``head`` (it joined after the last write) stands there from its
    ``connected`` message, which names the position it resumes from.
    """
    seen: list[Message] = []
    while True:
        message = feed.next(timeout=60)
        seen.append(message)
        if message.event == "connected":
            subscription = message.data["subscription"]
            if subscription["origin"] == "live":
                continue  # its snapshot follows
            position = int(subscription["from"])
        else:
            position = int(message.id or 0)
        if position >= head:
            return seen


def test_many_writers_and_subscribers_agree_with_the_queue(server: Server) -> None:
    _concurrent([server], server.db)


@pytest.mark.postgres
def test_two_instances_on_postgres_agree_with_the_queue(
    postgres_database: Database, make_server: Callable[..., Server]
) -> None:
    servers = [make_server(postgres_database, approvals_keepalive_seconds="1") for _ in range(2)]
    _concurrent(servers, postgres_database)


def test_sdk_inbox_and_the_terminal_follow_the_feed(server: Server) -> None:
    import os
    import subprocess
    import sys

    from approvals.client import Approvals

    agent = server.db.key("events:write", "approvals:read", name="agent")
    alice = server.db.key("approvals:resolve", "approvals:read", name="alice")
    with server.client(agent) as http:
        first = _open(http, "Refund 40 EUR?")
    env = {**os.environ, "APPROVALS_URL": server.base, "APPROVALS_KEY": alice}
    terminal = subprocess.Popen(
        [sys.executable, "-m", "approvals", "pending", "--follow"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(line) for line in terminal.stdout or ()], daemon=True
    ).start()

    def screen_until(text: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if text in lines.get(timeout=max(deadline - time.monotonic(), 0.1)):
                return
        raise AssertionError(f"the terminal never showed {text!r}")

    try:
        with Approvals(url=server.base, key=alice) as client:
            feed = client.inbox()
            changes = iter(feed)
            snapshot = next(changes)
            assert snapshot.kind == "snapshot" and set(feed.pending) == {first["id"]}
            screen_until(first["id"])
            with server.client(agent) as http:
                second = _open(http, "Email 300 customers?")
            opened = next(changes)
            assert (opened.kind, opened.approvals[0]["id"]) == ("approval.opened", second["id"])
            assert set(feed.pending) == {first["id"], second["id"]}
            screen_until("2 pending")
            client.decide(first["id"], "reject", comment="no")
            resolved = next(changes)
            assert resolved.kind == "approval.resolved" and set(feed.pending) == {second["id"]}
            screen_until("1 pending")
    finally:
        terminal.terminate()
        terminal.wait(10)
