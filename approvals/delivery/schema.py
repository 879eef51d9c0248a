"""Typed bodies and answers of webhook endpoints and the delivery log."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from approvals.core.contract import Body, Out
from approvals.events.schema import Timestamp
from approvals.queue.schema import Url

TypePattern = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=200,
        pattern=r"^[^\s\x00-\x1f\x7f]+$",
        description="an event type, '*' or a prefix such as 'approval.*'",
    ),
]


class WebhookCreate(Body):
    """``POST /v1/webhooks``: where to send which events."""

    url: Url
    event_types: Annotated[list[TypePattern], msgspec.Meta(min_length=1, max_length=100)]
    description: Annotated[str, msgspec.Meta(max_length=500)] | None = None


class WebhookOut(Out, omit_defaults=True):
    """An endpoint and its health; ``secret`` only when just created or rotated."""

    id: str
    url: str
    description: str | None
    event_types: list[str]
    status: Literal["healthy", "failing", "disabled"]
    disabled_reason: str | None
    created_at: Timestamp
    last_success_at: Timestamp | None
    last_failure_at: Timestamp | None
    failing_since: Timestamp | None
    failure_streak: int
    secret: str | None = None
    previous_secret_valid_until: Timestamp | None = None


class WebhookList(Out):
    """Every endpoint, oldest first."""

    webhooks: list[WebhookOut]


class Attempt(Out):
    """One attempt at a delivery."""

    attempt: int
    trigger: str
    status_code: int | None
    duration_ms: int | None
    error: str | None
    at: Timestamp


class DeliveryOut(Out, omit_defaults=True):
    """A delivery of one event to one destination; its attempts when listed."""

    id: str
    msg_id: str
    kind: str
    endpoint_id: str | None
    url: str
    event_id: str
    event_type: str
    status: Literal["pending", "succeeded", "failed"]
    attempts: int
    next_attempt_at: Timestamp | None
    last_status_code: int | None
    last_error: str | None
    created_at: Timestamp
    updated_at: Timestamp | None
    history: list[Attempt] | None = None


class DeliveryPage(Out):
    """A page of deliveries, newest first."""

    deliveries: list[DeliveryOut]
    next_cursor: str | None
