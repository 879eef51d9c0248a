"""Notification routes, the messages live channels posted and the conversations they
learned, email links used, interactions seen, and the reviewers' devices that take Web Push."""

from __future__ import annotations

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel


class Route(SQLModel, table=True):
    """Where to announce new approvals: a Slack channel, an email address, or the reviewers."""

    __tablename__ = "notification_routes"

    id: str = Field(primary_key=True, max_length=64)
    channel: str = Field(max_length=16)  # slack, email, discord, teams
    target: str = Field(max_length=320)  # channel or conversation id, address, or "reviewers"
    agent_id: str | None = Field(default=None, max_length=200)
    tool: str | None = Field(default=None, max_length=200)
    remind_after_seconds: int | None = None
    created_by: str | None = Field(default=None, max_length=200)
    created_at: str = Field(max_length=32)


class ChannelMessage(SQLModel, table=True):
    """A message a live channel (Slack, Discord, Teams) posted for an approval: where it is,
    so it can be edited to the outcome when the approval resolves."""

    __tablename__ = "channel_messages"
    __table_args__ = (UniqueConstraint("channel", "conversation", "ref"),)

    id: int | None = Field(default=None, primary_key=True)
    approval_id: str = Field(max_length=64, index=True)
    channel: str = Field(max_length=16)  # slack, discord, teams
    conversation: str = Field(max_length=320)  # Slack or Discord channel id, Teams conversation
    ref: str = Field(max_length=200)  # the message: Slack ts, Discord or Teams message id
    service_url: str | None = Field(default=None, max_length=500)  # Teams: where to edit it
    delivery_id: str = Field(max_length=64)
    created_at: str = Field(max_length=32)


class Conversation(SQLModel, table=True):
    """A conversation a chat bot learned from its platform (the Teams bot's installations):
    the service URL that reaches it and, for a personal chat, whose it is."""

    __tablename__ = "channel_conversations"

    channel: str = Field(primary_key=True, max_length=16)
    conversation: str = Field(primary_key=True, max_length=320)
    service_url: str = Field(max_length=500)
    tenant_id: str | None = Field(default=None, max_length=64)
    user_ref: str | None = Field(default=None, max_length=64, index=True)  # personal chats
    updated_at: str = Field(max_length=32)


class UsedLink(SQLModel, table=True):
    """An email link that decided once and never will again."""

    __tablename__ = "email_links_used"

    nonce: str = Field(primary_key=True, max_length=64)
    approval_id: str = Field(max_length=64)
    username: str = Field(max_length=100)
    used_at: str = Field(max_length=32)


class InteractionReceipt(SQLModel, table=True):
    """A signed interaction (Slack, Discord, Teams) already acted on: its replays are
    acknowledged, not acted on."""

    __tablename__ = "interaction_receipts"

    digest: str = Field(primary_key=True, max_length=64)  # SHA-256 of what identifies it
    seen_at: float = Field(index=True)  # Unix time; forgotten once no replay can pass


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
channel_messages_table = ChannelMessage.__table__  # type: ignore[attr-defined]
conversations_table = Conversation.__table__  # type: ignore[attr-defined]
used_links_table = UsedLink.__table__  # type: ignore[attr-defined]
interaction_receipts_table = InteractionReceipt.__table__  # type: ignore[attr-defined]
push_subscriptions_table = PushSubscription.__table__  # type: ignore[attr-defined]
