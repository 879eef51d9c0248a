"""Prometheus metrics the service exports on ``/metrics``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS_APPENDED = Counter(
    "approvals_events_appended", "Events appended to the log", registry=REGISTRY
)
SUBSCRIBERS = Gauge(
    "approvals_stream_subscribers", "Open SSE subscriptions on this process", registry=REGISTRY
)
FANOUT_LAG = Histogram(
    "approvals_fanout_lag_seconds",
    "Time from an event entering the broker to its delivery to a subscriber",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
LOG_HEAD = Gauge("approvals_log_head", "Last position known to this process", registry=REGISTRY)


def render() -> bytes:
    """The metrics in Prometheus text format."""
    return generate_latest(REGISTRY)
