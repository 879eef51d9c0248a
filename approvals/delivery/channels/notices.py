"""Notification deliveries, written to the outbox in the transaction that opens or resolves."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import bindparam, or_, select, union
from sqlalchemy.ext.asyncio import AsyncEngine

from approvals.auth.users import stand_in, users_table
from approvals.core.clock import iso, now_iso, parse_iso
from approvals.core.errors import invalid
from approvals.delivery.channels.catalog import CHANNELS, LIVE
from approvals.delivery.channels.catalog import label as channel_label
from approvals.delivery.channels.models import channel_messages_table, routes_table
from approvals.delivery.channels.pager import KIND as PAGE
from approvals.delivery.channels.pager import TRIGGER, Page, page_row
from approvals.delivery.channels.schema import Lead, Notice
from approvals.delivery.outbox import deliveries_table, pending_row
from approvals.events.log import LogTransaction
from approvals.events.writer import prepared
from approvals.queue import policy, service
from approvals.queue.service import approvals_table, policies_table

log = logging.getLogger("approvals.notify")

KIND = "notify"
REVIEWERS = "reviewers"
PUSH = "push"
# Where a reviewer is reached on each channel; Web Push keeps its devices per reviewer.
CONTACT = {name: users_table.c[kind.contact] for name, kind in CHANNELS.items()}
CONTACT[PUSH] = users_table.c.username


# Notices that matter only while the approval waits: skipped once it is decided.
WHILE_PENDING = ("remind", "escalate", "warn", "assign")


def lead(notice: Notice, approval: dict[str, Any]) -> Lead | None:
    """What a reminder, an escalation or a timeout warning says before the request."""
    if notice.action == "remind":
        return Lead("Reminder", "this request is still waiting for a decision.")
    if notice.action == "escalate":
        waited = datetime.now(UTC) - parse_iso(approval["createdAt"])
        return Lead(
            "Escalated",
            f"this request has waited {_duration(waited)} for a decision "
            f"(escalation step {notice.step}).",
        )
    if notice.action == "assign":
        away = approval.get("delegatedFrom")
        return Lead(
            "Assigned to you",
            f"{approval.get('assignedBy')} handed this request to you"
            + (f" for {away}, who is away." if away else "."),
        )
    if notice.action == "warn" and approval["expiresAt"]:
        left = parse_iso(approval["expiresAt"]) - datetime.now(UTC)
        outcome = "approved" if approval["onTimeout"] == "approve" else "rejected"
        return Lead(
            "Expiring soon",
            f"this request times out in {_duration(left)} and will then be {outcome}.",
        )
    return None


def _duration(span: timedelta) -> str:
    minutes = max(0, round(span.total_seconds() / 60))
    if minutes < 1:
        return "less than a minute"
    if minutes < 120:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{minutes // 60} hours {minutes % 60} minutes"


def notice_row(notice: Notice, event_id: int, due: str | None = None) -> dict[str, Any]:
    """A pending outbox row of kind ``notify`` carrying ``notice``."""
    kind = CHANNELS.get(notice.channel)
    scheme = kind.scheme if kind is not None else notice.channel
    return pending_row(
        kind=KIND,
        msg_id=f"msg_{event_id}_{notice.action}{notice.step or ''}_{notice.to}"[:100],
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
    """``(address, reviewer)`` pairs a route sends one approval to; what would go to a
    reviewer who is away goes to their delegate instead."""
    column = CONTACT[route["channel"]]
    if route["target"] == REVIEWERS:
        rows = await tx.conn.execute(
            select(users_table.c.username, column)
            .where(users_table.c.disabled.is_(False), column.is_not(None))
            .order_by(users_table.c.username)
        )
        pairs = [(address, user) for user, address in rows if allowed(user, approval)]
        return await _covered(tx, column, pairs, approval)
    if route["channel"] == "email":
        owner = (
            await tx.conn.execute(
                select(users_table.c.username).where(
                    users_table.c.disabled.is_(False),
                    users_table.c.email == route["target"],
                )
            )
        ).scalar()
        reviewer = owner if owner and allowed(owner, approval) else None
        return await _covered(tx, column, [(route["target"], reviewer)], approval)
    return [(route["target"], None)]


async def deciders(tx: LogTransaction, approval: dict[str, Any]) -> list[str]:
    """Every active reviewer the approval's policy lets decide it, an away reviewer replaced
    by whoever stands in for them: whom Web Push tells (the same rule as ``reviewers``
    routes, on a channel where a reviewer's address is their name)."""
    pairs = await recipients(tx, {"channel": PUSH, "target": REVIEWERS}, approval)
    return [user for _, user in pairs if user is not None]


async def _covered(
    tx: LogTransaction, column: Any, pairs: list[tuple[str, str | None]], approval: dict[str, Any]
) -> list[tuple[str, str | None]]:
    """``pairs`` with each away reviewer replaced by whoever stands in for them (left out
    when that reviewer has no address on this channel or may not decide), once each."""
    away = tx.extras.get("notify.away")  # who is away now: read once per transaction
    if away is None:
        found = await tx.conn.execute(
            select(users_table.c.username).where(users_table.c.away_until > now_iso())
        )
        away = tx.extras["notify.away"] = set(found.scalars())
    out: list[tuple[str, str | None]] = []
    for address, user in pairs:
        if user is not None and user in away:
            effective, _ = await stand_in(tx.conn, user)
            if effective != user:
                moved = (
                    await tx.conn.execute(select(column).where(users_table.c.username == effective))
                ).scalar()
                if not moved or not allowed(effective, approval):
                    continue
                address, user = moved, effective
        if (address, user) not in out:
            out.append((address, user))
    return out


async def assign(
    tx: LogTransaction, approval_id: str, to: str, by: str, wake: Callable[[], None]
) -> dict[str, Any]:
    """Hand a pending request to reviewer ``to`` (to their delegate while they are away),
    claimed by them, and tell them on each channel they have. Returns the approval row."""
    found = (
        await tx.conn.execute(select(users_table.c.disabled).where(users_table.c.username == to))
    ).first()
    if found is None or found.disabled:
        raise invalid("body.to", f"no active reviewer named {to!r}")
    effective, away = await stand_in(tx.conn, to)
    row = await service.assign(tx, approval_id, effective, by, delegated_from=away)
    contacts = (
        await tx.conn.execute(
            select(*(CONTACT[name] for name in CHANNELS)).where(users_table.c.username == effective)
        )
    ).first()
    notes = []
    for channel, address in zip(CHANNELS, contacts or [None] * len(CHANNELS), strict=True):
        if address:
            notice = Notice(
                action="assign",
                channel=channel,
                to=address,
                approval_id=approval_id,
                reviewer=effective,
            )
            notes.append(notice_row(notice, row["event_id"]))
    if notes:
        await tx.insert(deliveries_table, notes)
        if wake not in tx.after_commit:
            tx.after_commit.append(wake)
    return row


class OpenNotifications:
    """The append hook that queues the notices of every approval opened (and left pending)."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self.wake = wake
        # Channels without routes (Web Push) add deliveries for the approvals opened here.
        self.on_open: list[
            Callable[[LogTransaction, list[dict[str, Any]]], Awaitable[list[dict[str, Any]]]]
        ] = []

    def prepare(self, tx: LogTransaction, rows: list[dict[str, Any]]) -> None:
        """Remember which rows open an approval (``OpenApprovals`` marked them just before)."""
        opening = tx.extras.get("opening", {})
        tx.extras.setdefault("notify", set()).update(r["id"] for r in rows if r["id"] in opening)

    async def after(self, tx: LogTransaction, rows: list[dict[str, Any]]) -> None:
        """Queue one notice per matching route and recipient, a reminder and a warning
        before the timeout when asked, the steps of the policy's escalation ladder, and
        what the ``on_open`` channels add."""
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
        approvals = [
            dict(r)
            for r in (
                await tx.conn.execute(select(approvals_table).where(approvals_table.c.id.in_(ids)))
            ).mappings()
        ]
        ladders = await _ladders(tx, approvals)
        deliveries = []
        for hook in self.on_open:
            deliveries.extend(await hook(tx, approvals))
        for approval in approvals:
            ladder = ladders.get(approval["policy_id"])
            warn = _warning_due(approval, ladder)
            for route in routes:
                if not route_matches(route, approval):
                    continue
                for notice in await _notices(tx, route, approval, "open"):
                    deliveries.append(notice_row(notice, approval["event_id"]))
                    if route["remind_after_seconds"]:
                        later = datetime.now(UTC) + timedelta(seconds=route["remind_after_seconds"])
                        notice.action = "remind"
                        deliveries.append(notice_row(notice, approval["event_id"], iso(later)))
                    if warn is not None:
                        notice.action = "warn"
                        deliveries.append(notice_row(notice, approval["event_id"], warn))
            if ladder is not None:
                deliveries.extend(await _steps(tx, approval, ladder["escalation"] or [], routes))
        if deliveries:
            await tx.insert(deliveries_table, deliveries)
            if self.wake not in tx.after_commit:
                tx.after_commit.append(self.wake)


async def check_ladder(conn: Any, ladder: list[dict[str, Any]] | None) -> None:
    """422 naming the step whose ``notify`` is neither ``reviewers`` nor a route's id."""
    named = {s["notify"] for s in ladder or [] if s.get("notify") not in (None, REVIEWERS)}
    if not named:
        return
    found = await conn.execute(select(routes_table.c.id).where(routes_table.c.id.in_(named)))
    known = set(found.scalars())
    for index, step in enumerate(ladder or []):
        if step.get("notify") in named - known:
            raise invalid(
                f"body.escalation[{index}].notify",
                f"no notification route {step['notify']}: name one of GET /v1/notifications "
                "or 'reviewers'",
            )


async def _ladders(
    tx: LogTransaction, approvals: list[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """The escalation and warning of the policies these approvals were opened under
    (only those that have either)."""
    policy_ids = {a["policy_id"] for a in approvals if a["policy_id"] is not None}
    if not policy_ids:
        return {}
    table = policies_table
    found = await tx.conn.execute(
        select(table.c.id, table.c.escalation, table.c.warn_before_seconds).where(
            table.c.id.in_(policy_ids)
        )
    )
    return {
        row.id: dict(row._mapping)
        for row in found
        if row.escalation or row.warn_before_seconds is not None
    }


def _warning_due(approval: dict[str, Any], ladder: dict[str, Any] | None) -> str | None:
    """When to warn that the approval is about to time out (None: no warning, or the
    timeout is nearer than the warning)."""
    if ladder is None or not ladder["warn_before_seconds"] or not approval["timeout_at"]:
        return None
    due = parse_iso(approval["timeout_at"]) - timedelta(seconds=ladder["warn_before_seconds"])
    return iso(due) if due > parse_iso(approval["created_at"]) else None


async def _steps(
    tx: LogTransaction,
    approval: dict[str, Any],
    ladder: list[dict[str, Any]],
    routes: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """The deliveries of an escalation ladder, each due when its step fires; the sender
    skips those whose approval was decided first. A step due after the timeout is left out."""
    opened = parse_iso(approval["created_at"])
    deadline = parse_iso(approval["timeout_at"]) if approval["timeout_at"] else None
    by_id = {route["id"]: route for route in routes}
    out = []
    for number, step in enumerate(ladder, start=1):
        at = opened + timedelta(seconds=step["afterSeconds"])
        if deadline is not None and at >= deadline:
            break
        due = iso(at)
        if step.get("page"):
            page = Page(
                action="trigger",
                approval_id=approval["id"],
                routing_key=step["page"]["routingKey"],
                severity=step["page"].get("severity") or "critical",
                step=number,
            )
            out.append(page_row(page, approval["event_id"], due))
            continue
        targets: list[dict[str, Any]]
        if step["notify"] == REVIEWERS:
            targets = [{"id": None, "channel": c, "target": REVIEWERS} for c in CHANNELS]
        elif step["notify"] in by_id:
            targets = [by_id[step["notify"]]]
        else:
            log.warning(
                "approval %s: escalation step %d names route %s, which is gone",
                approval["id"],
                number,
                step["notify"],
            )
            continue
        for route in targets:
            for notice in await _notices(tx, route, approval, "escalate", number):
                out.append(notice_row(notice, approval["event_id"], due))
    return out


async def _notices(
    tx: LogTransaction,
    route: dict[str, Any],
    approval: dict[str, Any],
    action: str,
    step: int | None = None,
) -> list[Notice]:
    """One notice of ``action`` per recipient of ``route`` for ``approval``."""
    return [
        Notice(
            action=action,
            channel=route["channel"],
            to=address,
            approval_id=approval["id"],
            reviewer=reviewer,
            route_id=route["id"],
            step=step,
        )
        for address, reviewer in await recipients(tx, route, approval)
    ]


# The live channels that posted messages about an approval, or have notices of it queued
# (run on every decision: built once, one statement).
TOUCHED = prepared(
    union(
        select(channel_messages_table.c.channel).where(
            channel_messages_table.c.approval_id == bindparam("approval_id")
        ),
        select(deliveries_table.c.event_type).where(
            deliveries_table.c.approval_id == bindparam("approval_id"),
            deliveries_table.c.kind == KIND,
            or_(*(deliveries_table.c.url.startswith(f"{CHANNELS[n].scheme}:") for n in LIVE)),
        ),
    )
)
ALL_ROUTES = prepared(select(routes_table))


async def message_updates(
    tx: LogTransaction, approval: dict[str, Any], resolution: dict[str, Any]
) -> list[dict[str, Any]]:
    """One update delivery per live channel that posted (or will post) messages about an
    approval: each edits them to the outcome."""
    found = await tx.conn.execute(TOUCHED, {"approval_id": approval["id"]})
    names = sorted({row[0].split(".")[1] if "." in row[0] else row[0] for row in found})
    return [
        notice_row(
            Notice(action="update", channel=name, to="messages", approval_id=approval["id"]),
            int(resolution["id"]),
        )
        for name in names
    ]


@dataclass(frozen=True)
class Rung:
    """One escalation step or timeout warning of an approval, as its page tells it."""

    at: str  # when it fired, or is due
    state: str  # sent, due, skipped, failing, failed
    text: str


LADDER_TYPES = (TRIGGER, *(f"notification.{name}.escalate" for name in CHANNELS))
WARN_TYPES = tuple(f"notification.{name}.warn" for name in CHANNELS)


async def ladder_of(engine: AsyncEngine, approval_id: str) -> list[Rung]:
    """What the escalation ladder and the timeout warning did for one approval (and
    will do), in the order of their times."""
    table = deliveries_table
    async with engine.connect() as conn:
        found = await conn.execute(
            select(table)
            .where(
                table.c.approval_id == approval_id,
                table.c.event_type.in_(LADDER_TYPES + WARN_TYPES),
            )
            .order_by(table.c.created_at, table.c.id)
        )
        rows = [dict(r) for r in found.mappings()]
    return sorted((_rung(row) for row in rows), key=lambda rung: rung.at)


def _rung(row: dict[str, Any]) -> Rung:
    if row["kind"] == PAGE:
        page = msgspec.json.decode(row["payload"], type=Page)
        step, verb, whom = page.step, ("paged", "pages"), "PagerDuty"
    else:
        notice = msgspec.json.decode(row["payload"], type=Notice)
        step = notice.step
        verb = ("warned", "warns") if notice.action == "warn" else ("escalated to", "escalates to")
        whom = f"{channel_label(notice.channel)} {notice.to}"
    label = f"Step {step}: " if step else "Timeout warning: "
    done, due = f"{label}{verb[0]} {whom}", f"{label}{verb[1]} {whom}"
    if row["status"] == "succeeded" and row["last_status_code"] is not None:
        return Rung(row["updated_at"], "sent", done)
    if row["status"] == "succeeded":
        return Rung(row["updated_at"], "skipped", f"{label}not needed, decided first")
    if row["status"] == "failed":
        return Rung(row["updated_at"], "failed", f"{due} failed: {row['last_error']}")
    if row["attempts"]:
        return Rung(row["next_attempt_at"], "failing", f"{due}, failing: {row['last_error']}")
    return Rung(row["next_attempt_at"], "due", due)
