"""Prometheus metrics the service exports on ``/metrics``."""

from __future__ import annotations

import itertools

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
    "Time from an event entering the broker to its delivery to a subscriber "
    "(sampled: one subscription in 16)",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
# Observing the histogram on every delivery to every subscriber took about a tenth of
# fan-out time at 5,000 subscribers; one subscription in LAG_SAMPLE (the first included)
# records its lag instead.
LAG_SAMPLE = 16
_subscriptions = itertools.count()


def lag_sampled() -> bool:
    """Whether a subscription opening now records its delivery lag."""
    return next(_subscriptions) % LAG_SAMPLE == 0


TIME_TO_DECISION = Histogram(
    "approvals_time_to_decision_seconds",
    "From an approval's opening to its resolution on this process, by outcome (approved, "
    "rejected, answered, expired, withdrawn); policies' decisions at opening are not counted",
    ["outcome"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600),
    registry=REGISTRY,
)

LOG_HEAD = Gauge("approvals_log_head", "Last position known to this process", registry=REGISTRY)


def render() -> bytes:
    """The metrics in Prometheus text format."""
    return generate_latest(REGISTRY)
