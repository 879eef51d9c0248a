"""Notification routes, Slack messages sent, email links used, Slack interactions seen,
and the reviewers' devices that take Web Push."""

from __future__ import annotations

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel


class Route(SQLModel, table=True):
    """Where to announce new approvals: a Slack channel, an email address, or the reviewers."""

    __tablename__ = "notification_routes"

    id: str = Field(primary_key=True, max_length=64)
    channel: str = Field(max_length=16)  # slack, email
    target: str = Field(max_length=320)  # channel id, address, or "reviewers"
    agent_id: str | None = Field(default=None, max_length=200)
    tool: str | None = Field(default=None, max_length=200)
    remind_after_seconds: int | None = None
    created_by: str | None = Field(default=None, max_length=200)
    created_at: str = Field(max_length=32)


class SlackMessage(SQLModel, table=True):
    """A Slack message sent for an approval, updated when the approval resolves."""

    __tablename__ = "slack_messages"
    __table_args__ = (UniqueConstraint("channel", "ts"),)

    id: int | None = Field(default=None, primary_key=True)
    approval_id: str = Field(max_length=64, index=True)
    channel: str = Field(max_length=64)
    ts: str = Field(max_length=64)
    delivery_id: str = Field(max_length=64)
    created_at: str = Field(max_length=32)


class UsedLink(SQLModel, table=True):
    """An email link that decided once and never will again."""

    __tablename__ = "email_links_used"

    nonce: str = Field(primary_key=True, max_length=64)
    approval_id: str = Field(max_length=64)
    username: str = Field(max_length=100)
    used_at: str = Field(max_length=32)


class InteractionReceipt(SQLModel, table=True):
    """A signed Slack interaction already acted on: its replays are acknowledged, not acted on."""

    __tablename__ = "interaction_receipts"

    digest: str = Field(primary_key=True, max_length=64)  # SHA-256 of v0:{timestamp}:{body}
    seen_at: float = Field(index=True)  # Unix time; forgotten once Slack's window is past


class PushSubscription(SQLModel, table=True):
    """A reviewer's browser that takes Web Push: its push service endpoint and the keys its
    messages are encrypted to (RFC 8291). One browser, one row: subscribing it again moves
    it to whoever signed in there."""

    __tablename__ = "push_subscriptions"

    id: str = Field(primary_key=True, max_length=64)
    username: str = Field(max_length=100, index=True)  # the reviewer it notifies
    endpoint: str = Field(max_length=2000, unique=True)  # ASCII only (checked at the edge)
    p256dh: str = Field(max_length=100)  # the browser's P-256 public key, base64url
    auth: str = Field(max_length=40)  # the 16-byte authentication secret, base64url
    label: str = Field(max_length=100)  # "Chrome on Android": what the Settings page shows
    user_agent: str | None = Field(default=None, max_length=300)
    created_at: str = Field(max_length=32)
    last_success_at: str | None = Field(default=None, max_length=32)


routes_table = Route.__table__  # type: ignore[attr-defined]
slack_messages_table = SlackMessage.__table__  # type: ignore[attr-defined]
used_links_table = UsedLink.__table__  # type: ignore[attr-defined]
interaction_receipts_table = InteractionReceipt.__table__  # type: ignore[attr-defined]
push_subscriptions_table = PushSubscription.__table__  # type: ignore[attr-defined]
