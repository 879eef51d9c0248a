"""Liveness, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from conftest import Server
from streams import Subscription

ROOT = Path(__file__).resolve().parent.parent


def test_health_readiness_metrics_and_schema(server: Server) -> None:
    key = server.db.key()
    with server.client(key) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        assert http.get("/readyz").json() == {"status": "ready"}
        http.post("/v1/events", json=[{"type": "a"}, {"type": "b"}])
        with Subscription(server.base, key) as sub:
            sub.take(1)
            http.post("/v1/events", json={"type": "c"})
            sub.events(1)
            metrics = http.get("/metrics").text
        schema = http.get("/schema/openapi.json").json()
    assert "approvals_events_appended_total 3.0" in metrics
    assert "approvals_stream_subscribers 1.0" in metrics
    assert "approvals_fanout_lag_seconds_count" in metrics
    assert (
        "/v1/events" in schema["paths"]
        and "/v1/approvals/{approval_id}/decision" in schema["paths"]
    )


def test_time_to_decision_is_a_histogram_by_outcome(server: Server) -> None:
    agent = server.db.key("events:write", "approvals:read")
    reviewer = server.db.key("approvals:read", "approvals:resolve")

    def count(metrics: str, outcome: str) -> float:
        prefix = f'approvals_time_to_decision_seconds_count{{outcome="{outcome}"}} '
        lines = [line for line in metrics.splitlines() if line.startswith(prefix)]
        return float(lines[0].removeprefix(prefix)) if lines else 0.0

    with server.client(agent) as http, server.client(reviewer) as judge:
        before = http.get("/metrics").text
        opened = [
            http.post("/v1/approvals", json={"title": f"t{i}"}).json()["id"] for i in range(3)
        ]
        judge.post(f"/v1/approvals/{opened[0]}/decision", json={"decision": "approve"})
        judge.post(f"/v1/approvals/{opened[1]}/decision", json={"decision": "reject"})
        http.post(f"/v1/approvals/{opened[2]}/withdraw")
        timed = http.post("/v1/approvals", json={"title": "soon", "timeoutSeconds": 0.2}).json()
        for _ in range(100):
            if http.get(f"/v1/approvals/{timed['id']}").json()["status"] == "expired":
                break
            time.sleep(0.05)
        after = http.get("/metrics").text
    for outcome in ("approved", "rejected", "withdrawn", "expired"):
        assert count(after, outcome) - count(before, outcome) == 1, outcome
    assert count(after, "answered") == count(before, "answered")


def test_the_grafana_dashboard_queries_only_metrics_the_service_exports(server: Server) -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "approvals.json").read_text())
    with server.client() as http:
        metrics = http.get("/metrics").text
    families = set(re.findall(r"^# TYPE (\S+) ", metrics, re.M))
    exported = families | {f + s for f in families for s in ("_bucket", "_count", "_sum")}
    # A counter's family is typed with or without _total, depending on the client library.
    exported |= {f + "_total" for f in families}
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b(approvals_[a-z_]+)", target["expr"])
    }
    assert len(queried) >= 8
    assert sorted(queried - exported) == [], "the dashboard queries metrics nobody exports"
    assert all(p["datasource"]["uid"] == "${datasource}" for p in dashboard["panels"])
