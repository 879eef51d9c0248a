"""Posting events: storage, batches, idempotency and every rejected input."""

from __future__ import annotations

import json

import pytest

from conftest import Database, Server


def count(db: Database) -> int:
    return int(db.scalar("SELECT count(*) FROM events"))


def test_post_one_event_answers_201_with_canonical_json(server: Server) -> None:
    key = server.db.key("events:write")
    body = {
        "type": "tool_call",
        "category": "tool_use",
        "title": "Calling post_ads",
        "detail": {"tool": "post_ads", "arguments": {"count": 5}},
        "agentId": "dep_7xK9s2",
        "threadId": "thr_1",
        "runId": "run_1",
        "costTokens": 120,
        "costUsd": 0.0012,
    }
    with server.client(key) as http:
        answer = http.post("/v1/events", json=body)
    assert answer.status_code == 201
    event = answer.json()
    assert event["id"].isdigit()
    for name, value in body.items():
        assert event[name] == value
    assert event["source"] == "api"
    assert event["createdAt"].endswith("Z")
    assert event["resolvedAt"] is None and event["resolvedBy"] is None


def test_batch_is_stored_in_order_with_increasing_ids(server: Server) -> None:
    key = server.db.key("events:write", "events:read")
    batch = [{"type": "token", "runId": "r", "title": str(i)} for i in range(50)]
    with server.client(key) as http:
        answer = http.post("/v1/events", json=batch)
        assert answer.status_code == 201
        stored = answer.json()
        ids = [int(e["id"]) for e in stored]
        assert ids == sorted(ids) and len(set(ids)) == 50
        assert [e["title"] for e in stored] == [str(i) for i in range(50)]
        fetched = http.get(f"/v1/events/{stored[7]['id']}").json()
    assert fetched == stored[7]


def test_same_external_id_and_source_is_stored_once(server: Server) -> None:
    key = server.db.key("events:write")
    event = {"type": "token", "source": "prism", "externalId": "evt_0193"}
    with server.client(key) as http:
        first = http.post("/v1/events", json=event).json()
        again = http.post("/v1/events", json={**event, "title": "changed"}).json()
        batch = http.post("/v1/events", json=[event, {**event, "externalId": "evt_0194"}]).json()
        other_source = http.post("/v1/events", json={**event, "source": "cerca"}).json()
    assert again == first
    assert batch[0] == first
    assert batch[1]["id"] != first["id"]
    assert other_source["id"] not in (first["id"], batch[1]["id"])
    assert count(server.db) == 3


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"{not json", 400, "body"),
        (b"", 400, "body"),
        (json.dumps({"title": "no type"}).encode(), 422, "body.type"),
        (json.dumps({"type": 5}).encode(), 422, "body.type"),
        (json.dumps({"type": "a b"}).encode(), 422, "body.type"),
        (json.dumps({"type": "x", "detail": "text"}).encode(), 422, "body.detail"),
        (json.dumps({"type": "x", "costTokens": 1.5}).encode(), 422, "body.costTokens"),
        (json.dumps({"type": "x", "costUsd": "1"}).encode(), 422, "body.costUsd"),
        (json.dumps({"type": "x", "createdAt": "yesterday"}).encode(), 422, "body.createdAt"),
        (json.dumps({"type": "x", "run_id": "r"}).encode(), 422, "body.run_id"),
        (json.dumps({"type": "x", "resolvedBy": "mallory"}).encode(), 422, "body.resolvedBy"),
        (json.dumps({"type": "x", "id": "99"}).encode(), 422, "body.id"),
        (json.dumps([]).encode(), 422, "body"),
        (json.dumps("text").encode(), 422, "body"),
        (json.dumps([{"type": "ok"}, {"type": "ok"}, {"nope": 1}]).encode(), 422, "body[2].nope"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_stores_nothing(
    server: Server, body: bytes, status: int, field: str
) -> None:
    key = server.db.key("events:write")
    with server.client(key) as http:
        answer = http.post("/v1/events", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == status, answer.text
    error = answer.json()
    assert error["error"] == "invalid"
    assert error["field"] == field
    assert field in error["message"]
    assert count(server.db) == 0


def test_body_over_the_limit_answers_413_and_stores_nothing(server: Server) -> None:
    key = server.db.key("events:write")
    big = [{"type": "token", "title": "x" * 9000} for _ in range(130)]  # > 1 MiB
    with server.client(key) as http:
        answer = http.post("/v1/events", json=big)
    assert answer.status_code == 413
    assert answer.json()["error"] == "too_large"
    assert count(server.db) == 0


def test_body_limit_is_configurable(database: Database, make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(database, approvals_max_body_bytes="200")
    key = database.key("events:write")
    with server.client(key) as http:
        assert http.post("/v1/events", json={"type": "a"}).status_code == 201
        answer = http.post("/v1/events", json={"type": "a", "title": "y" * 300})
    assert answer.status_code == 413


def test_get_event_answers_404_and_400(server: Server) -> None:
    key = server.db.key("events:read")
    with server.client(key) as http:
        missing = http.get("/v1/events/12345")
        malformed = http.get("/v1/events/abc")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert malformed.status_code == 400 and malformed.json()["error"] == "invalid"
