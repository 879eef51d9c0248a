"""``POST /v1/events`` once the key is cached: the fast path answers as the documented route.

A key's first write is served by the Litestar route, which verifies and caches
the key; later writes with it take ``approvals.http.fastpath``. Every test
here makes a first write, then checks what later ones answer and store.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from litestar import post
from test_security import new_key

from approvals.core.config import Settings
from approvals.http import fastpath
from approvals.http.guard import Requires, requires
from approvals.main.app import create_app
from conftest import Database, Server

VOLATILE = {"date", "content-length"}


def test_cached_key_posts_answer_like_the_first_and_like_a_read(server: Server) -> None:
    key = server.db.key("events:write", "events:read")
    with server.client(key) as http:
        first = http.post("/v1/events", json={"type": "tick", "title": "one"})
        single = http.post("/v1/events", json={"type": "tick", "title": "two", "runId": "r1"})
        batch = http.post("/v1/events", json=[{"type": "tick"}, {"type": "tock"}])
        for answer in (first, single, batch):
            assert answer.status_code == 201, answer.text
            assert answer.headers["content-type"] == "application/json"
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        names = {n for n in first.headers if n not in VOLATILE}
        assert {n for n in single.headers if n not in VOLATILE} == names
        assert isinstance(single.json(), dict) and len(batch.json()) == 2
        assert list(single.json()) == list(first.json())  # the same fields, in the same order
        for event in [first.json(), single.json(), *batch.json()]:
            assert http.get(f"/v1/events/{event['id']}").json() == event
        assert single.json()["runId"] == "r1" and single.json()["source"] == "api"
        again = http.post(  # a repeated source and externalId answers the stored event
            "/v1/events", json={"type": "tick", "source": "s", "externalId": "x1"}
        )
        repeat = http.post("/v1/events", json={"type": "tock", "source": "s", "externalId": "x1"})
        assert repeat.json() == again.json()
    assert server.db.scalar("SELECT count(*) FROM events") == 5


def test_refusals_after_the_key_is_cached_are_the_documented_ones(
    database: Database, make_server: Callable[..., Server]
) -> None:
    server = make_server(database, approvals_max_body_bytes="2000")
    key = database.key("events:write")
    reader = database.key("events:read")
    with server.client(key) as http:
        assert http.post("/v1/events", json={"type": "tick"}).status_code == 201
        cases = [
            (http.post("/v1/events", content=b"{nope"), 400, "body"),
            (http.post("/v1/events", json={"type": 5}), 422, "body.type"),
            (http.post("/v1/events", json=[]), 422, "body"),
            (http.post("/v1/events", json={"type": "x", "colour": "red"}), 422, "body.colour"),
            (
                http.post(
                    "/v1/events", content=b'{"type":"x"}', headers={"Content-Type": "text/plain"}
                ),
                415,
                "Content-Type",
            ),
            (http.post("/v1/events", params={"dry": "1"}, json={"type": "x"}), 400, None),
            (http.post("/v1/events", json={"type": "x", "detail": "y" * 3000}), 413, None),
        ]
        for answer, status, field in cases:
            assert answer.status_code == status, answer.text
            assert answer.json()["error"] in ("invalid", "too_large"), answer.text
            if field is not None:
                assert answer.json()["field"] == field, answer.text
    with server.client(reader) as http:
        assert http.get("/v1/events", params={"tail": "1"}).status_code == 200  # now cached
        refused = http.post("/v1/events", json={"type": "tick"})
        assert refused.status_code == 403 and "'events:write'" in refused.json()["message"]
    assert database.scalar("SELECT count(*) FROM events") == 1


def test_a_cached_key_over_its_rate_gets_429_and_stores_nothing_more(
    database: Database, make_server: Callable[..., Server]
) -> None:
    server = make_server(database)
    key = new_key(database, "agent", "--scope", "events:write", "--rate", "1/s burst 3")
    before = database.scalar("SELECT count(*) FROM events")  # the key's audit event
    with server.client(key) as http:
        answers = [http.post("/v1/events", json={"type": "tick"}) for _ in range(6)]
    codes = [a.status_code for a in answers]
    assert codes[:3] == [201, 201, 201] and codes[3:] == [429, 429, 429], codes
    refused = answers[3]
    assert refused.json()["error"] == "rate_limited"
    assert "'agent'" in refused.json()["message"] and "1/s burst 3" in refused.json()["message"]
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["x-frame-options"] == "DENY"
    assert database.scalar("SELECT count(*) FROM events") == before + 3


def test_hsts_on_fast_posts_only_over_https_from_a_trusted_proxy(
    sqlite_database: Database, make_server: Callable[..., Server]
) -> None:
    server = make_server(sqlite_database, approvals_trusted_proxies="127.0.0.1")
    key = sqlite_database.key("events:write")
    with server.client(key) as http:
        assert http.post("/v1/events", json={"type": "tick"}).status_code == 201
        plain = http.post("/v1/events", json={"type": "tick"})
        secure = http.post(
            "/v1/events", json={"type": "tick"}, headers={"X-Forwarded-Proto": "https"}
        )
    assert "strict-transport-security" not in plain.headers
    assert secure.headers["strict-transport-security"].startswith("max-age=31536000")


def test_decisions_with_a_cached_key_answer_as_the_documented_route(server: Server) -> None:
    agent = server.db.key("events:write", name="agent")
    reviewer = server.db.key("approvals:resolve", "approvals:read", name="reviewer")
    with server.client(agent) as http:
        ids = [http.post("/v1/approvals", json={"title": f"t{n}"}).json()["id"] for n in range(4)]
    with server.client(reviewer) as http:
        first = http.post(f"/v1/approvals/{ids[0]}/decision", json={"decision": "approve"})
        cached = http.post(
            f"/v1/approvals/{ids[1]}/decision", json={"decision": "reject", "comment": "no"}
        )
        for answer in (first, cached):
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"] == "application/json"
            assert answer.headers["x-frame-options"] == "DENY"
            assert http.get(f"/v1/approvals/{answer.json()['id']}").json() == answer.json()
        assert cached.json()["status"] == "rejected" and cached.json()["resolvedBy"] == "reviewer"
        assert cached.json()["resolution"]["detail"]["comment"] == "no"
        again = http.post(f"/v1/approvals/{ids[1]}/decision", json={"decision": "approve"})
        assert again.status_code == 409 and again.json()["error"] == "conflict"
        missing = http.post("/v1/approvals/apr_nope/decision", json={"decision": "approve"})
        assert missing.status_code == 404 and "apr_nope" in missing.json()["message"]
        refusals = [
            (http.post(f"/v1/approvals/{ids[2]}/decision", json={"decision": "maybe"}), 422),
            (http.post(f"/v1/approvals/{ids[2]}/decision", json={"decision": "answer"}), 422),
            (http.post(f"/v1/approvals/{ids[2]}/decision", json={"decision": 1}), 422),
            (http.post(f"/v1/approvals/{ids[2]}/decision", content=b"[1"), 400),
        ]
        for answer, status in refusals:
            assert answer.status_code == status, answer.text
            assert answer.json()["error"] == "invalid" and answer.json()["field"].startswith("body")
        assert "must be one of" in refusals[0][0].json()["message"]
        assert http.get(f"/v1/approvals/{ids[2]}").json()["status"] == "pending"
        answered = http.post(f"/v1/approvals/{ids[3]}/decision", json={"decision": "approve"})
        assert answered.json()["status"] == "approved"
    with server.client(agent) as http:  # cached too, but without approvals:resolve
        refused = http.post(f"/v1/approvals/{ids[2]}/decision", json={"decision": "approve"})
        assert refused.status_code == 403 and "approvals:resolve" in refused.json()["message"]


def test_openings_with_a_cached_key_answer_as_the_documented_route(server: Server) -> None:
    agent = server.db.key("events:write", "approvals:read", name="agent")
    with server.client(agent) as http:
        first = http.post("/v1/approvals", json={"title": "first"})  # verifies and caches
        full = http.post(
            "/v1/approvals",
            json={
                "title": "Post 5 ads?",
                "detail": {"tool": "meta.post", "arguments": {"n": 5}},
                "runId": "r1",
                "threadId": "t1",
                "agentId": "ads",
                "timeoutSeconds": 600,
                "onTimeout": "approve",
                "externalId": "x1",
                "source": "agent",
            },
        )
        for answer in (first, full):
            assert answer.status_code == 201, answer.text
            assert answer.headers["content-type"] == "application/json"
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert http.get(f"/v1/approvals/{answer.json()['id']}").json() == answer.json()
        opened = full.json()
        assert opened["status"] == "pending" and opened["tool"] == "meta.post"
        assert opened["requestedBy"] == "agent" and opened["onTimeout"] == "approve"
        assert opened["expiresAt"] and opened["request"]["externalId"] == "x1"
        repeat = http.post(
            "/v1/approvals", json={"title": "again", "externalId": "x1", "source": "agent"}
        )
        assert repeat.status_code == 201 and repeat.json() == opened
        event = http.post(
            "/v1/events", json={"type": "tick", "source": "agent", "externalId": "x2"}
        ).json()
        taken = http.post(
            "/v1/approvals", json={"title": "t", "externalId": "x2", "source": "agent"}
        )
        assert taken.status_code == 409 and taken.json()["field"] == "body.externalId"
        assert f"event {event['id']}" in taken.json()["message"]
        refusals = [
            (http.post("/v1/approvals", json={"title": ""}), "body.title"),
            (http.post("/v1/approvals", json={"title": "t", "colour": "red"}), "body.colour"),
            (http.post("/v1/approvals", json={"title": "t", "timeoutSeconds": -1}), None),
            (
                http.post(
                    "/v1/approvals", json={"title": "t", "callbackUrl": "http://10.0.0.1/hook"}
                ),
                "body.callbackUrl",
            ),
        ]
        for answer, field in refusals:
            assert answer.status_code == 422, answer.text
            assert answer.json()["error"] == "invalid", answer.text
            if field is not None:
                assert answer.json()["field"] == field, answer.text
    assert server.db.scalar("SELECT count(*) FROM approvals") == 2


def test_the_fast_table_is_the_routes_declared_cached_with_their_scopes(tmp_path: Path) -> None:
    """The fast path serves exactly the routes whose guard is requires(..., cached=True),
    needing the scope that guard names: derived from the declarations, not written twice."""
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}"))
    declared = {}
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            for guard in handler.guards or []:
                if isinstance(guard, Requires) and guard.cached:
                    for method in handler.http_methods:
                        declared[f"{method} {route.path}"] = guard.scope
    assert app.fast is not None
    assert {name: r.scope for name, r in app.fast.routes.items()} == declared
    assert set(declared) == {
        "POST /v1/events",
        "POST /v1/approvals",
        "POST /v1/approvals/{approval_id:str}/decision",
    }
    # A route declared cached without a fast write, or the other way round, stops start-up.
    events = next(
        h for h in declared_handlers(app) if "/v1/events" in h.paths and "POST" in h.http_methods
    )
    with pytest.raises(RuntimeError, match="without a route declared cached"):
        fastpath.table([h for h in declared_handlers(app) if h is not events])
    fake = post("/v1/other", guards=[requires("events:write", cached=True)])(_noop)
    with pytest.raises(RuntimeError, match="has no fast write"):
        fastpath.table([*declared_handlers(app), fake])


def declared_handlers(app: Any) -> list[Any]:
    return [h for route in app.routes for h in getattr(route, "route_handlers", [])]


async def _noop() -> None:
    return None
