"""Every channel a notification route may name, by name."""

from __future__ import annotations

from approvals.delivery.channels.base import Channel
from approvals.delivery.channels.discord import Discord
from approvals.delivery.channels.email import Email
from approvals.delivery.channels.slack import Slack
from approvals.delivery.channels.teams import Teams

CHANNELS: dict[str, type[Channel]] = {kind.name: kind for kind in (Slack, Email, Discord, Teams)}
LIVE = tuple(name for name, kind in CHANNELS.items() if kind.live)


def label(name: str) -> str:
    """How people name a channel ("Slack"); the name itself when it is unknown."""
    kind = CHANNELS.get(name)
    return kind.label if kind is not None else name
