"""The agent SDK against a real ``approvals serve``: decisions, restarts, drops, events."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pydantic
import pytest
from standardwebhooks.webhooks import Webhook

from approvals.client import (
    Answered,
    Approvals,
    ApprovalsError,
    AsyncApprovals,
    CannotSerialize,
    Expired,
    InvalidWebhook,
    Rejected,
    verify_webhook,
)
from conftest import Database, Server, free_port
from reviewers import WAIT, Agent, make_agent


@pytest.fixture
def agent(sqlite_database: Database, make_server: Callable[..., Server]) -> Agent:
    return make_agent(make_server(sqlite_database, approvals_keepalive_seconds="1"))


@pytest.fixture
def any_agent(server: Server) -> Agent:
    """An agent on each database (SQLite, and PostgreSQL when configured)."""
    return make_agent(server)


class Proxy:
    """A TCP relay to a server whose connections the test can cut."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        self.swallow = 0  # answers to drop (the request still reaches the server)
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self.lock:
                self.sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, answers: bool) -> None:
        try:
            while data := source.recv(65536):
                if answers:
                    with self.lock:
                        if self.swallow > 0:
                            self.swallow -= 1
                            raise OSError("answer swallowed")
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def drop(self) -> None:
        """Cut every open connection (new ones still go through)."""
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.closed = True
        self.listener.close()
        self.drop()


@pytest.fixture
def proxy(agent: Agent) -> Iterator[Proxy]:
    relay = Proxy(agent.server.port)
    yield relay
    relay.close()


def _count(db: Database, sql: str, **params: Any) -> int:
    return int(db.scalar(sql, **params))


# -- the decorator --------------------------------------------------------------------


def test_approved_call_runs_with_the_reviewers_edited_arguments(agent: Agent) -> None:
    client = agent.client()
    calls: list[tuple[int, str]] = []

    @client.require_approval(title="Post {count} ads to {platform}?", timeout=60)
    def post_ads(count: int, platform: str = "meta") -> str:
        calls.append((count, platform))
        return f"posted {count} to {platform}"

    reviewer = agent.decide_later(decision="approve", arguments={"count": 2}, comment="fewer")
    assert post_ads(5) == "posted 2 to meta"
    reviewer.join(WAIT)
    assert calls == [(2, "meta")]
    (seen,) = reviewer.seen  # type: ignore[attr-defined]
    assert seen["title"] == "Post 5 ads to meta?"
    assert seen["tool"] == "post_ads"
    assert seen["arguments"] == {"count": 5, "platform": "meta"}
    assert seen["expiresAt"] is not None
    client.close()


def test_plain_approval_passes_the_original_objects(agent: Agent) -> None:
    client = agent.client()

    @dataclasses.dataclass
    class Target:
        table: str
        rows: int

    class Plan(pydantic.BaseModel):
        steps: list[str]
        when: datetime

    received: list[Any] = []

    @client.require_approval(title=lambda target, plan: f"Clean {target.table}?")
    def clean(target: Target, plan: Plan) -> None:
        received.extend([target, plan])

    target, plan = Target("sessions", 40), Plan(steps=["a"], when=datetime(2026, 1, 1, tzinfo=UTC))
    reviewer = agent.decide_later(decision="approve")
    clean(target, plan)
    reviewer.join(WAIT)
    (seen,) = reviewer.seen  # type: ignore[attr-defined]
    assert seen["title"] == "Clean sessions?"
    assert seen["arguments"] == {
        "target": {"table": "sessions", "rows": 40},
        "plan": {"steps": ["a"], "when": "2026-01-01T00:00:00Z"},
    }
    assert received[0] is target and received[1] is plan
    client.close()


def test_edited_arguments_are_checked_against_the_signature(agent: Agent) -> None:
    client = agent.client()
    calls: list[int] = []

    @client.require_approval
    def delete_rows(count: int) -> None:
        calls.append(count)

    reviewer = agent.decide_later(decision="approve", arguments={"count": "many"})
    with pytest.raises(TypeError, match=r"delete_rows\.count"):
        delete_rows(3)
    reviewer.join(WAIT)
    assert calls == []
    client.close()


def test_an_argument_that_is_not_json_is_refused_before_asking(agent: Agent) -> None:
    client = agent.client()

    @client.require_approval
    def send(payload: object) -> None:
        raise AssertionError("must not run")

    with pytest.raises(CannotSerialize, match="argument 'payload' \\(object\\)"):
        send(object())
    assert agent.server.db.scalar("SELECT count(*) FROM approvals") == 0
    client.close()


def test_rejected_raises_with_the_comment_and_reviewer(agent: Agent) -> None:
    client = agent.client()

    @client.require_approval(title="Drop {table}?")
    def drop(table: str) -> None:
        raise AssertionError("must not run")

    reviewer = agent.decide_later(decision="reject", comment="not on a Monday")
    with pytest.raises(Rejected) as caught:
        drop("users")
    reviewer.join(WAIT)
    assert caught.value.comment == "not on a Monday"
    assert caught.value.resolved_by == "reviewer"
    assert caught.value.decision.status == "rejected"
    client.close()


def test_answered_raises_with_the_answer(agent: Agent) -> None:
    client = agent.client()

    @client.require_approval
    def book(city: str) -> None:
        raise AssertionError("must not run")

    reviewer = agent.decide_later(decision="answer", answer="Lyon, not Paris")
    with pytest.raises(Answered) as caught:
        book("Paris")
    reviewer.join(WAIT)
    assert caught.value.answer == "Lyon, not Paris"
    client.close()


@pytest.mark.parametrize("on_timeout", ["reject", "approve"])
def test_expiry_follows_on_timeout(agent: Agent, on_timeout: str) -> None:
    client = agent.client()
    calls: list[int] = []

    @client.require_approval(timeout=1, on_timeout=on_timeout)
    def step(n: int) -> int:
        calls.append(n)
        return n

    if on_timeout == "reject":
        with pytest.raises(Expired) as caught:
            step(1)
        assert caught.value.decision.status == "expired"
        assert caught.value.resolved_by == "system:timeout"
        assert calls == []
    else:
        assert step(1) == 1
        assert calls == [1]
    client.close()


def test_a_sync_client_wraps_async_functions(agent: Agent) -> None:
    client = agent.client()

    @client.require_approval(title="Send {n}")
    async def send(n: int) -> int:
        return n * 10

    reviewer = agent.decide_later(decision="approve", arguments={"n": 4})
    assert asyncio.run(send(1)) == 40
    reviewer.join(WAIT)
    client.close()


# -- request_approval, wait, keys, runs -----------------------------------------------


def test_the_same_key_returns_the_same_approval(agent: Agent) -> None:
    client = agent.client()
    first = client.request_approval("Delete 40 rows?", tool="delete_rows", key="step-7", wait=False)
    again = client.request_approval("Delete 40 rows?", tool="delete_rows", key="step-7", wait=False)
    assert first.pending and again.approval_id == first.approval_id
    agent.decide(first.approval_id, decision="approve")
    decided = client.request_approval("Delete 40 rows?", key="step-7", timeout=5)
    assert decided.approval_id == first.approval_id
    assert decided.approved and decided.status == "approved"
    assert decided.resolved_by == "reviewer"
    assert client.wait(first.approval_id).status == "approved"
    assert agent.server.db.scalar("SELECT count(*) FROM approvals") == 1
    client.close()


def test_wait_returns_pending_at_the_callers_timeout(agent: Agent) -> None:
    client = agent.client()
    opened = client.request_approval("Later?", wait=False)
    assert client.wait(opened.approval_id, timeout=0.5).pending
    client.close()


def test_api_errors_carry_code_message_and_field(agent: Agent) -> None:
    client = agent.client()
    with pytest.raises(ApprovalsError) as caught:
        client.request_approval("", wait=False)
    assert caught.value.status == 422
    assert caught.value.error == "invalid"
    assert caught.value.field == "body.title"
    with pytest.raises(ApprovalsError) as missing:
        client.wait("apr_nope", timeout=2)
    assert missing.value.error == "not_found"
    client.close()
    with Approvals(agent.url, "wrong") as anonymous, pytest.raises(ApprovalsError) as denied:
        anonymous.request_approval("Hi?", wait=False)
    assert denied.value.error == "unauthorized"


def test_run_context_shares_ids_between_events_and_approvals(agent: Agent) -> None:
    client = agent.client(agent_id="agent-7")
    with client.run(thread_id="thr_1") as ids:
        client.emit("run.started", title="go")
        opened = client.request_approval("Go on?", wait=False)
        with client.run(run_id="run_inner"):
            inner = client.request_approval("Inner?", wait=False, agent_id="agent-8")
    assert client.flush(WAIT)
    assert ids.run_id and ids.run_id.startswith("run_")
    assert opened.raw["runId"] == ids.run_id
    assert opened.raw["threadId"] == "thr_1" and opened.raw["agentId"] == "agent-7"
    assert inner.raw["runId"] == "run_inner" and inner.raw["threadId"] == "thr_1"
    assert inner.raw["agentId"] == "agent-8"
    db = agent.server.db
    assert db.scalar("SELECT run_id FROM events WHERE type = 'run.started'") == ids.run_id
    client.close()


def test_waiting_survives_a_service_restart(
    any_agent: Agent, make_server: Callable[..., Server]
) -> None:
    agent = any_agent
    client = agent.client()
    result: list[Any] = []

    @client.require_approval(title="Deploy {version}?", timeout=120)
    def deploy(version: str) -> str:
        return f"deployed {version}"

    waiter = threading.Thread(target=lambda: result.append(deploy("1.2")), daemon=True)
    waiter.start()
    (approval,) = agent.pending()
    time.sleep(0.3)  # the client is now inside a long poll
    old = agent.server
    old.stop()
    replacement = Server(old.db, old.env, old.workdir, port=old.port)
    try:
        time.sleep(1.0)  # the client retries against a closed port meanwhile
        replacement.start()
        agent.server = replacement
        agent.decide(approval["id"], decision="approve")
        waiter.join(WAIT)
        assert result == ["deployed 1.2"]
    finally:
        replacement.stop(signal.SIGKILL)
        client.close()


def test_waiting_survives_a_network_drop(agent: Agent, proxy: Proxy) -> None:
    client = agent.client(proxy.url)
    result: list[Any] = []

    @client.require_approval
    def pay(amount: int) -> int:
        return amount

    waiter = threading.Thread(target=lambda: result.append(pay(30)), daemon=True)
    waiter.start()
    (approval,) = agent.pending()
    time.sleep(0.3)
    proxy.drop()
    time.sleep(0.3)
    proxy.drop()
    agent.decide(approval["id"], decision="approve")
    waiter.join(WAIT)
    assert result == [30]
    client.close()


# -- emit and events ------------------------------------------------------------------


def test_emit_while_the_service_is_down_stores_every_event_once(
    database: Database, tmp_path: Any
) -> None:
    port = free_port()
    key = database.key(name="agent")
    client = Approvals(f"http://127.0.0.1:{port}", key)
    for n in range(250):
        client.emit("tool.called", title=f"call {n}", detail={"n": n}, run_id="run_e")
    assert not client.flush(timeout=0.5)
    server = Server(database, {}, tmp_path, port=port)
    relay: Proxy | None = None
    try:
        server.start()
        assert client.flush(WAIT)
        client.close()
        # Answers lost after the service stored the batch: the retry stores nothing twice.
        relay = Proxy(port)
        relay.swallow = 2
        lossy = Approvals(relay.url, key)
        for n in range(250, 300):
            lossy.emit("tool.called", title=f"call {n}", detail={"n": n}, run_id="run_e")
        assert lossy.flush(WAIT)
        lossy.close()
        assert relay.swallow == 0
    finally:
        if relay is not None:
            relay.close()
        server.stop(signal.SIGKILL)
    count = "SELECT count(*) FROM events WHERE type = 'tool.called'"
    assert _count(database, count) == 300
    distinct = "SELECT count(DISTINCT external_id) FROM events WHERE type = 'tool.called'"
    assert _count(database, distinct) == 300


def test_a_full_buffer_drops_the_oldest_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    client = Approvals(f"http://127.0.0.1:{free_port()}", "k", buffer=10)
    with caplog.at_level(logging.WARNING, logger="approvals.client"):
        for n in range(125):
            client.emit("tick", detail={"n": n})
    assert client.dropped >= 15  # the sender holds at most one batch in flight
    assert "dropped" in caplog.text
    client.close(timeout=0.2)


def test_emit_refuses_unknown_fields_and_unserialisable_values() -> None:
    client = Approvals("http://127.0.0.1:9", "k")
    with pytest.raises(TypeError, match="'colour' is not an event field"):
        client.emit("tick", colour="red")
    with pytest.raises(TypeError):
        client.emit("tick", detail={"x": object()})
    client.close(timeout=0.1)


def test_events_resume_after_a_drop_without_gaps_or_repeats(agent: Agent, proxy: Proxy) -> None:
    client = agent.client(proxy.url)
    seen: list[dict[str, Any]] = []
    stream = client.events(run_id="run_s", history=True)
    with agent.server.client(agent.key) as http:
        for n in range(3):
            http.post("/v1/events", json={"type": "step", "runId": "run_s", "title": str(n)})
        seen += [next(stream) for _ in range(3)]
        proxy.drop()
        for n in range(3, 6):
            http.post("/v1/events", json={"type": "step", "runId": "run_s", "title": str(n)})
        seen += [next(stream) for _ in range(3)]
    assert [e["title"] for e in seen] == [str(n) for n in range(6)]
    ids = [int(e["id"]) for e in seen]
    assert ids == sorted(set(ids))
    stream.close()  # type: ignore[attr-defined]
    client.close()


def test_verify_webhook_accepts_a_genuine_delivery_only() -> None:
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = json.dumps({"type": "approval.resolved", "id": "7"})
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(time.time())),
        "webhook-signature": Webhook(secret).sign("msg_1", datetime.now(UTC), body),
    }
    assert verify_webhook(secret, body, headers) == {"type": "approval.resolved", "id": "7"}
    with pytest.raises(InvalidWebhook):
        verify_webhook(secret, body.replace("7", "8"), headers)
    with pytest.raises(InvalidWebhook):
        verify_webhook(secret, body, {**headers, "webhook-timestamp": "1"})


def test_importing_the_client_loads_no_server_dependency() -> None:
    code = (
        "import sys, approvals.client\n"
        "heavy = [m for m in ('litestar', 'sqlalchemy', 'sqlmodel', 'jinja2', 'alembic',"
        " 'uvicorn', 'typer') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- the async client -----------------------------------------------------------------


def test_async_decorator_outcomes(agent: Agent) -> None:
    async def scenario() -> None:
        async with AsyncApprovals(agent.url, agent.key) as client:

            @client.require_approval(title="Refund {amount}?", timeout=60)
            async def refund(amount: int) -> int:
                return amount

            reviewer = agent.decide_later(decision="approve", arguments={"amount": 7})
            assert await refund(70) == 7
            reviewer.join(WAIT)

            reviewer = agent.decide_later(decision="reject", comment="no")
            with pytest.raises(Rejected, match="no"):
                await refund(1)
            reviewer.join(WAIT)

            reviewer = agent.decide_later(decision="answer", answer="ask finance")
            with pytest.raises(Answered):
                await refund(2)
            reviewer.join(WAIT)

            @client.require_approval(timeout=1, on_timeout="approve")
            async def nudge() -> str:
                return "nudged"

            assert await nudge() == "nudged"

            @client.require_approval(timeout=1)
            async def shove() -> str:
                return "shoved"

            with pytest.raises(Expired):
                await shove()

    asyncio.run(scenario())


def test_async_key_wait_and_errors(agent: Agent) -> None:
    async def scenario() -> None:
        async with AsyncApprovals(agent.url, agent.key) as client:
            first = await client.request_approval("Go?", key="k-1", wait=False)
            again = await client.request_approval("Go?", key="k-1", wait=False)
            assert again.approval_id == first.approval_id
            waiting = asyncio.ensure_future(client.wait(first.approval_id, timeout=WAIT))
            await asyncio.to_thread(agent.decide, first.approval_id, decision="approve")
            assert (await waiting).approved
            with pytest.raises(ApprovalsError, match="not_found"):
                await client.wait("apr_nope")
        with pytest.raises(TypeError):
            AsyncApprovals(agent.url).require_approval(lambda: None)

    asyncio.run(scenario())


def test_async_waiting_survives_a_network_drop(agent: Agent, proxy: Proxy) -> None:
    async def scenario() -> None:
        async with AsyncApprovals(proxy.url, agent.key) as client:
            opened = await client.request_approval("Go?", wait=False)
            waiting = asyncio.ensure_future(client.wait(opened.approval_id, timeout=WAIT))
            await asyncio.sleep(0.3)
            proxy.drop()
            await asyncio.sleep(0.3)
            await asyncio.to_thread(agent.decide, opened.approval_id, decision="reject")
            assert (await waiting).status == "rejected"

    asyncio.run(scenario())


def test_async_emit_down_then_up_and_events(database: Database, tmp_path: Any) -> None:
    port = free_port()
    key = database.key(name="agent")
    server = Server(database, {}, tmp_path, port=port)

    async def scenario() -> None:
        async with AsyncApprovals(f"http://127.0.0.1:{port}", key) as client:
            with client.run("run_a"):
                for n in range(120):
                    client.emit("tool.called", detail={"n": n})
            assert not await client.flush(timeout=0.3)
            await asyncio.to_thread(server.start)
            assert await client.flush(WAIT)
            got = []
            async for event in client.events(run_id="run_a", history=True):
                got.append(event)
                if len(got) == 120:
                    break
            assert [e["detail"]["n"] for e in got] == list(range(120))

    try:
        asyncio.run(scenario())
    finally:
        server.stop(signal.SIGKILL)
    assert _count(database, "SELECT count(*) FROM events WHERE run_id = 'run_a'") == 120


def test_async_pending_and_inbox_follow_the_queue(any_agent: Agent) -> None:
    agent = any_agent

    async def scenario() -> None:
        async with AsyncApprovals(agent.url, agent.key) as client:
            ids = [
                (
                    await client.request_approval(f"Step {n}?", run_id="run_p", wait=False)
                ).approval_id
                for n in range(5)
            ]
            await client.request_approval("Elsewhere?", run_id="run_q", wait=False)
            listed = await client.pending(run_id="run_p", limit=2)  # three pages
            assert [a["id"] for a in listed] == ids
            with agent.client() as blocking:
                assert await asyncio.to_thread(blocking.pending, run_id="run_p", limit=2) == listed

            feed = client.inbox(run_id="run_p")
            changes = aiter(feed)
            snapshot = await anext(changes)
            assert snapshot.kind == "snapshot" and set(feed.pending) == set(ids)
            await asyncio.to_thread(agent.decide, ids[0], decision="approve")
            resolved = await anext(changes)
            assert (resolved.kind, resolved.approvals[0]["id"]) == ("approval.resolved", ids[0])
            assert set(feed.pending) == set(ids[1:])
            await changes.aclose()  # type: ignore[attr-defined]

            # Following again resumes after the last change seen: no second snapshot.
            later = await client.request_approval("Step 5?", run_id="run_p", wait=False)
            resumed = aiter(feed)
            opened = await anext(resumed)
            assert (opened.kind, opened.approvals[0]["id"]) == (
                "approval.opened",
                later.approval_id,
            )
            assert set(feed.pending) == {*ids[1:], later.approval_id}
            await resumed.aclose()  # type: ignore[attr-defined]

    asyncio.run(scenario())


def test_async_inbox_resumes_after_a_drop(agent: Agent, proxy: Proxy) -> None:
    async def scenario() -> None:
        async with AsyncApprovals(proxy.url, agent.key) as client:
            first = await client.request_approval("First?", wait=False)
            feed = client.inbox()
            changes = aiter(feed)
            snapshot = await anext(changes)
            assert [a["id"] for a in snapshot.approvals] == [first.approval_id]
            proxy.drop()
            second = await client.request_approval("Second?", wait=False)
            opened = await anext(changes)  # after a reconnect with Last-Event-ID
            assert (opened.kind, opened.approvals[0]["id"]) == (
                "approval.opened",
                second.approval_id,
            )
            assert set(feed.pending) == {first.approval_id, second.approval_id}
            await changes.aclose()  # type: ignore[attr-defined]

    asyncio.run(scenario())
