"""The typed contract: a complete OpenAPI document, strict query strings, hostile input."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from conftest import Database, Server

SSE = {"Accept": "text/event-stream"}


@pytest.fixture
def document(sqlite_database: Database, make_server: Callable[..., Server]) -> dict[str, Any]:
    server = make_server(sqlite_database)
    answer = httpx.get(server.base + "/schema/openapi.json", timeout=30)
    assert answer.status_code == 200
    return dict(answer.json())


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if path.startswith("/v1/")
    ]


def test_document_is_openapi_31_with_a_bearer_scheme(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key from `approvals keys create NAME --scope S`.",
    }
    operations = _operations(document)
    assert len(operations) >= 20
    for path, method, operation in operations:
        where = f"{method.upper()} {path}"
        assert operation["security"] == [{"bearer": []}], where
        assert operation["operationId"][0].islower(), where
        assert operation["tags"], where
        for code in ("400", "401", "403"):
            error = operation["responses"][code]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/ErrorBody"}, where
        success = [code for code in operation["responses"] if code.startswith("2")]
        assert len(success) == 1, where


def test_every_body_and_parameter_is_typed(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    ids = {op["operationId"]: op for _, _, op in _operations(document)}
    for op_id in (
        "appendEvents",
        "openApproval",
        "decideApproval",
        "createPolicy",
        "createWebhook",
        "createSource",
        "updateSource",
        "decideApprovals",
    ):
        body = ids[op_id]["requestBody"]["content"]["application/json"]["schema"]
        assert body, op_id
        for code in ("413", "415", "422"):
            assert code in ids[op_id]["responses"], (op_id, code)
    create = schemas["ApprovalCreate"]
    assert create["additionalProperties"] is False
    assert create["required"] == ["title"]
    assert create["properties"]["onTimeout"]["enum"] == ["approve", "reject"]
    timeout = create["properties"]["timeoutSeconds"]["anyOf"][0]
    assert timeout["exclusiveMinimum"] == 0 and timeout["maximum"] == 30 * 24 * 3600
    decision = schemas["DecisionIn"]["properties"]["decision"]
    assert decision["enum"] == ["answer", "approve", "reject"]
    assert schemas["EventIn"]["additionalProperties"] is False
    params = {p["name"]: p for p in ids["readEvents"]["parameters"]}
    assert {
        "run_id",
        "thread_id",
        "agent_id",
        "source",
        "category",
        "type",
        "status",
        "after",
        "history",
        "tail",
        "follow",
        "limit",
        "Last-Event-ID",
    } <= set(params)
    assert params["tail"]["schema"]["minimum"] == 0
    assert params["tail"]["schema"]["maximum"] == 100_000
    assert params["Last-Event-ID"]["in"] == "header"
    queue = {p["name"]: p for p in ids["listApprovals"]["parameters"]}
    assert queue["status"]["schema"]["enum"] == [
        "pending",
        "approved",
        "rejected",
        "answered",
        "expired",
        "withdrawn",
        "all",
    ]
    assert queue["limit"]["schema"]["maximum"] == 500
    content = ids["readEvents"]["responses"]["200"]["content"]
    assert set(content) == {"text/event-stream", "application/json", "application/x-ndjson"}
    assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/EventPage"}
    for _, _, operation in _operations(document):
        for parameter in operation.get("parameters", ()):
            assert "type" in parameter["schema"] or "enum" in parameter["schema"], parameter


def test_every_referenced_schema_exists(document: dict[str, Any]) -> None:
    text = json.dumps(document)
    names = set(document["components"]["schemas"])
    for ref in set(__import__("re").findall(r'"#/components/schemas/([^"]+)"', text)):
        assert ref in names, ref


def test_unknown_query_parameters_are_refused_with_a_suggestion(server: Server) -> None:
    key = server.db.key()
    with server.client(key) as http:
        http.post("/v1/approvals", json={"title": "a", "runId": "run_1"}).raise_for_status()
        http.post("/v1/approvals", json={"title": "b", "runId": "run_2"}).raise_for_status()
        misspelt = http.get("/v1/approvals", params={"runId": "run_1"})
        assert misspelt.status_code == 400
        body = misspelt.json()
        assert body["error"] == "invalid" and body["field"] == "runId"
        assert "did you mean run_id?" in body["message"]
        close = http.get("/v1/approvals", params={"stauts": "all"}).json()
        assert close["field"] == "stauts" and "did you mean status?" in close["message"]
        unknown = http.get("/v1/events", params={"colour": "red"}).json()
        assert unknown["field"] == "colour" and "did you mean" not in unknown["message"]
        # The stream refuses before it opens: a plain JSON answer, not text/event-stream.
        stream = http.get("/v1/events", params={"threadId": "t"}, headers=SSE)
        assert stream.status_code == 400
        assert stream.headers["content-type"].startswith("application/json")
        assert "did you mean thread_id?" in stream.json()["message"]
        wait = http.get("/v1/approvals/apr_x", params={"timeout": "5"}).json()
        assert wait["field"] == "timeout"
        right = http.get("/v1/approvals", params={"run_id": "run_1"}).json()
        assert [a["runId"] for a in right["approvals"]] == ["run_1"]


def _count(http: httpx.Client) -> int:
    return len(http.get("/v1/events", params={"tail": 1000}).json()["events"])


def _post(http: httpx.Client, body: bytes, kind: str = "application/json") -> httpx.Response:
    return http.post("/v1/events", content=body, headers={"Content-Type": kind})


HOSTILE: list[tuple[str, bytes, int, str]] = [
    (
        "deep array",
        b'{"type":"x","detail":{"a":' + b"[" * 70 + b"]" * 70 + b"}}",
        400,
        "body.detail.a",
    ),
    ("very deep", b"[" * 5000 + b"]" * 5000, 400, "body"),
    ("NUL in title", b'{"type":"x","title":"a\\u0000b"}', 400, "body.title"),
    ("NUL in a detail key", b'{"type":"x","detail":{"k\\u0000":1}}', 400, "body.detail"),
    ("NUL in type", b'{"type":"x\\u0000"}', 400, "body.type"),
    ("lone surrogate", b'{"type":"x","title":"\\ud800"}', 400, "body"),
    ("low surrogate", b'{"type":"x","detail":{"k":"\\udfff!"}}', 400, "body"),
    (
        "huge whole number",
        b'{"type":"x","detail":{"n":123456789012345678901234}}',
        400,
        "body.detail.n",
    ),
    ("float overflow", b'{"type":"x","detail":{"n":1e400}}', 400, "body"),
    (
        "costTokens out of range",
        b'{"type":"x","costTokens":9007199254740993}',
        422,
        "body.costTokens",
    ),
    ("negative cost", b'{"type":"x","costUsd":-1}', 422, "body.costUsd"),
    ("invalid UTF-8", b'{"type":"x","title":"\xff\xfe"}', 400, "body"),
    ("not JSON", b"type=x", 400, "body"),
    ("empty body", b"", 400, "body"),
    ("a string", b'"x"', 422, "body"),
    ("too many events", json.dumps([{"type": "x"}] * 10_001).encode(), 422, "body"),
    (
        "NUL deep in a batch",
        b'[{"type":"x"},{"type":"y","detail":{"a":["\\u0000"]}}]',
        400,
        "body[1].detail.a[0]",
    ),
]


@pytest.mark.parametrize(("name", "body", "status", "field"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_bodies_get_a_4xx_naming_the_field_and_store_nothing(
    server: Server, name: str, body: bytes, status: int, field: str
) -> None:
    with server.client(server.db.key()) as http:
        before = _count(http)
        answer = _post(http, body)
        assert answer.status_code == status, answer.text
        assert answer.json()["error"] == "invalid"
        assert answer.json()["field"] == field, answer.json()
        assert _count(http) == before


def test_hostile_input_everywhere_else(server: Server) -> None:
    with server.client(server.db.key()) as http:
        before = _count(http)
        wrong_type = _post(http, b'{"type":"x"}', kind="application/x-www-form-urlencoded")
        assert wrong_type.status_code == 415
        assert wrong_type.json()["field"] == "Content-Type"
        big = _post(http, b'{"type":"x","title":"' + b"a" * (1024 * 1024) + b'"}')
        assert big.status_code == 413 and big.json()["error"] == "too_large"
        for path, body in (
            ("/v1/approvals", {"title": "t\x00"}),
            ("/v1/approvals", {"title": "t", "timeoutSeconds": 1e300}),
            ("/v1/approvals", {"title": "t", "onTimeout": "maybe"}),
            ("/v1/approvals", {"title": "t", "extra": 1}),
            ("/v1/policies", {"action": "require", "minApprovals": 2**70}),
            ("/v1/webhooks", {"url": "http://127.0.0.1:9/x", "eventTypes": ["*"] * 101}),
            ("/v1/sources", {"name": "n\x00", "dialect": "prism", "url": "http://x", "token": "t"}),
        ):
            answer = http.post(path, json=body)
            assert 400 <= answer.status_code < 500, (path, body, answer.text)
            assert answer.json()["field"].startswith("body"), answer.json()
        assert (
            http.post("/v1/approvals", json={"title": "x", "onTimeout": "maybe"}).json()["message"]
            == "body.onTimeout: must be one of approve, reject"
        )
        deep = {"decision": "approve", "arguments": {}}
        cursor: Any = deep["arguments"]
        for _ in range(80):
            cursor["a"] = {}
            cursor = cursor["a"]
        assert http.post("/v1/approvals/apr_x/decision", json=deep).status_code == 400
        for params in (
            {"tail": "-1"},
            {"tail": "100001"},
            {"after": "1e3"},
            {"limit": "0"},
            {"history": "perhaps"},
            {"after": "9" * 30},
        ):
            answer = http.get("/v1/events", params=params)
            assert answer.status_code == 400, (params, answer.text)
            assert answer.json()["field"] == next(iter(params))
        assert http.get("/v1/approvals/x", params={"wait": "-1"}).status_code == 400
        duplicate = _post(http, b'{"type":"x","title":"first","title":"second"}')
        assert duplicate.status_code == 201 and duplicate.json()["title"] == "second"
        assert _count(http) == before + 1


def test_docs_page_is_served_from_the_service(
    sqlite_database: Database, make_server: Callable[..., Server]
) -> None:
    server = make_server(sqlite_database)
    page = httpx.get(server.base + "/docs", timeout=30)
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "<script>" not in page.text and "https://" not in page.text
    for asset in (
        "/static/vendor/swagger-ui-bundle-5.35.0.js",
        "/static/docs.js",
        "/static/vendor/swagger-ui-5.35.0.css",
    ):
        assert asset in page.text
        assert httpx.get(server.base + asset, timeout=30).status_code == 200
    # The CDN-backed pages Litestar would serve are gone.
    assert httpx.get(server.base + "/schema/swagger", timeout=30).status_code == 404


def test_dashboard_filters_refuse_unknown_parameters(
    sqlite_database: Database, make_server: Callable[..., Server]
) -> None:
    server = make_server(sqlite_database)
    with httpx.Client(base_url=server.base, timeout=30) as http:
        typo = http.get("/history", params={"reviwer": "alice"})
        assert typo.status_code == 400 and "did you mean reviewer?" in typo.json()["message"]
        assert http.get("/events", params={"runId": "r"}).json()["field"] == "runId"
        # Known filters reach the page (which asks for a sign-in first).
        assert http.get("/history", params={"reviewer": "alice"}).status_code in (302, 303)
        assert http.get("/login", params={"next": "/history"}).status_code == 200
