"""The typed bodies and answers of ``/v1/notifications``."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from approvals.core.contract import Body, Out

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]


class NotificationCreate(Body):
    """A route: announce matching approvals on a channel."""

    channel: Literal["slack", "email", "discord", "teams"]
    target: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=320,
            pattern=r"^[^\s\x00-\x1f\x7f]+$",
            description="a Slack or Discord channel id, a Teams conversation id, an email "
            "address, or 'reviewers'",
        ),
    ]
    agent_id: Name | None = None
    tool: Name | None = None
    remind_after_seconds: Annotated[int, msgspec.Meta(ge=1, le=30 * 24 * 3600)] | None = None


class NotificationPublic(Out):
    """A stored route."""

    id: str
    channel: str
    target: str
    agent_id: str | None
    tool: str | None
    remind_after_seconds: int | None
    created_by: str | None
    created_at: str


class NotificationList(Out):
    """Every route, oldest first."""

    notifications: list[NotificationPublic]


class Lead(msgspec.Struct, frozen=True):
    """The line above a notice that is not the first (a reminder, an escalation, a
    timeout warning): a tag, which also prefixes an email's subject, and what it says."""

    tag: str
    text: str


class Notice(msgspec.Struct, kw_only=True):
    """What one notification delivery does (its ``payload``)."""

    action: str  # open, remind, escalate, warn, update
    channel: str  # slack, email, discord, teams
    to: str  # a channel, conversation or user id on it, or an email address
    approval_id: str
    reviewer: str | None = None  # the reviewer it is for (email links decide as them)
    route_id: str | None = None
    step: int | None = None  # the escalation step (1-based) that sends it


class PushKeys(Body):
    """A browser's push keys (``PushSubscription.toJSON().keys``), base64url."""

    p256dh: Annotated[str, msgspec.Meta(min_length=80, max_length=100)]
    auth: Annotated[str, msgspec.Meta(min_length=16, max_length=40)]


class PushSubscribe(Body):
    """``POST /dashboard/push/subscribe``: a browser's ``PushSubscription`` as JSON."""

    endpoint: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    keys: PushKeys
    expiration_time: float | None = None  # the browser's own; the service does not use it
    label: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None


class PushUnsubscribe(Body):
    """``POST /dashboard/push/unsubscribe`` (JSON): the device by its endpoint or its id."""

    endpoint: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)] | None = None
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
