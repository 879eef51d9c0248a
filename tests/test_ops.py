"""Liveness, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

from conftest import Server
from streams import Subscription


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
