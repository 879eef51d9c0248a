"""Connectors against platform simulators over real HTTP: each dialect end to end."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from conftest import Database, Server, until
from receiver import Receiver
from simulators import Frame, Simulator

FAST = {"approvals_connector_silence_seconds": "3"}


def prism_frames() -> list[Frame]:
    run = {"run_id": "run_4mPx81", "thread_id": "thr_default_8a1"}
    return [
        Frame({**run, "delta": "Here are five directions"}, "token", "evt_0193"),
        Frame(
            {**run, "tool": "generate_video", "arguments": {"prompt": "..."}},
            "tool_call",
            "evt_0194",
        ),
        Frame(
            {**run, "tool": "generate_video", "result": {"status": "queued"}},
            "tool_result",
            "evt_0195",
        ),
        Frame(
            {**run, "summary": "About to post 5 ads to Meta. Approve?"},
            "steering_request",
            "evt_0196",
        ),
        Frame({**run, "status": "completed"}, "run_status", "evt_0197"),
    ]


def agent_event(n: int, kind: str, **extra: Any) -> Frame:
    data = {
        "id": f"inference-{n}" if kind.startswith("inference") else f"0e0c-{n}",
        "timestamp": f"2026-11-20T12:00:0{n}Z",
        "type": kind,
        "tool": "inference" if kind.startswith("inference") else "shell",
        "input_summary": "claude (chat)" if kind.startswith("inference") else "ls -la",
        "output_summary": None,
        "duration_ms": 12,
        "success": kind != "inference_error",
        "metadata": {},
        **extra,
    }
    return Frame(data, resume_key=data["id"])


def agent_events_frames() -> list[Frame]:
    usage = {
        "model_name": "m",
        "request_type": "chat",
        "status": "ok",
        "input_tokens": 100,
        "output_tokens": 20,
        "cost_usd": 0.0042,
    }
    return [
        agent_event(1, "command_start"),
        agent_event(2, "inference_complete", metadata=usage),
        agent_event(3, "inference_error", metadata={**usage, "status": "error"}),
    ]


def agui_frames() -> list[Frame]:
    run = "c1d2e3f4-5678-90ab-cdef-1234567890ab"
    return [
        Frame({"run_id": run}, "RUN_STARTED"),
        Frame({"run_id": run, "snapshot": {"steps": ["lookup"]}}, "STATE_SNAPSHOT"),
        Frame({"run_id": run}, "RUN_FINISHED"),
    ]


def cerca_frames() -> list[Frame]:
    def envelope(seq: int, kind: str) -> Frame:
        inner = {
            "agentId": "agent_abc123",
            "fleetId": "f1",
            "id": f"cev_{seq}",
            "orgId": "o1",
            "threadId": "thread_abc123",
            "timestamp": f"2026-11-20T12:00:0{seq}Z",
            "type": kind,
            "data": {"note": kind},
        }
        return Frame({"event": inner, "seq": seq}, kind, str(seq))

    return [
        envelope(1, "message.created"),
        envelope(2, "tool.started"),
        envelope(3, "tool.completed"),
    ]


def brainroad_frames() -> list[Frame]:
    def activity(n: int, **fields: Any) -> Frame:
        data = {
            "id": n,
            "agentId": "abc123",
            "eventType": "message.received",
            "category": "communication",
            "status": "completed",
            "title": f"New WhatsApp message {n}",
            "detail": {"from": "+1234567890"},
            "costTokens": None,
            "costUsd": None,
            "source": "webhook",
            "createdAt": "2026-03-09T12:00:00.000Z",
            "resolvedAt": None,
            "resolvedBy": None,
            **fields,
        }
        return Frame(data, "activity", resume_key=str(n))

    return [
        activity(40),
        activity(
            41, eventType="tool.executed", category="tool_use", costTokens=900, costUsd=0.0031
        ),
        activity(
            42,
            eventType="post.publish",
            category="social",
            status="pending_approval",
            title="Publish 3 posts to LinkedIn?",
        ),
    ]


DIALECT_CASES: dict[str, tuple[Callable[[], list[Frame]], list[str]]] = {
    "prism": (prism_frames, ["evt_0193", "evt_0194", "evt_0195", "evt_0196", "evt_0197"]),
    "agent-events": (agent_events_frames, ["0e0c-1", "inference-2", "inference-3"]),
    "agui": (agui_frames, [f"c1d2e3f4-5678-90ab-cdef-1234567890ab:{i}" for i in range(3)]),
    "cerca": (cerca_frames, ["cev_1", "cev_2", "cev_3"]),
    "brainroad": (brainroad_frames, ["40", "41", "42"]),
}


def simulator_for(dialect: str) -> Simulator:
    frames, _ = DIALECT_CASES[dialect]
    sim = Simulator(frames=frames())
    if dialect == "brainroad":
        sim.preamble = [
            Frame({"agentId": "abc123", "message": "Subscribed to events"}, "connected")
        ]
    if dialect == "agui":
        sim.close_after_all = True
    return sim.start()


@pytest.fixture
def simulators() -> Iterator[list[Simulator]]:
    started: list[Simulator] = []
    yield started
    for sim in started:
        sim.stop()


def add_source(http: httpx.Client, sim: Simulator, dialect: str, **extra: Any) -> dict[str, Any]:
    body = {
        "name": f"{dialect}-sim",
        "dialect": dialect,
        "url": sim.url(),
        "token": sim.token,
        **extra,
    }
    answer = http.post("/v1/sources", json=body)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def ingested(http: httpx.Client, name: str) -> list[dict[str, Any]]:
    return list(http.get("/v1/events", params={"source": name, "tail": "1000"}).json()["events"])


@pytest.mark.parametrize("dialect", sorted(DIALECT_CASES))
def test_each_dialect_is_ingested_once_across_drops_and_a_restart(
    dialect: str,
    sqlite_database: Database,
    make_server: Callable[..., Server],
    simulators: list[Simulator],
) -> None:
    sim = simulator_for(dialect)
    simulators.append(sim)
    sim.drop_after = 2  # the first connection drops mid-stream
    server = make_server(sqlite_database, **FAST)
    admin = sqlite_database.key("admin")
    expected = DIALECT_CASES[dialect][1]
    with server.client(admin) as http:
        source = add_source(http, sim, dialect)
        assert "token" not in source and source["resumeSecret"].startswith("whsec_")
        events = until(
            lambda: (
                len(ingested(http, source["name"])) == len(expected)
                and ingested(http, source["name"])
            )
        )
        assert [e["externalId"] for e in events] == expected
        assert {e["source"] for e in events} == {source["name"]}
        state = until(
            lambda: (
                (s := http.get(f"/v1/sources/{source['id']}").json())["eventsReceived"]
                == len(expected)
                and s
            )
        )
        assert "token" not in state
        assert "sim-token" not in json.dumps(http.get("/v1/sources").json())
    ids = sim.last_event_ids()
    assert len(ids) >= 2 and ids[0] is None
    if dialect != "agui":  # AG-UI events carry no ids: a run replays from its start
        assert ids[1] == DIALECT_CASES[dialect][0]()[1].key  # resumed after the 2 it got
        assert state["cursor"] == DIALECT_CASES[dialect][0]()[-1].key
    else:
        assert state["status"] == "finished"
    # A restart resumes from the stored cursor and stores nothing twice.
    server.stop()
    more = {
        "prism": Frame({"run_id": "run_4mPx81", "delta": "more"}, "token", "evt_0198"),
        "agent-events": agent_event(4, "command_complete"),
        "agui": None,
        "cerca": cerca_frames()[0].__class__(
            {
                "event": {
                    "id": "cev_4",
                    "threadId": "thread_abc123",
                    "type": "tool.started",
                    "timestamp": "2026-11-20T12:00:09Z",
                    "data": {},
                },
                "seq": 4,
            },
            "tool.started",
            "4",
        ),
        "brainroad": brainroad_frames()[0].__class__(
            {**json.loads(brainroad_frames()[0].encode().decode().split("data: ", 1)[1]), "id": 43},
            "activity",
            resume_key="43",
        ),
    }[dialect]
    if more is not None:
        sim.add(more)
    server.start()
    with server.client(admin) as http:
        total = len(expected) + (1 if more is not None else 0)
        if dialect == "agui":
            # A finished run is done; an update reconnects, the run replays and is recognised.
            http.patch(f"/v1/sources/{source['id']}", json={"token": sim.token})
            until(lambda: http.get(f"/v1/sources/{source['id']}").json()["status"] == "finished")
            until(lambda: len(sim.requests) >= 3)
        events = until(
            lambda: len(ingested(http, source["name"])) >= total and ingested(http, source["name"])
        )
        time.sleep(0.5)
        events = ingested(http, source["name"])
        assert len(events) == total
        assert len({e["externalId"] for e in events}) == total
    if dialect not in ("agui",):
        assert sim.last_event_ids()[-1] == DIALECT_CASES[dialect][0]()[-1].key


def test_prism_steering_request_opens_an_approval_and_the_decision_reaches_resume_url(
    database: Database, make_server: Callable[..., Server], simulators: list[Simulator]
) -> None:
    sim = simulator_for("prism")
    simulators.append(sim)
    receiver = Receiver().start()
    try:
        server = make_server(database, **FAST)
        admin = database.key("admin")
        alice = database.key("approvals:resolve", "approvals:read", name="alice")
        with server.client(admin) as http:
            source = add_source(http, sim, "prism", resumeUrl=receiver.url)
        with server.client(alice) as http:
            (approval,) = until(lambda: http.get("/v1/approvals").json()["approvals"])
            assert approval["title"] == "About to post 5 ads to Meta. Approve?"
            assert approval["runId"] == "run_4mPx81" and approval["source"] == "prism-sim"
            http.post(
                f"/v1/approvals/{approval['id']}/decision",
                json={"decision": "approve", "comment": "go", "arguments": {"count": 3}},
            )
        (request,) = receiver.wait_for(1)
        payload = Webhook(source["resumeSecret"]).verify(request.body, request.headers)
        data = payload["data"]
        assert data["upstreamEventId"] == "evt_0196"
        assert (data["runId"], data["threadId"]) == ("run_4mPx81", "thr_default_8a1")
        assert (data["decision"], data["comment"], data["arguments"]) == (
            "approve",
            "go",
            {"count": 3},
        )
        assert data["resolvedBy"] == "alice"
    finally:
        receiver.stop()


def test_brainroad_pending_approval_opens_an_approval(
    sqlite_database: Database, make_server: Callable[..., Server], simulators: list[Simulator]
) -> None:
    sim = simulator_for("brainroad")
    simulators.append(sim)
    server = make_server(sqlite_database, **FAST)
    admin = sqlite_database.key("admin")
    with server.client(admin) as http:
        add_source(http, sim, "brainroad")
        (approval,) = until(lambda: http.get("/v1/approvals").json()["approvals"])
        events = ingested(http, "brainroad-sim")
    assert approval["title"] == "Publish 3 posts to LinkedIn?"
    assert approval["agentId"] == "abc123"
    costly = next(e for e in events if e["externalId"] == "41")
    assert (costly["costTokens"], costly["costUsd"]) == (900, 0.0031)
    assert costly["category"] == "tool_use"


def test_unauthorised_upstream_fails_the_source_until_it_is_updated(
    sqlite_database: Database, make_server: Callable[..., Server], simulators: list[Simulator]
) -> None:
    sim = simulator_for("prism")
    simulators.append(sim)
    server = make_server(sqlite_database, **FAST)
    admin = sqlite_database.key("admin")
    with server.client(admin) as http:
        source = add_source(http, sim, "prism", token="wrong")
        failed = until(
            lambda: (
                (s := http.get(f"/v1/sources/{source['id']}").json())["status"] == "failed" and s
            )
        )
        assert "401" in failed["lastError"]
        tries = len(sim.requests)
        time.sleep(1.5)
        assert len(sim.requests) == tries  # no retrying a refused token
        http.patch(f"/v1/sources/{source['id']}", json={"token": sim.token})
        until(lambda: http.get(f"/v1/sources/{source['id']}").json()["eventsReceived"] == 5)


def test_server_errors_are_retried_with_backoff(
    sqlite_database: Database, make_server: Callable[..., Server], simulators: list[Simulator]
) -> None:
    sim = simulator_for("prism")
    simulators.append(sim)
    sim.status = 503
    server = make_server(sqlite_database, **FAST)
    admin = sqlite_database.key("admin")
    with server.client(admin) as http:
        source = add_source(http, sim, "prism")
        until(lambda: http.get(f"/v1/sources/{source['id']}").json()["status"] == "backoff")
        until(lambda: len(sim.requests) >= 2)
        sim.status = 200
        until(lambda: http.get(f"/v1/sources/{source['id']}").json()["eventsReceived"] == 5)


def test_bad_upstream_data_is_skipped_without_stopping_the_source(
    sqlite_database: Database, make_server: Callable[..., Server], simulators: list[Simulator]
) -> None:
    sim = Simulator(
        frames=[
            Frame("{not json", "token", "evt_1"),
            Frame({"run_id": "r"}, "mystery_without_id"),
            Frame("x" * (10 * 1024 * 1024), "token", "evt_2"),
            Frame({"run_id": "r", "delta": "fine"}, "token", "evt_3"),
        ]
    ).start()
    simulators.append(sim)
    # Not the 3 s of FAST: on a loaded machine the 10 MB frame can take longer than that to
    # arrive, and the reconnect it causes replays (and counts again) the frames after evt_1.
    server = make_server(sqlite_database, approvals_connector_silence_seconds="30")
    admin = sqlite_database.key("admin")
    with server.client(admin) as http:
        source = add_source(http, sim, "prism")
        state = until(
            lambda: (
                (s := http.get(f"/v1/sources/{source['id']}").json())["eventsReceived"] == 1 and s
            )
        )
        # Three bad frames; a reconnect on a loaded machine may replay the one without an id
        # (it cannot be a cursor) and the frames after it, which are skipped again.
        assert 3 <= state["eventsSkipped"] <= 5
        assert state["status"] == "connected"
        assert [e["externalId"] for e in ingested(http, "prism-sim")] == ["evt_3"]
    assert "skipped" in server.log_text()


@pytest.mark.parametrize(
    ("body", "field", "status"),
    [
        ({"dialect": "prism", "url": "http://x.test/e", "token": "t"}, "body.name", 422),
        (
            {"name": "a", "dialect": "slack", "url": "http://x.test/e", "token": "t"},
            "body.dialect",
            422,
        ),
        ({"name": "a", "dialect": "prism", "url": "x.test/e", "token": "t"}, "body.url", 422),
        ({"name": "a", "dialect": "prism", "url": "http://x.test/e"}, "body.token", 422),
        (
            {
                "name": "a",
                "dialect": "prism",
                "url": "http://x.test/e",
                "token": "t",
                "resumeUrl": "nope",
            },
            "body.resumeUrl",
            422,
        ),
        (
            {"name": "dup", "dialect": "prism", "url": "http://x.test/e", "token": "t"},
            "body.name",
            409,
        ),
    ],
)
def test_bad_sources_are_refused(
    server: Server, body: dict[str, Any], field: str, status: int
) -> None:
    admin = server.db.key("admin")
    with server.client(admin) as http:
        http.post(
            "/v1/sources",
            json={"name": "dup", "dialect": "prism", "url": "http://127.0.0.1:9/e", "token": "t"},
        )
        answer = http.post("/v1/sources", json=body)
        assert answer.status_code == status and answer.json()["field"] == field
        assert len(http.get("/v1/sources").json()["sources"]) == 1
        assert http.delete("/v1/sources/src_nope").status_code == 404


def test_a_silent_stream_is_treated_as_dead_and_reconnected(
    sqlite_database: Database, make_server: Callable[..., Server], simulators: list[Simulator]
) -> None:
    sim = simulator_for("prism")
    sim.keepalive = 3600  # no keepalives: after the events, nothing at all
    simulators.append(sim)
    server = make_server(sqlite_database, approvals_connector_silence_seconds="1")
    admin = sqlite_database.key("admin")
    with server.client(admin) as http:
        source = add_source(http, sim, "prism")
        until(lambda: http.get(f"/v1/sources/{source['id']}").json()["eventsReceived"] == 5)
        until(lambda: len(sim.requests) >= 2, timeout=10)
        state = http.get(f"/v1/sources/{source['id']}").json()
    assert sim.last_event_ids()[1] == "evt_0197"  # resumed where it was
    assert state["eventsReceived"] == 5


def test_cerca_history_is_asked_for_on_the_first_connection_only(
    sqlite_database: Database, make_server: Callable[..., Server], simulators: list[Simulator]
) -> None:
    sim = simulator_for("cerca")
    sim.drop_after = 2
    simulators.append(sim)
    server = make_server(sqlite_database, **FAST)
    admin = sqlite_database.key("admin")
    with server.client(admin) as http:
        add_source(http, sim, "cerca", history=True)
        until(lambda: len(sim.requests) >= 2)
    assert "history=true" in sim.requests[0]["path"]
    assert "history" not in sim.requests[1]["path"]
    assert sim.requests[1]["last-event-id"] == "2"
