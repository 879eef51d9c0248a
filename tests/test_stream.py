"""The SSE stream: start positions, filters, keepalive, resume and concurrency."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from approvals.events.broker import WAKE_CHUNK
from conftest import Database, Server
from streams import Subscription


def post(server: Server, key: str, events: list[dict[str, object]]) -> list[dict[str, object]]:
    with server.client(key) as http:
        answer = http.post("/v1/events", json=events)
    assert answer.status_code == 201, answer.text
    return list(answer.json())


def ids(events: list[dict[str, object]]) -> list[int]:
    return [int(str(e["id"])) for e in events]


def test_connected_comes_first_with_a_retry_hint_and_the_subscription(server: Server) -> None:
    key = server.db.key()
    with Subscription(server.base, key, {"run_id": "r1,r2", "history": "true"}) as sub:
        (hello,) = sub.take(1)
    assert hello.event == "connected"
    assert hello.retry is not None and hello.retry > 0
    data = json.loads(hello.data)["subscription"]
    assert data["filters"] == {"run_id": ["r1", "r2"]}
    assert data["origin"] == "history"


def test_live_only_by_default(server: Server) -> None:
    key = server.db.key()
    post(server, key, [{"type": "old"}])
    with Subscription(server.base, key) as sub:
        sub.take(1)
        stored = post(server, key, [{"type": "new"}])
        (event,) = sub.events(1)
        assert event == stored[0]
        assert sub.quiet(0.3) == []


def test_history_tail_after_and_last_event_id(server: Server) -> None:
    key = server.db.key()
    stored = post(server, key, [{"type": "t", "title": str(i)} for i in range(10)])
    with Subscription(server.base, key, {"history": "true"}) as sub:
        assert sub.events(10) == stored
    with Subscription(server.base, key, {"tail": "3"}) as sub:
        assert sub.events(3) == stored[-3:]
        assert sub.quiet(0.2) == []
    with Subscription(server.base, key, {"after": stored[4]["id"]}) as sub:  # type: ignore[dict-item]
        assert sub.events(5) == stored[5:]
    # Last-Event-ID wins over after, history and tail.
    headers = {"Last-Event-ID": str(stored[7]["id"])}
    params = {"after": "0", "history": "true", "tail": "10"}
    with Subscription(server.base, key, params, headers) as sub:
        assert sub.events(2) == stored[8:]
        assert sub.quiet(0.2) == []


@pytest.mark.parametrize(
    ("param", "value", "field", "expected"),
    [
        ("thread_id", "th1", "threadId", {"th1"}),
        ("run_id", "r1,r3", "runId", {"r1", "r3"}),
        ("agent_id", "a2", "agentId", {"a2"}),
        ("source", "prism", "source", {"prism"}),
        ("category", "error,approval", "category", {"error", "approval"}),
        ("type", "tool_call", "type", {"tool_call"}),
        ("status", "pending_approval", "status", {"pending_approval"}),
    ],
)
def test_each_filter_applies_to_history_and_live(
    server: Server, param: str, value: str, field: str, expected: set[str]
) -> None:
    key = server.db.key()

    def batch(tag: str) -> list[dict[str, object]]:
        return [
            {
                "type": "token",
                "threadId": "th1",
                "runId": "r1",
                "agentId": "a1",
                "category": "output",
                "title": tag,
            },
            {
                "type": "tool_call",
                "threadId": "th2",
                "runId": "r2",
                "agentId": "a2",
                "category": "tool_use",
                "source": "prism",
                "title": tag,
            },
            {
                "type": "token",
                "threadId": "th3",
                "runId": "r3",
                "agentId": "a3",
                "category": "error",
                "status": "failed",
                "title": tag,
            },
            {
                "type": "steering_request",
                "threadId": "th4",
                "runId": "r4",
                "agentId": "a4",
                "category": "approval",
                "status": "pending_approval",
                "title": tag,
            },
        ]

    before = post(server, key, batch("history"))
    with Subscription(server.base, key, {param: value, "history": "true"}) as sub:
        wanted_before = [e for e in before if e[field] in expected]
        assert sub.events(len(wanted_before)) == wanted_before
        after = post(server, key, batch("live"))
        wanted_after = [e for e in after if e[field] in expected]
        assert sub.events(len(wanted_after)) == wanted_after
        assert sub.quiet(0.3) == []
    with server.client(key) as http:
        page = http.get("/v1/events", params={param: value, "tail": "100"}).json()
    assert page["events"] == wanted_before + wanted_after


def test_keepalive_comments_arrive_on_a_quiet_stream(server: Server) -> None:
    key = server.db.key()
    with Subscription(server.base, key) as sub:
        sub.take(1)
        time.sleep(2.5)  # keepalive is 1 s for this server
        assert sub.comments >= 2
        assert sub.quiet(0) == []  # comments are not dispatched as messages


@pytest.mark.parametrize(
    ("params", "headers", "field"),
    [
        ({}, {"Last-Event-ID": "evt_12"}, "Last-Event-ID"),
        ({}, {"Last-Event-ID": "-3"}, "Last-Event-ID"),
        ({"after": "x"}, {}, "after"),
        ({"tail": "many"}, {}, "tail"),
        ({"history": "perhaps"}, {}, "history"),
    ],
)
def test_malformed_start_answers_400_before_the_stream_opens(
    server: Server, params: dict[str, str], headers: dict[str, str], field: str
) -> None:
    key = server.db.key()
    with server.client(key) as http:
        answer = http.get(
            "/v1/events", params=params, headers={"Accept": "text/event-stream", **headers}
        )
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["error"] == "invalid"
    assert answer.json()["field"] == field


def test_json_page_mode(server: Server) -> None:
    key = server.db.key()
    stored = post(server, key, [{"type": "t", "title": str(i)} for i in range(150)])
    with server.client(key) as http:
        default = http.get("/v1/events").json()
        assert default["events"] == stored[-100:]
        assert default["nextCursor"] == stored[-1]["id"]
        tail = http.get("/v1/events", params={"tail": "5", "follow": "false"}).json()
        assert tail["events"] == stored[-5:]
        first = http.get("/v1/events", params={"after": "0", "limit": "60"}).json()
        assert first["events"] == stored[:60]
        second = http.get("/v1/events", params={"after": first["nextCursor"], "limit": "100"})
        assert second.json()["events"] == stored[60:150]
        empty = http.get("/v1/events", params={"after": second.json()["nextCursor"]}).json()
        assert empty["events"] == []
        assert empty["nextCursor"] == stored[-1]["id"]
        # follow=true streams even without the SSE Accept header.
        with http.stream("GET", "/v1/events", params={"follow": "true"}) as streaming:
            assert streaming.headers["content-type"].startswith("text/event-stream")


def test_resume_after_a_forced_disconnect_is_gapless(server: Server) -> None:
    key = server.db.key()
    writer_done = threading.Event()
    posted: list[dict[str, object]] = []

    def writer() -> None:
        with server.client(key) as http:
            for i in range(60):
                posted.extend(
                    http.post("/v1/events", json={"type": "tick", "title": str(i)}).json()
                    for _ in [0]
                )
                time.sleep(0.005)
        writer_done.set()

    received: list[dict[str, object]] = []
    with Subscription(server.base, key, {"history": "true"}) as sub:
        thread = threading.Thread(target=writer)
        thread.start()
        received.extend(sub.events(15, timeout=20))
    # Disconnected while the writer keeps appending.
    last = str(received[-1]["id"])
    with Subscription(server.base, key, headers={"Last-Event-ID": last}) as sub:
        thread.join()
        assert writer_done.is_set()
        received.extend(sub.events(60 - 15, timeout=20))
        assert sub.quiet(0.3) == []
    assert received == posted


def _concurrent_writers(
    servers: list[Server], key: str, threads: int, per_thread: int
) -> list[dict[str, object]]:
    stored: list[dict[str, object]] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        target = servers[n % len(servers)]
        with target.client(key) as http:
            for i in range(per_thread):
                body = [{"type": "w", "title": f"{n}-{i}-{j}"} for j in range(1 + i % 3)]
                answer = http.post("/v1/events", json=body)
                assert answer.status_code == 201
                with lock:
                    stored.extend(answer.json())

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return stored


def _check_identical(
    live: Subscription, servers: list[Server], key: str, stored: list[dict[str, object]]
) -> None:
    total = len(stored)
    seen_live = live.events(total, timeout=60)
    assert sorted(ids(seen_live)) == ids(seen_live), "ids must strictly increase"
    assert len(set(ids(seen_live))) == total
    assert {e["id"] for e in seen_live} == {e["id"] for e in stored}
    for resume_from in servers:
        middle = str(seen_live[total // 3]["id"])
        with Subscription(resume_from.base, key, headers={"Last-Event-ID": middle}) as again:
            assert again.events(total - total // 3 - 1, timeout=60) == seen_live[total // 3 + 1 :]
            assert again.quiet(0.3) == []


def test_concurrent_writers_with_a_live_subscriber_and_a_resumer(server: Server) -> None:
    key = server.db.key()
    with Subscription(server.base, key) as live:
        live.take(1)
        stored = _concurrent_writers([server], key, threads=8, per_thread=25)
        _check_identical(live, [server], key, stored)


def test_hundreds_of_subscribers_each_get_every_event_once_in_order(server: Server) -> None:
    # More streams than the broker wakes in one loop turn, with writers posting while
    # wake-up passes are under way: every stream still sees exactly the stored events.
    key = server.db.key()
    count = WAKE_CHUNK * 2 + 45
    frame_id = re.compile(rb"(?:^|\n)id: (\d+)\n")

    async def scenario() -> tuple[list[list[int]], list[dict[str, object]]]:
        streams = []
        for _ in range(count):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(
                f"GET /v1/events HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {key}\r\n"
                "Accept: text/event-stream\r\n\r\n".encode()
            )
            streams.append((reader, writer))
        seen: list[bytes] = [b""] * count
        for n, (reader, _) in enumerate(streams):  # each has subscribed before anything is posted
            while b"event: connected" not in seen[n]:
                chunk = await asyncio.wait_for(reader.read(65536), 30)
                assert chunk, seen[n][:300]
                seen[n] += chunk
        written = asyncio.create_task(
            asyncio.to_thread(_concurrent_writers, [server], key, threads=8, per_thread=25)
        )

        async def read_all(n: int) -> None:
            reader = streams[n][0]
            deadline = time.monotonic() + 90
            while not (written.done() and len(frame_id.findall(seen[n])) >= len(written.result())):
                assert time.monotonic() < deadline, f"stream {n} fell silent"
                try:  # short waits: the posts may all have arrived before the writers return
                    chunk = await asyncio.wait_for(reader.read(1 << 20), 0.5)
                except TimeoutError:
                    continue
                assert chunk, "the server closed a stream"
                seen[n] += chunk

        readers = asyncio.gather(*(read_all(n) for n in range(count)))  # read while posted
        stored = await written
        await readers
        for _, writer in streams:
            writer.close()
        return [[int(i) for i in frame_id.findall(data)] for data in seen], stored

    received, stored = asyncio.run(scenario())
    expected = sorted(ids(stored))
    assert len(expected) > 200
    for got in received:
        assert got == expected, "a stream missed, repeated or reordered events"


@pytest.mark.postgres
def test_two_server_processes_on_postgres_agree_on_one_order(
    postgres_database: Database, make_server: Callable[..., Server]
) -> None:
    one = make_server(postgres_database)
    two = make_server(postgres_database)
    key = postgres_database.key()
    with Subscription(one.base, key) as live_one, Subscription(two.base, key) as live_two:
        live_one.take(1)
        live_two.take(1)
        stored = _concurrent_writers([one, two], key, threads=8, per_thread=25)
        _check_identical(live_one, [one, two], key, stored)
        seen_two = live_two.events(len(stored), timeout=60)
        assert ids(seen_two) == sorted(int(str(e["id"])) for e in stored)


def test_a_slow_subscriber_does_not_stall_a_fast_one(database: Database, make_server) -> None:  # type: ignore[no-untyped-def]
    # A small ring, so the stalled reader also has to fall back to the log.
    server = make_server(database, approvals_broker_buffer="100")
    key = database.key()
    stalled = socket.create_connection(("127.0.0.1", server.port))
    stalled.sendall(
        f"GET /v1/events?history=true HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    try:
        with Subscription(server.base, key) as fast:
            fast.take(1)
            payload = "p" * 4000
            stored: list[dict[str, object]] = []
            with server.client(key) as http:
                for _ in range(60):  # 6 MB: far more than the socket buffers hold
                    answer = http.post("/v1/events", json=[{"type": "big", "title": payload}] * 25)
                    stored.extend(answer.json())
            got = fast.events(len(stored), timeout=30)
            assert ids(got) == ids(stored)
        # The stalled reader, once it reads, still gets every event exactly once.
        stalled.settimeout(30)
        data = b""
        deadline = time.monotonic() + 60
        while data.count(b"\nid: ") + data.startswith(b"id: ") < len(stored):
            assert time.monotonic() < deadline, "stalled reader did not catch up"
            chunk = stalled.recv(1 << 20)
            assert chunk, "the server closed the stalled stream"
            data += chunk
        seen = [int(line.split(b": ")[1]) for line in data.split(b"\n") if line.startswith(b"id: ")]
        assert seen == ids(stored)
    finally:
        stalled.close()


def test_sigterm_with_open_streams_exits_within_seconds(server: Server) -> None:
    key = server.db.key()
    subs = [Subscription(server.base, key) for _ in range(3)]
    for sub in subs:
        sub.take(1)
    took = server.stop()
    for sub in subs:
        sub.close()
    assert took < 5
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.base + "/healthz", timeout=1)
