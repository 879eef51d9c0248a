"""Notification deliveries, written to the outbox in the transaction that opens or resolves."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import bindparam, or_, select

from approvals.auth.users import users_table
from approvals.core.clock import iso
from approvals.delivery.channels.models import routes_table, slack_messages_table
from approvals.delivery.outbox import deliveries_table, pending_row
from approvals.events.log import LogTransaction
from approvals.events.writer import prepared
from approvals.queue import policy
from approvals.queue.service import approvals_table

KIND = "notify"
REVIEWERS = "reviewers"


class Notice(msgspec.Struct, kw_only=True):
    """What one notification delivery does (its ``payload``)."""

    action: str  # open, remind, update
    channel: str  # slack, email
    to: str  # Slack channel or user id, or an email address
    approval_id: str
    reviewer: str | None = None  # the reviewer the links decide as (email)
    route_id: str | None = None


def notice_row(notice: Notice, event_id: int, due: str | None = None) -> dict[str, Any]:
    """A pending outbox row of kind ``notify`` carrying ``notice``."""
    scheme = "slack" if notice.channel == "slack" else "mailto"
    return pending_row(
        kind=KIND,
        msg_id=f"msg_{event_id}_{notice.action}_{notice.to}"[:100],
        url=f"{scheme}:{notice.to}",
        event_id=event_id,
        event_type=f"notification.{notice.channel}.{notice.action}",
        payload=msgspec.json.encode(notice).decode(),
        due=due,
        approval_id=notice.approval_id,
    )


def route_matches(route: dict[str, Any], approval: dict[str, Any]) -> bool:
    """Tell whether a route's agent and tool filters take an approval (None means any)."""
    if route["agent_id"] is not None and route["agent_id"] != approval["agent_id"]:
        return False
    return route["tool"] is None or route["tool"] == approval["tool"]


def allowed(user: str, approval: dict[str, Any]) -> bool:
    """Tell whether the approval's policy lets ``user`` decide it."""
    reason = policy.refusal(
        principal=user,
        requested_by=approval["requested_by"],
        allow_self_approval=approval["allow_self_approval"],
        reviewers=approval["reviewers"],
    )
    return reason is None


async def recipients(
    tx: LogTransaction, route: dict[str, Any], approval: dict[str, Any]
) -> list[tuple[str, str | None]]:
    """``(address, reviewer)`` pairs a route sends one approval to."""
    column = users_table.c.slack_user_id if route["channel"] == "slack" else users_table.c.email
    if route["target"] == REVIEWERS:
        rows = await tx.conn.execute(
            select(users_table.c.username, column)
            .where(users_table.c.disabled.is_(False), column.is_not(None))
            .order_by(users_table.c.username)
        )
        return [(address, user) for user, address in rows if allowed(user, approval)]
    if route["channel"] == "email":
        owner = (
            await tx.conn.execute(
                select(users_table.c.username).where(
                    users_table.c.disabled.is_(False),
                    users_table.c.email == route["target"],
                )
            )
        ).scalar()
        return [(route["target"], owner if owner and allowed(owner, approval) else None)]
    return [(route["target"], None)]


class OpenNotifications:
    """The append hook that queues the notices of every approval opened (and left pending)."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self.wake = wake

    def prepare(self, tx: LogTransaction, rows: list[dict[str, Any]]) -> None:
        """Remember which rows open an approval (``OpenApprovals`` marked them just before)."""
        opening = tx.extras.get("opening", {})
        tx.extras.setdefault("notify", set()).update(r["id"] for r in rows if r["id"] in opening)

    async def after(self, tx: LogTransaction, rows: list[dict[str, Any]]) -> None:
        """Queue one notice per matching route and recipient, and a reminder when asked."""
        marked = tx.extras.get("notify", set())
        ids = [
            r["approval_id"]
            for r in rows
            if r["id"] in marked and r.get("status") == "pending_approval"
        ]
        if not ids:
            return
        routes = tx.extras.get("notify.routes")  # read once per transaction
        if routes is None:
            found = (await tx.conn.execute(ALL_ROUTES)).mappings()
            routes = tx.extras["notify.routes"] = [dict(r) for r in found]
        if not routes:
            return
        approvals = [
            dict(r)
            for r in (
                await tx.conn.execute(select(approvals_table).where(approvals_table.c.id.in_(ids)))
            ).mappings()
        ]
        deliveries = []
        for approval in approvals:
            for route in routes:
                if not route_matches(route, approval):
                    continue
                for address, reviewer in await recipients(tx, route, approval):
                    notice = Notice(
                        action="open",
                        channel=route["channel"],
                        to=address,
                        approval_id=approval["id"],
                        reviewer=reviewer,
                        route_id=route["id"],
                    )
                    deliveries.append(notice_row(notice, approval["event_id"]))
                    if route["remind_after_seconds"]:
                        later = datetime.now(UTC) + timedelta(seconds=route["remind_after_seconds"])
                        notice.action = "remind"
                        deliveries.append(notice_row(notice, approval["event_id"], iso(later)))
        if deliveries:
            await tx.insert(deliveries_table, deliveries)
            if self.wake not in tx.after_commit:
                tx.after_commit.append(self.wake)


# Slack messages sent for an approval, or Slack notices of it still queued (run on every
# decision: built once, one statement).
SLACK_TOUCHED = prepared(
    select(
        or_(
            select(slack_messages_table.c.id)
            .where(slack_messages_table.c.approval_id == bindparam("approval_id"))
            .exists(),
            select(deliveries_table.c.id)
            .where(
                deliveries_table.c.approval_id == bindparam("approval_id"),
                deliveries_table.c.kind == KIND,
                deliveries_table.c.url.startswith("slack:"),
            )
            .exists(),
        )
    )
)
ALL_ROUTES = prepared(select(routes_table))


async def slack_updates(
    tx: LogTransaction, approval: dict[str, Any], resolution: dict[str, Any]
) -> list[dict[str, Any]]:
    """One ``chat.update`` delivery when Slack messages were sent (or queued) for an approval."""
    if not (await tx.conn.execute(SLACK_TOUCHED, {"approval_id": approval["id"]})).scalar():
        return []
    notice = Notice(action="update", channel="slack", to="messages", approval_id=approval["id"])
    return [notice_row(notice, int(resolution["id"]))]
