"""What the dashboard shows, read from the log and the queue."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from approvals.delivery.outbox import deliveries_table, endpoints_table
from approvals.delivery.worker import attempts_table
from approvals.events.log import events_table
from approvals.events.schema import EventOut, to_json
from approvals.queue.service import approval_json, approvals_table, policies_table
from approvals.views import rows
from approvals.views.render import token_text

TIMELINE_LIMIT = 300


INBOX_FILTERS = ("agent", "tool", "q", "sort")


def inbox_filters(params: Any) -> dict[str, str]:
    """The inbox's filters from query parameters: ``agent``, ``tool``, ``q`` and ``sort``."""
    out = {key: str(params.get(key) or "").strip()[:200] for key in INBOX_FILTERS}
    if out["sort"] not in ("", "due"):
        out["sort"] = ""
    return out


def matches(approval: dict[str, Any], filters: dict[str, str]) -> bool:
    """Tell whether a pending approval passes the inbox filters."""
    if filters.get("agent") and approval.get("agentId") != filters["agent"]:
        return False
    if filters.get("tool") and approval.get("tool") != filters["tool"]:
        return False
    text = filters.get("q", "").lower()
    if text:
        haystack = " ".join(
            str(approval.get(k) or "") for k in ("title", "tool", "agentId", "runId", "id")
        )
        return text in haystack.lower()
    return True


async def pending(
    engine: AsyncEngine, filters: dict[str, str] | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """Pending approvals matching the filters: newest first, or soonest due with ``sort=due``."""
    filters = filters or {}
    table = approvals_table
    query = select(table).where(table.c.status == "pending")
    if filters.get("agent"):
        query = query.where(table.c.agent_id == filters["agent"])
    if filters.get("tool"):
        query = query.where(table.c.tool == filters["tool"])
    if filters.get("sort") == "due":
        query = query.order_by(table.c.timeout_at.is_(None), table.c.timeout_at, table.c.event_id)
    else:
        query = query.order_by(table.c.event_id.desc())
    async with engine.connect() as conn:
        rows = (
            await conn.execute(query.limit(limit * 5 if filters.get("q") else limit))
        ).mappings()
        found = [approval_json(row) for row in rows]
    return [a for a in found if matches(a, filters)][:limit]


async def facets(engine: AsyncEngine) -> dict[str, list[str]]:
    """The agents and tools of pending approvals, for the inbox's filter choices."""
    table = approvals_table
    async with engine.connect() as conn:
        out = {}
        for name, column in (("agents", table.c.agent_id), ("tools", table.c.tool)):
            rows = await conn.execute(
                select(column).where(table.c.status == "pending", column.is_not(None)).distinct()
            )
            out[name] = sorted(str(v) for (v,) in rows)
    return out


async def policy(engine: AsyncEngine, policy_id: str | None) -> dict[str, Any] | None:
    """A stored policy's scope (``agentId``, ``tool``), or None when absent or deleted."""
    if policy_id is None:
        return None
    async with engine.connect() as conn:
        row = (
            (await conn.execute(select(policies_table).where(policies_table.c.id == policy_id)))
            .mappings()
            .first()
        )
    return {"agentId": row["agent_id"], "tool": row["tool"]} if row else None


async def history(engine: AsyncEngine, filters: dict[str, str], limit: int = 200) -> list[Any]:
    """Resolved approvals, newest decision first, filtered by status, reviewer, agent, dates."""
    table = approvals_table
    query = select(table).where(table.c.status != "pending")
    if filters.get("status"):
        query = query.where(table.c.status == filters["status"])
    if filters.get("reviewer"):
        query = query.where(table.c.resolved_by == filters["reviewer"])
    if filters.get("agent"):
        query = query.where(table.c.agent_id == filters["agent"])
    if filters.get("since"):
        query = query.where(table.c.resolved_at >= filters["since"])
    if filters.get("until"):
        query = query.where(table.c.resolved_at < filters["until"] + "T99")
    query = query.order_by(table.c.resolved_at.desc()).limit(limit)
    async with engine.connect() as conn:
        return [approval_json(row) for row in (await conn.execute(query)).mappings()]


@dataclass
class Moment:
    """One line of a request's run context: an event, or consecutive tokens as text."""

    kind: str  # "event" or "text"
    event: EventOut
    text: str = ""


async def timeline(engine: AsyncEngine, approval: dict[str, Any]) -> list[Moment]:
    """The run's events before the request, with consecutive tokens joined into text."""
    if not approval.get("runId"):
        return []
    request_id = int(approval["requestEventId"])
    async with engine.connect() as conn:
        found = (
            await conn.execute(
                select(events_table)
                .where(events_table.c.run_id == approval["runId"], events_table.c.id < request_id)
                .order_by(events_table.c.id.desc())
                .limit(TIMELINE_LIMIT)
            )
        ).mappings()
        events = rows.events(to_json(row) for row in found)[::-1]
    items: list[Moment] = []
    for event in events:
        if event.type == "token":
            text = token_text(event)
            if items and items[-1].kind == "text":
                items[-1].text += text
                continue
            items.append(Moment("text", event, text))
        else:
            items.append(Moment("event", event))
    return items


async def deliveries(engine: AsyncEngine, approval: dict[str, Any]) -> list[dict[str, Any]]:
    """The callback, webhook and resume deliveries of an approval's resolution event."""
    if not approval.get("resolutionEventId"):
        return []
    event_id = int(approval["resolutionEventId"])
    async with engine.connect() as conn:
        rows = [
            dict(r)
            for r in (
                await conn.execute(
                    select(deliveries_table)
                    .where(deliveries_table.c.event_id == event_id)
                    .order_by(deliveries_table.c.created_at, deliveries_table.c.id)
                )
            ).mappings()
        ]
        for row in rows:
            row["history"] = [
                dict(a)
                for a in (
                    await conn.execute(
                        select(attempts_table)
                        .where(attempts_table.c.delivery_id == row["id"])
                        .order_by(attempts_table.c.id)
                    )
                ).mappings()
            ]
    return rows


async def webhooks(engine: AsyncEngine) -> list[dict[str, Any]]:
    """Endpoints with their latest deliveries and each delivery's attempts."""
    async with engine.connect() as conn:
        endpoints = [dict(r) for r in (await conn.execute(select(endpoints_table))).mappings()]
        for endpoint in endpoints:
            deliveries = [
                dict(r)
                for r in (
                    await conn.execute(
                        select(deliveries_table)
                        .where(deliveries_table.c.endpoint_id == endpoint["id"])
                        .order_by(deliveries_table.c.event_id.desc())
                        .limit(20)
                    )
                ).mappings()
            ]
            for delivery in deliveries:
                delivery["history"] = [
                    dict(a)
                    for a in (
                        await conn.execute(
                            select(attempts_table)
                            .where(attempts_table.c.delivery_id == delivery["id"])
                            .order_by(attempts_table.c.id)
                        )
                    ).mappings()
                ]
            endpoint["deliveries"] = deliveries
    return endpoints


async def notifications(
    engine: AsyncEngine, approval_id: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """Notification deliveries (Slack, email, pages, Web Push), newest first, each with its
    attempts."""
    query = select(deliveries_table).where(deliveries_table.c.kind.in_(("notify", "page", "push")))
    if approval_id is not None:
        query = query.where(deliveries_table.c.approval_id == approval_id)
    query = query.order_by(deliveries_table.c.created_at.desc(), deliveries_table.c.id).limit(limit)
    async with engine.connect() as conn:
        rows = [dict(r) for r in (await conn.execute(query)).mappings()]
        ids = [r["id"] for r in rows]
        attempts: dict[str, list[dict[str, Any]]] = {}
        if ids:
            found = await conn.execute(
                select(attempts_table)
                .where(attempts_table.c.delivery_id.in_(ids))
                .order_by(attempts_table.c.id)
            )
            for a in found.mappings():
                attempts.setdefault(a["delivery_id"], []).append(dict(a))
    for row in rows:
        row["history"] = attempts.get(row["id"], [])
    return rows
