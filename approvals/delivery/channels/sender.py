"""The outbox sender of ``notify`` deliveries, on whichever channel each names."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import insert, select

from approvals.core.clock import now_iso
from approvals.core.outbound import Refused
from approvals.core.secretbox import service_key
from approvals.delivery.channels import email
from approvals.delivery.channels.base import Channel, Message, Posted
from approvals.delivery.channels.catalog import CHANNELS
from approvals.delivery.channels.models import channel_messages_table
from approvals.delivery.channels.notices import WHILE_PENDING, Notice, lead
from approvals.delivery.channels.pager import shown
from approvals.delivery.worker import Sent, WithWorker
from approvals.events import redaction
from approvals.queue import service

log = logging.getLogger("approvals.notify")


class Notifier:
    """Makes one attempt at a notification on its channel; the delivery worker records and
    retries it. What every channel shares is here: the outbound policy on the platform's
    host, the record of the messages a live channel posted, and their edits."""

    def __init__(self, services: WithWorker) -> None:
        self.services = services
        self.settings = services.settings
        self._signer: URLSafeTimedSerializer | None = None
        self.channels: dict[str, Channel] = {
            name: kind(services) for name, kind in CHANNELS.items()
        }

    @property
    def slack(self) -> Any:
        """The Slack Web API client (made on first use)."""
        return self.channels["slack"].client  # type: ignore[attr-defined]

    async def signer(self) -> URLSafeTimedSerializer:
        """The email link signer (the key is read once)."""
        if self._signer is None:
            settings = self.settings
            async with self.services.engine.begin() as conn:
                key = await conn.run_sync(lambda sync: service_key(sync, settings.secret_key))
            self._signer = email.signer(key)
        return self._signer

    async def __call__(self, delivery: dict[str, Any]) -> Sent:
        """Send one notice."""
        notice = msgspec.json.decode(delivery["payload"], type=Notice)
        approval = await shown(self.services.engine, notice.approval_id)
        if isinstance(approval, Sent):
            return approval
        if notice.action in WHILE_PENDING and approval["status"] != "pending":
            return Sent()  # decided in time: no reminder, escalation or warning needed
        channel = self.channels.get(notice.channel)
        if channel is None:
            return Sent(error=f"no channel named {notice.channel!r}", permanent=True)
        if not channel.live and approval["status"] != "pending":
            return Sent()  # nothing left to decide; the page shows the outcome
        problem = channel.missing()
        if problem is not None:
            return Sent(error=problem)
        for url in channel.hosts():
            refused = await self._check(url)
            if refused is not None:
                return refused
        try:
            if notice.action == "update":
                await self._edit_all(channel, approval)
                return Sent(status_code=200)
            outcome = await channel.post(notice, approval, lead(notice, approval))
            if isinstance(outcome, Sent):
                return outcome
            await self._posted(channel, delivery, approval, outcome)
            return Sent(status_code=outcome.status_code)
        except Exception as exc:
            sent = channel.failed(exc)
            if sent is None:
                raise
            return sent

    async def _check(self, url: str) -> Sent | None:
        """The operator's platform API and SMTP hosts obey the outbound policy too (checked
        after resolving; the platform clients then connect by themselves)."""
        try:
            await self.services.webhooks.check_destination(url)
        except Refused as exc:
            return Sent(error=str(exc), permanent=True)
        except OSError as exc:  # not resolved (yet): retried on the schedule
            return Sent(error=f"cannot resolve the host of {url.split('@')[-1]}: {exc}"[:500])
        return None

    async def _posted(
        self, channel: Channel, delivery: dict[str, Any], approval: dict[str, Any], at: Posted
    ) -> None:
        """Record where a live channel's message is; edit it at once when the approval
        resolved while it was being posted (before it was on record)."""
        async with self.services.log.writer(), self.services.engine.begin() as conn:
            await conn.execute(
                insert(channel_messages_table).values(
                    approval_id=approval["id"],
                    channel=channel.name,
                    conversation=at.conversation,
                    ref=at.ref,
                    service_url=at.service_url,
                    delivery_id=delivery["id"],
                    created_at=now_iso(),
                )
            )
        if approval["status"] == "pending":
            latest = redaction.approval(await service.fetch(self.services.engine, approval["id"]))
            if latest["status"] != "pending":
                await channel.edit(latest, Message(at.conversation, at.ref, at.service_url))

    async def _edit_all(self, channel: Channel, approval: dict[str, Any]) -> None:
        table = channel_messages_table
        async with self.services.engine.connect() as conn:
            messages = (
                await conn.execute(
                    select(table.c.conversation, table.c.ref, table.c.service_url)
                    .where(table.c.approval_id == approval["id"], table.c.channel == channel.name)
                    .order_by(table.c.id)
                )
            ).all()
        for conversation, ref, service_url in messages:
            await channel.edit(approval, Message(conversation, ref, service_url))

    async def close(self) -> None:
        """Let go of the channels' HTTP clients."""
        for channel in self.channels.values():
            await channel.close()
