"""Web Push: the reviewers' devices, and the outbox rows that tell them of each approval.

A device is a browser's push subscription: its push service endpoint and the keys its
messages are encrypted to, kept per reviewer. When an approval opens pending, one
``push`` delivery per device of each reviewer who may decide it is written in the same
transaction (``notices.deciders``: the policy's rule, and an away reviewer's delegate in
their place). When it resolves, anywhere, each device that was sent the request gets a
"decided" push under the same topic, which replaces it. ``pusher.Pusher`` sends both.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any
from urllib.parse import urlsplit

import msgspec
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from approvals.core import outbound
from approvals.core.clock import now_iso
from approvals.core.errors import ApiError, invalid
from approvals.delivery.channels.models import push_subscriptions_table as devices_table
from approvals.delivery.channels.notices import deciders
from approvals.delivery.channels.schema import PushSubscribe
from approvals.delivery.channels.vapid import b64url, unb64url
from approvals.delivery.outbox import deliveries_table, pending_row
from approvals.events.log import LogTransaction, new_id
from approvals.events.writer import prepared

KIND = "push"
REQUEST = "notification.push.request"
DECIDED = "notification.push.decided"
MAX_DEVICES = 20  # per reviewer: a phone, a laptop, a few browsers
UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


class Push(msgspec.Struct, kw_only=True):
    """What one ``push`` delivery does (its ``payload``): never a key or a secret."""

    action: str  # request, decided
    approval_id: str
    subscription_id: str
    reviewer: str  # the device's owner when queued; the one-tap links decide as them


def topic(approval_id: str) -> str:
    """The ``Topic`` of an approval's pushes (32 base64url characters): a push service
    keeps only the latest undelivered message of a topic, so "decided" replaces "request"."""
    return b64url(hashlib.sha256(approval_id.encode()).digest()[:24])


def message_id(approval_id: str, action: str, device_id: str) -> str:
    """The ``msg_id`` of the push of ``action`` about an approval to a device."""
    return f"push_{approval_id}_{action}_{device_id}"[:100]


def push_row(push: Push, event_id: int) -> dict[str, Any]:
    """A pending outbox row of kind ``push``; its URL names the device, not its endpoint."""
    return pending_row(
        kind=KIND,
        msg_id=message_id(push.approval_id, push.action, push.subscription_id),
        url=f"push:{push.reviewer}/{push.subscription_id}",
        event_id=event_id,
        event_type=REQUEST if push.action == "request" else DECIDED,
        payload=msgspec.json.encode(push).decode(),
        approval_id=push.approval_id,
    )


# -- what a browser sends -----------------------------------------------------------------


def check_endpoint(url: str, policy: outbound.Policy, field: str = "body.endpoint") -> str:
    """A push endpoint the service may send to, or a 422 naming ``field``: the sender's URL
    rule and the outbound destination policy, as for webhooks (names wait for DNS at
    send time, where the policy is checked again on every address)."""
    reason = outbound.unsendable(url)
    if reason is not None:
        raise invalid(field, reason)
    if not url.isascii():
        raise invalid(field, "must be ASCII (push services give ASCII URLs)")
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        raise invalid(field, "must not carry a user name or password")
    return outbound.check_url(url, field, policy)


def check_keys(data: PushSubscribe) -> tuple[str, str]:
    """The subscription's ``p256dh`` (a point on P-256) and ``auth`` (16 bytes), unpadded
    base64url; a 422 naming the key otherwise."""
    try:
        point = unb64url(data.keys.p256dh)
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        if len(point) != 65:
            raise ValueError("not uncompressed")
    except ValueError as exc:
        raise invalid(
            "body.keys.p256dh", "must be the browser's P-256 public key (65 bytes, base64url)"
        ) from exc
    try:
        secret = unb64url(data.keys.auth)
    except ValueError as exc:
        raise invalid("body.keys.auth", "must be base64url") from exc
    if len(secret) != 16:
        raise invalid("body.keys.auth", "must be the 16-byte authentication secret, base64url")
    return b64url(point), b64url(secret)


def plain(text: str, limit: int) -> str:
    """Agent or browser text for one line: no control or direction-changing characters,
    whitespace collapsed, at most ``limit`` characters."""
    line = " ".join(UNPRINTABLE.sub(" ", text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


BROWSERS = (
    ("Edg", "Edge"),
    ("OPR/", "Opera"),
    ("SamsungBrowser", "Samsung Internet"),
    ("Firefox/", "Firefox"),
    ("FxiOS", "Firefox"),
    ("CriOS", "Chrome"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
)
SYSTEMS = (
    ("Android", "Android"),
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("CrOS", "ChromeOS"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("Linux", "Linux"),
)


def label_of(user_agent: str) -> str:
    """A device's name from its browser's ``User-Agent``: ``Chrome on Android``."""
    browser = next((name for mark, name in BROWSERS if mark in user_agent), "A browser")
    system = next((name for mark, name in SYSTEMS if mark in user_agent), None)
    return f"{browser} on {system}" if system else browser


# -- the devices --------------------------------------------------------------------------


async def subscribe(
    conn: AsyncConnection,
    user: str,
    data: PushSubscribe,
    policy: outbound.Policy,
    user_agent: str,
) -> dict[str, Any]:
    """Keep a browser's subscription for ``user`` (the same browser again: its keys and
    owner are updated); 422 for a bad endpoint or key, or past ``MAX_DEVICES``."""
    endpoint = check_endpoint(data.endpoint, policy)
    p256dh, auth = check_keys(data)
    agent = plain(user_agent, 300) or None
    label = plain(data.label or "", 100) or label_of(agent or "")
    others = await conn.execute(
        select(func.count())
        .select_from(devices_table)
        .where(devices_table.c.username == user, devices_table.c.endpoint != endpoint)
    )
    if others.scalar_one() >= MAX_DEVICES:
        raise invalid(
            "body.endpoint",
            f"you have {MAX_DEVICES} devices already: remove one in Settings first",
        )
    values = {"username": user, "p256dh": p256dh, "auth": auth, "label": label, "user_agent": agent}
    existing = (
        await conn.execute(select(devices_table.c.id).where(devices_table.c.endpoint == endpoint))
    ).scalar()
    if existing is None:
        try:
            async with conn.begin_nested():
                row = {"id": new_id("push"), "endpoint": endpoint, "created_at": now_iso()}
                await conn.execute(insert(devices_table).values(**row, **values))
            return {**row, **values}
        except IntegrityError:  # the same browser, subscribed from two tabs at once
            existing = (
                await conn.execute(
                    select(devices_table.c.id).where(devices_table.c.endpoint == endpoint)
                )
            ).scalar_one()
    await conn.execute(update(devices_table).where(devices_table.c.id == existing).values(values))
    return {"id": existing, "endpoint": endpoint, **values}


async def remove(
    conn: AsyncConnection, user: str, *, device_id: str | None, endpoint: str | None
) -> list[str]:
    """Forget ``user``'s device named by id or endpoint; the labels of those removed
    (none when it was not theirs, or is gone already)."""
    if not device_id and not endpoint:
        raise ApiError(422, "invalid", "name the device: its id or its endpoint", field="body")
    mine = devices_table.c.username == user
    which = devices_table.c.id == device_id if device_id else devices_table.c.endpoint == endpoint
    labels = list((await conn.execute(select(devices_table.c.label).where(mine, which))).scalars())
    if labels:
        await conn.execute(delete(devices_table).where(mine, which))
    return labels


async def devices(engine: AsyncEngine, user: str) -> list[dict[str, Any]]:
    """A reviewer's devices, oldest first (never their keys)."""
    table = devices_table
    async with engine.connect() as conn:
        found = await conn.execute(
            select(table.c.id, table.c.label, table.c.created_at, table.c.last_success_at)
            .where(table.c.username == user)
            .order_by(table.c.created_at, table.c.id)
        )
        return [dict(row) for row in found.mappings()]


# -- the outbox ---------------------------------------------------------------------------

EVERY_DEVICE = prepared(
    select(devices_table.c.id, devices_table.c.username).order_by(
        devices_table.c.created_at, devices_table.c.id
    )
)
# The request pushes of one approval not given up on (run on every decision: one statement).
SENT_TO = prepared(
    select(deliveries_table.c.payload).where(
        deliveries_table.c.approval_id == bindparam("approval_id"),
        deliveries_table.c.kind == KIND,
        deliveries_table.c.event_type == REQUEST,
        deliveries_table.c.status != "failed",
    )
)


async def push_requests(
    tx: LogTransaction, approvals: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """On opening (``OpenNotifications.on_open``): one request push per device of each
    reviewer who may decide each approval."""
    by_user = tx.extras.get("push.devices")  # read once per transaction
    if by_user is None:
        by_user = {}
        for device_id, user in await tx.conn.execute(EVERY_DEVICE):
            by_user.setdefault(user, []).append(device_id)
        tx.extras["push.devices"] = by_user
    if not by_user:
        return []
    rows = []
    for approval in approvals:
        for user in await deciders(tx, approval):
            for device_id in by_user.get(user, ()):
                push = Push(
                    action="request",
                    approval_id=approval["id"],
                    subscription_id=device_id,
                    reviewer=user,
                )
                rows.append(push_row(push, approval["event_id"]))
    return rows


async def push_decided(
    tx: LogTransaction, approval: dict[str, Any], resolution: dict[str, Any]
) -> list[dict[str, Any]]:
    """On resolution (``Outbox.on_resolved``): a "decided" push to each device the request
    went (or is going) to."""
    found = await tx.conn.execute(SENT_TO, {"approval_id": approval["id"]})
    rows = []
    for (payload,) in found:
        push = msgspec.json.decode(payload, type=Push)
        push.action = "decided"
        rows.append(push_row(push, int(resolution["id"])))
    return rows
