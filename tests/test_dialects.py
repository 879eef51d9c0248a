"""Dialect mappings as pure functions, on the platform documents' own example payloads."""

from __future__ import annotations

import json

import pytest

from approvals.connectors.dialects import DIALECTS, DialectError, Upstream


def msg(event: str, data: object, id: str | None = None, position: int = 0) -> Upstream:
    text = data if isinstance(data, str) else json.dumps(data)
    return Upstream(event=event, data=text, id=id, position=position)


def test_prism_examples() -> None:
    prism = DIALECTS["prism"]
    token = prism.to_events(
        msg(
            "token",
            {
                "run_id": "run_4mPx81",
                "thread_id": "thr_default_8a1",
                "delta": "Here are five directions",
            },
            "evt_0193",
        )
    )
    (event,) = token.events
    assert token.cursor == "evt_0193"
    assert (event["type"], event["externalId"], event["runId"], event["threadId"]) == (
        "token",
        "evt_0193",
        "run_4mPx81",
        "thr_default_8a1",
    )
    (call,) = prism.to_events(
        msg(
            "tool_call",
            {"run_id": "run_4mPx81", "tool": "generate_video", "arguments": {"prompt": "..."}},
            "evt_0194",
        )
    ).events
    assert call["detail"]["tool"] == "generate_video"
    assert call["detail"]["arguments"] == {"prompt": "..."}
    (ask,) = prism.to_events(
        msg(
            "steering_request",
            {"run_id": "run_4mPx81", "summary": "About to post 5 ads to Meta. Approve?"},
            "evt_0196",
        )
    ).events
    assert ask["status"] == "pending_approval"
    assert ask["title"] == "About to post 5 ads to Meta. Approve?"
    (status,) = prism.to_events(
        msg("run_status", {"run_id": "run_4mPx81", "status": "completed"}, "evt_0197")
    ).events
    assert status["status"] == "completed" and status["category"] == "lifecycle"


def test_prism_needs_ids_and_json() -> None:
    with pytest.raises(DialectError):
        DIALECTS["prism"].to_events(msg("token", {"delta": "x"}))
    with pytest.raises(DialectError):
        DIALECTS["prism"].to_events(msg("token", "{broken", "evt_1"))


def test_agent_events_costs_categories_and_arrays() -> None:
    dialect = DIALECTS["agent-events"]
    usage = {
        "model_name": "m",
        "request_type": "chat",
        "status": "error",
        "input_tokens": 120,
        "output_tokens": 30,
        "cost_usd": 0.01,
    }
    mapped = dialect.to_events(
        msg(
            "message",
            {
                "id": "inference-9",
                "timestamp": "2023-11-07T05:31:56Z",
                "type": "inference_error",
                "tool": "inference",
                "input_summary": "m (chat)",
                "output_summary": None,
                "duration_ms": 123,
                "success": False,
                "metadata": usage,
            },
        )
    )
    (event,) = mapped.events
    assert mapped.cursor == "inference-9"
    assert (event["costTokens"], event["costUsd"], event["category"]) == (150, 0.01, "error")
    assert event["createdAt"] == "2023-11-07T05:31:56Z"
    for kind in ("inference_rate_limited", "inference_budget_exceeded"):
        (limited,) = dialect.to_events(msg("message", {"id": "i", "type": kind})).events
        assert limited["category"] == "error"
    array = dialect.to_events(
        msg(
            "message",
            [
                {"id": "a", "type": "command_start", "tool": "shell"},
                {"id": "b", "type": "file_write"},
            ],
        )
    )
    assert [e["externalId"] for e in array.events] == ["a", "b"] and array.cursor == "b"
    with pytest.raises(DialectError):
        dialect.to_events(msg("message", {"type": "command_start"}))


def test_agui_ids_come_from_run_and_position_and_survive_a_replay() -> None:
    dialect = DIALECTS["agui"]
    run = "c1d2e3f4-5678-90ab-cdef-1234567890ab"
    stream = [
        ("RUN_STARTED", {"run_id": run}),
        ("STATE_SNAPSHOT", {"run_id": run, "snapshot": {}}),
        ("RUN_FINISHED", {"run_id": run}),
    ]
    first = [
        dialect.to_events(msg(kind, data, position=i)) for i, (kind, data) in enumerate(stream)
    ]
    replay = [
        dialect.to_events(msg(kind, data, position=i)) for i, (kind, data) in enumerate(stream)
    ]
    ids = [m.events[0]["externalId"] for m in first]
    assert ids == [f"{run}:0", f"{run}:1", f"{run}:2"]
    assert ids == [m.events[0]["externalId"] for m in replay]
    assert [m.end_of_run for m in first] == [False, False, True]
    assert first[2].events[0]["status"] == "completed"
    (error,) = dialect.to_events(msg("RUN_ERROR", {"runId": run}, position=3)).events
    assert error["category"] == "error"
    with pytest.raises(DialectError):
        dialect.to_events(msg("RUN_STARTED", {"snapshot": {}}))


def test_cerca_envelope() -> None:
    dialect = DIALECTS["cerca"]
    envelope = {
        "event": {
            "agentId": "agent_abc123",
            "fleetId": "f",
            "id": "ev_1",
            "orgId": "o",
            "threadId": "thread_abc123",
            "timestamp": "2026-11-20T12:00:00Z",
            "data": {"agent": {"configuration": {"approvals": {"tools": {}, "timeoutMs": 123}}}},
        },
        "seq": 123,
    }
    mapped = dialect.to_events(msg("agent.updated", envelope, "123"))
    (event,) = mapped.events
    assert mapped.cursor == "123"
    assert (event["externalId"], event["agentId"], event["threadId"]) == (
        "ev_1",
        "agent_abc123",
        "thread_abc123",
    )
    assert event["detail"]["seq"] == 123
    waiting = {
        "event": {
            "id": "ev_2",
            "type": "tool.approval",
            "status": "pending_approval",
            "data": {"tool": "send_email", "arguments": {"to": "x"}},
        },
        "seq": 124,
    }
    (ask,) = dialect.to_events(msg("message", waiting)).events
    assert ask["status"] == "pending_approval" and ask["detail"]["tool"] == "send_email"
    with pytest.raises(DialectError):
        dialect.to_events(msg("message", {"seq": 1}))


def test_brainroad_activity_maps_one_to_one() -> None:
    dialect = DIALECTS["brainroad"]
    assert dialect.to_events(msg("connected", {"agentId": "abc123"})).events == []
    activity = {
        "id": 42,
        "agentId": "abc123",
        "eventType": "message.received",
        "category": "communication",
        "status": "completed",
        "title": "New WhatsApp message from John",
        "detail": {"from": "+1234567890"},
        "costTokens": None,
        "costUsd": None,
        "source": "webhook",
        "createdAt": "2026-03-09T12:00:00.000Z",
        "resolvedAt": None,
        "resolvedBy": None,
    }
    mapped = dialect.to_events(msg("activity", activity))
    (event,) = mapped.events
    assert mapped.cursor == "42"
    assert (event["type"], event["category"], event["status"], event["title"]) == (
        "message.received",
        "communication",
        "completed",
        "New WhatsApp message from John",
    )
    assert event["externalId"] == "42" and "source" not in event
    assert event["detail"] == {"from": "+1234567890", "upstreamSource": "webhook"}
    pending = {
        **activity,
        "id": 43,
        "status": "pending_approval",
        "costTokens": 7,
        "costUsd": 0.5,
        "resolvedAt": "2026-03-09T12:01:00.000Z",
        "resolvedBy": "ops",
    }
    (ask,) = dialect.to_events(msg("activity", pending)).events
    assert ask["status"] == "pending_approval"
    assert (ask["costTokens"], ask["costUsd"], ask["resolvedBy"]) == (7, 0.5, "ops")
    with pytest.raises(DialectError):
        dialect.to_events(msg("activity", {**activity, "id": None}))
