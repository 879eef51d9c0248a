"""Paging through PagerDuty's Events API v2: an escalation step triggers an incident, the
approval's resolution resolves it.

Both are outbox deliveries of kind ``page``, so each is sent by one process at a time,
retried on the delivery schedule and kept across restarts. The incident's dedup key is
the approval's (``approvals-<id>``), so a trigger sent twice (a sender killed between
sending and recording) is one incident, and the resolve names the same one.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from approvals.core.outbound import Refused
from approvals.delivery.channels.slack import page_url
from approvals.delivery.outbox import deliveries_table, pending_row
from approvals.delivery.worker import Sent, WithWorker
from approvals.events import redaction
from approvals.events.log import LogTransaction
from approvals.queue import service

KIND = "page"
TRIGGER = "escalation.page.trigger"
RESOLVE = "escalation.page.resolve"
SUMMARY_LIMIT = 1024  # the Events API's limit on a summary


class Page(msgspec.Struct, kw_only=True):
    """What one ``page`` delivery does (its ``payload``)."""

    action: str  # trigger, resolve
    approval_id: str
    routing_key: str
    severity: str = "critical"
    step: int | None = None  # the escalation step (1-based) that triggers


def dedup_key(approval_id: str) -> str:
    """The incident of one approval, the same for its trigger and its resolve."""
    return f"approvals-{approval_id}"


def page_row(page: Page, event_id: int, due: str | None = None) -> dict[str, Any]:
    """A pending outbox row of kind ``page``."""
    return pending_row(
        kind=KIND,
        msg_id=f"page_{page.approval_id}_{page.action}_{page.step or 0}_{page.routing_key}"[:100],
        url="pagerduty:events-v2",
        event_id=event_id,
        event_type=TRIGGER if page.action == "trigger" else RESOLVE,
        payload=msgspec.json.encode(page).decode(),
        due=due,
        approval_id=page.approval_id,
    )


async def shown(engine: AsyncEngine, approval_id: str) -> dict[str, Any] | Sent:
    """The approval as pages and notices show it: redacted, as reviewers see it. Once it
    is gone, a permanent failure instead (no retry would find it)."""
    try:
        return redaction.approval(await service.fetch(engine, approval_id))
    except Exception:
        return Sent(error=f"approval {approval_id} is gone", permanent=True)


PAGES_OF = select(
    deliveries_table.c.payload, deliveries_table.c.status, deliveries_table.c.last_status_code
).where(deliveries_table.c.kind == KIND, deliveries_table.c.event_type == TRIGGER)


async def page_resolves(
    tx: LogTransaction, approval: dict[str, Any], resolution: dict[str, Any]
) -> list[dict[str, Any]]:
    """On resolution: one resolve per routing key this approval pages (or will have paged)."""
    if approval.get("policy_id") is None:
        return []  # only a policy's ladder pages
    rows = await tx.conn.execute(PAGES_OF.where(deliveries_table.c.approval_id == approval["id"]))
    keys = sorted({msgspec.json.decode(row.payload, type=Page).routing_key for row in rows})
    return [
        page_row(
            Page(action="resolve", approval_id=approval["id"], routing_key=key),
            int(resolution["id"]),
        )
        for key in keys
    ]


class Pager:
    """Makes one attempt at a ``page`` delivery; the delivery worker records and retries it."""

    def __init__(self, services: WithWorker) -> None:
        self.services = services

    async def __call__(self, delivery: dict[str, Any]) -> Sent:
        page = msgspec.json.decode(delivery["payload"], type=Page)
        approval = await shown(self.services.engine, page.approval_id)
        if isinstance(approval, Sent):
            return approval
        if page.action == "trigger":
            if approval["status"] != "pending":
                return Sent()  # decided before this step: nobody to wake
            body = self._trigger(page, approval)
        else:
            waiting = await self._trigger_state(page)
            if waiting == "none":
                return Sent()  # no trigger was ever sent under this key
            if waiting == "pending":
                # Resolving first would leave the incident open once the trigger lands.
                return Sent(error="waiting for this approval's trigger to be sent first")
            body = {
                "routing_key": page.routing_key,
                "event_action": "resolve",
                "dedup_key": dedup_key(page.approval_id),
            }
        return await self._post(json.dumps(body).encode())

    def _trigger(self, page: Page, approval: dict[str, Any]) -> dict[str, Any]:
        settings = self.services.settings
        summary = " ".join((approval.get("headline") or approval["title"] or "").split())
        summary = f"Approval waiting: {summary or approval['id']}"
        return {
            "routing_key": page.routing_key,
            "event_action": "trigger",
            "dedup_key": dedup_key(page.approval_id),
            "payload": {
                "summary": summary[:SUMMARY_LIMIT],
                "source": "approvals",
                "severity": page.severity,
                "component": approval["tool"] or "approval",
                "custom_details": {
                    "approvalId": approval["id"],
                    "agentId": approval["agentId"],
                    "runId": approval["runId"],
                    "tool": approval["tool"],
                    "escalationStep": page.step,
                    "createdAt": approval["createdAt"],
                    "expiresAt": approval["expiresAt"],
                },
            },
            "links": [{"href": page_url(settings, approval["id"]), "text": "Decide"}],
        }

    async def _trigger_state(self, page: Page) -> str:
        """``sent`` when a trigger under this routing key went out, ``pending`` while one
        may still go, ``none`` when none did (decided before its step, or failed)."""
        async with self.services.engine.connect() as conn:
            rows = await conn.execute(
                PAGES_OF.where(deliveries_table.c.approval_id == page.approval_id)
            )
            states = [
                "sent"
                if row.status == "succeeded" and row.last_status_code is not None
                else "pending"
                if row.status == "pending"
                else "none"
                for row in rows
                if msgspec.json.decode(row.payload, type=Page).routing_key == page.routing_key
            ]
        if "pending" in states:
            return "pending"
        return "sent" if "sent" in states else "none"

    async def _post(self, content: bytes) -> Sent:
        url = self.services.settings.pagerduty_url
        try:
            status, retry_after = await self.services.webhooks.post(url, content)
        except Refused as exc:
            return Sent(error=str(exc), permanent=True)
        except Exception as exc:
            return Sent(error=f"PagerDuty unreachable: {type(exc).__name__}: {exc}"[:500])
        if 200 <= status < 300:
            return Sent(status_code=status)
        # 400 is a malformed event (a bad routing key): sending it again will not help.
        return Sent(
            status_code=status,
            error=f"PagerDuty answered HTTP {status}",
            retry_after=retry_after,
            permanent=status == 400,
        )
