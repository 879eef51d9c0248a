"""Sending Web Push: each ``push`` delivery encrypted to its device (RFC 8291, aes128gcm,
by ``pywebpush``), signed with the service's VAPID key (RFC 8292), and posted through
the outbound policy by the delivery worker's client.

What a device gets is JSON the service worker shows: ``title``, ``body``, ``url`` (the
request page), ``tag`` (the approval id), ``actions`` (Approve and Reject, each opening
the one-tap confirmation page of the email links) and ``decided``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import delete, select, update

from approvals.auth.users import users_table
from approvals.core.clock import now_iso, parse_iso
from approvals.core.config import Settings
from approvals.core.outbound import Refused
from approvals.delivery.channels import email, vapid
from approvals.delivery.channels.models import push_subscriptions_table as devices_table
from approvals.delivery.channels.pager import shown
from approvals.delivery.channels.push import KIND, REQUEST, Push, message_id, plain, topic
from approvals.delivery.channels.slack import OUTCOME, page_url
from approvals.delivery.outbox import deliveries_table
from approvals.delivery.worker import Sent, WithWorker
from approvals.views.render import left

log = logging.getLogger("approvals.push")

DAY = 24 * 3600  # the longest a push service keeps a message for an offline device
TITLE_LIMIT = 120
BODY_LIMIT = 240
LABEL = {"approve": "Approve", "reject": "Reject"}
GONE = (404, 410)  # the subscription expired or was revoked: forget the device


def message(approval: dict[str, Any], settings: Settings, links: dict[str, str]) -> dict[str, Any]:
    """The notification for an approval (redacted, as reviewers see it): the request with
    its one-tap links while it is pending, "decided elsewhere" afterwards."""
    headline = approval.get("headline") or approval["title"] or "Approval requested"
    out: dict[str, Any] = {
        "url": page_url(settings, approval["id"]),
        "tag": approval["id"],
        "actions": [],
        "decided": approval["status"] != "pending",
    }
    if out["decided"]:
        verb = OUTCOME.get(approval["status"], approval["status"])
        who = f" by {approval['resolvedBy']}" if approval["resolvedBy"] else ""
        out["title"] = "Decided elsewhere"
        out["body"] = plain(f"{verb}{who}: {headline}", BODY_LIMIT)
        return out
    due = left(approval["expiresAt"]) if approval["expiresAt"] else ""
    facts = [plain(str(f), 60) for f in (approval["agentId"], approval["tool"], due) if f]
    out["title"] = plain(headline, TITLE_LIMIT)
    out["body"] = plain(" · ".join(facts), BODY_LIMIT) or "Waiting for your decision"
    out["actions"] = [
        {"action": decision, "title": LABEL[decision], "url": url}
        for decision, url in email.link_urls(settings, links).items()
        if decision in approval["allowedDecisions"]
    ]
    return out


def time_to_live(approval: dict[str, Any]) -> int:
    """How long a push service keeps the message for an offline device: until the request
    times out, at most a day."""
    if approval["status"] != "pending" or not approval["expiresAt"]:
        return DAY
    remaining = (parse_iso(approval["expiresAt"]) - datetime.now(UTC)).total_seconds()
    return max(0, min(DAY, int(remaining)))


class Pusher:
    """Makes one attempt at a ``push`` delivery; the delivery worker records and retries it."""

    def __init__(
        self, services: WithWorker, signer: Callable[[], Awaitable[URLSafeTimedSerializer]]
    ) -> None:
        self.services = services
        self.signer = signer  # the email links' signer: the one-tap links are theirs
        self.keys = vapid.Keys(services.settings)

    async def __call__(self, delivery: dict[str, Any]) -> Sent:
        push = msgspec.json.decode(delivery["payload"], type=Push)
        device = await self._device(push.subscription_id)
        if device is None:
            return Sent(error="the device was removed", permanent=True)
        if device["username"] != push.reviewer or device["disabled"] in (None, True):
            # The browser was signed in to by someone else since, or its reviewer disabled:
            # what was meant for them must not reach it.
            return Sent(error=f"the device is no longer {push.reviewer}'s", permanent=True)
        approval = await shown(self.services.engine, push.approval_id)
        if isinstance(approval, Sent):
            return approval
        settings = self.services.settings
        if push.action == "request":
            if approval["status"] != "pending":
                return Sent()  # decided before it went out: nothing to ask
            tokens = email.make_links(
                await self.signer(), approval["id"], push.reviewer, approval.get("argumentsDigest")
            )
            body = message(approval, settings, tokens)
            return await self._send(device, body, time_to_live(approval), "high")
        state = await self._request_state(push)
        if state == "pending":
            return Sent(error="waiting for the request push to be sent first")
        if state == "none":
            return Sent()  # the device never showed the request
        return await self._send(device, message(approval, settings, {}), DAY, "normal")

    async def _device(self, device_id: str) -> dict[str, Any] | None:
        table = devices_table
        async with self.services.engine.connect() as conn:
            found = await conn.execute(
                select(table, users_table.c.disabled)
                .join(users_table, users_table.c.username == table.c.username, isouter=True)
                .where(table.c.id == device_id)
            )
            row = found.mappings().first()
        return dict(row) if row is not None else None

    async def _request_state(self, push: Push) -> str:
        """``sent`` when the request push reached the push service, ``pending`` while it may
        still, ``none`` when it never will."""
        table = deliveries_table
        async with self.services.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(table.c.status, table.c.last_status_code).where(
                        table.c.approval_id == push.approval_id,
                        table.c.kind == KIND,
                        table.c.event_type == REQUEST,
                        table.c.msg_id
                        == message_id(push.approval_id, "request", push.subscription_id),
                    )
                )
            ).first()
        if row is None:
            return "none"
        if row.status == "pending":
            return "pending"
        return "sent" if row.status == "succeeded" and row.last_status_code else "none"

    async def _send(
        self, device: dict[str, Any], body: dict[str, Any], ttl: int, urgency: str
    ) -> Sent:
        """Encrypt, sign and post one message; forget the device when its push service
        says it is gone. Neither its keys nor the VAPID token are ever logged."""
        endpoint = device["endpoint"]
        engine = self.services.engine
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        subscription = {
            "endpoint": endpoint,
            "keys": {"p256dh": device["p256dh"], "auth": device["auth"]},
        }
        from pywebpush import WebPusher  # with requests and aiohttp: imported on first use

        try:
            encrypted = WebPusher(subscription).encode(data, "aes128gcm")["body"]
            headers = {
                "authorization": await self.keys.authorization(engine, endpoint),
                "content-encoding": "aes128gcm",
                "content-type": "application/octet-stream",
                "ttl": str(ttl),
                "topic": topic(body["tag"]),
                "urgency": urgency,
            }
            status, retry_after = await self.services.webhooks.post(endpoint, encrypted, headers)
        except Refused as exc:
            return Sent(error=str(exc), permanent=True)
        except Exception as exc:  # unreachable, timed out, a key the library refuses
            return Sent(error=f"push service unreachable: {type(exc).__name__}: {exc}"[:500])
        if 200 <= status < 300:
            await self._write(update(devices_table).values(last_success_at=now_iso()), device)
            return Sent(status_code=status)
        if status in GONE:
            await self._write(delete(devices_table), device)
            log.info(
                "push device %s of %s removed: its push service answered %d",
                device["id"],
                device["username"],
                status,
            )
            return Sent(
                status_code=status,
                error=f"the push service answered HTTP {status}: the device is gone, removed",
                permanent=True,
            )
        retried = status == 429 or status >= 500 or status == 408
        return Sent(
            status_code=status,
            error=f"the push service answered HTTP {status}",
            retry_after=retry_after,
            permanent=not retried,  # 400, 403 (another VAPID key), 413: sending again won't help
        )

    async def _write(self, statement: Any, device: dict[str, Any]) -> None:
        async with self.services.log.writer(), self.services.engine.begin() as conn:
            await conn.execute(statement.where(devices_table.c.id == device["id"]))
