"""The outbox sender of ``notify`` deliveries: Slack messages, their updates, and email."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from itsdangerous import URLSafeTimedSerializer
from slack_sdk.errors import SlackApiError
from sqlalchemy import insert, select

from approvals.core.clock import now_iso
from approvals.core.outbound import Refused
from approvals.core.secretbox import service_key
from approvals.delivery.channels import email, slack
from approvals.delivery.channels.models import slack_messages_table
from approvals.delivery.channels.notices import WHILE_PENDING, Notice, lead
from approvals.delivery.channels.pager import shown
from approvals.delivery.worker import Sent, WithWorker
from approvals.events import redaction
from approvals.queue import service

log = logging.getLogger("approvals.notify")


class Notifier:
    """Makes one attempt at a notification; the delivery worker records and retries it."""

    def __init__(self, services: WithWorker) -> None:
        self.services = services
        self.settings = services.settings
        self._signer: URLSafeTimedSerializer | None = None
        self._slack: Any = None

    @property
    def slack(self) -> Any:
        """The Slack Web API client (made on first use)."""
        if self._slack is None:
            self._slack = slack.client(self.settings)
        return self._slack

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
        if notice.channel == "slack":
            return await self._slack_send(delivery, notice, approval)
        return await self._email_send(notice, approval)

    async def _check(self, url: str) -> Sent | None:
        """The operator's Slack API and SMTP hosts obey the outbound policy too (checked
        after resolving; the Slack and SMTP clients then connect by themselves)."""
        try:
            await self.services.webhooks.check_destination(url)
        except Refused as exc:
            return Sent(error=str(exc), permanent=True)
        except OSError as exc:  # not resolved (yet): retried on the schedule
            return Sent(error=f"cannot resolve the host of {url.split('@')[-1]}: {exc}"[:500])
        return None

    async def _slack_send(
        self, delivery: dict[str, Any], notice: Notice, approval: dict[str, Any]
    ) -> Sent:
        if not self.settings.slack_bot_token:
            return Sent(error="APPROVALS_SLACK_BOT_TOKEN is not set")
        refused = await self._check(self.settings.slack_api_url)
        if refused is not None:
            return refused
        try:
            if notice.action == "update":
                await self._update_all(approval)
                return Sent(status_code=200)
            answer = await self.slack.chat_postMessage(
                channel=notice.to,
                text=slack.fallback(approval),
                blocks=slack.blocks(approval, self.settings, lead(notice, approval)),
                unfurl_links=False,
            )
            channel, ts = answer["channel"], answer["ts"]
            async with self.services.log.writer(), self.services.engine.begin() as conn:
                await conn.execute(
                    insert(slack_messages_table).values(
                        approval_id=approval["id"],
                        channel=channel,
                        ts=ts,
                        delivery_id=delivery["id"],
                        created_at=now_iso(),
                    )
                )
            if approval["status"] == "pending":
                # It may have resolved while we posted, before the message was on record.
                latest = redaction.approval(
                    await service.fetch(self.services.engine, approval["id"])
                )
                if latest["status"] != "pending":
                    await self._update(latest, channel, ts)
            return Sent(status_code=answer.status_code)
        except SlackApiError as exc:
            return slack.failure(exc)
        except (OSError, TimeoutError) as exc:
            return Sent(error=f"Slack unreachable: {type(exc).__name__}: {exc}"[:500])

    async def _update_all(self, approval: dict[str, Any]) -> None:
        async with self.services.engine.connect() as conn:
            messages = (
                await conn.execute(
                    select(slack_messages_table.c.channel, slack_messages_table.c.ts)
                    .where(slack_messages_table.c.approval_id == approval["id"])
                    .order_by(slack_messages_table.c.id)
                )
            ).all()
        for channel, ts in messages:
            await self._update(approval, channel, ts)

    async def _update(self, approval: dict[str, Any], channel: str, ts: str) -> None:
        await self.slack.chat_update(
            channel=channel,
            ts=ts,
            text=slack.fallback(approval),
            blocks=slack.blocks(approval, self.settings),
        )

    async def _email_send(self, notice: Notice, approval: dict[str, Any]) -> Sent:
        if approval["status"] != "pending":
            return Sent()  # nothing left to decide; the page shows the outcome
        if not self.settings.smtp_url:
            return Sent(error="APPROVALS_SMTP_URL is not set")
        refused = await self._check(self.settings.smtp_url)
        if refused is not None:
            return refused
        tokens = None
        if notice.reviewer:
            tokens = email.make_links(
                await self.signer(),
                approval["id"],
                notice.reviewer,
                approval.get("argumentsDigest"),
            )
        mail = email.message(approval, self.settings, notice.to, tokens, lead(notice, approval))
        from aiosmtplib import SMTPException  # imported on first use

        try:
            await email.send(self.settings, mail)
        except (SMTPException, OSError, ValueError) as exc:
            return Sent(error=f"{type(exc).__name__}: {exc}"[:500])
        return Sent(status_code=250)
