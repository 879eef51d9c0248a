"""What the dashboard shows, read from the log and the queue."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from approvals.events.log import events_table
from approvals.events.schema import to_json
from approvals.queue.service import approval_json, approvals_table
from approvals.webhooks.outbox import deliveries_table, endpoints_table
from approvals.webhooks.worker import attempts_table

TIMELINE_LIMIT = 300


async def pending(engine: AsyncEngine, limit: int = 200) -> list[dict[str, Any]]:
    """Pending approvals, newest first."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(approvals_table)
                .where(approvals_table.c.status == "pending")
                .order_by(approvals_table.c.event_id.desc())
                .limit(limit)
            )
        ).mappings()
        return [approval_json(row) for row in rows]


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


async def timeline(engine: AsyncEngine, approval: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's events before the request, with consecutive tokens joined into text."""
    if not approval.get("runId"):
        return []
    request_id = int(approval["requestEventId"])
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(events_table)
                .where(events_table.c.run_id == approval["runId"], events_table.c.id < request_id)
                .order_by(events_table.c.id.desc())
                .limit(TIMELINE_LIMIT)
            )
        ).mappings()
        events = [to_json(row) for row in rows][::-1]
    items: list[dict[str, Any]] = []
    for event in events:
        if event["type"] == "token":
            text = (event.get("detail") or {}).get("delta") or event.get("title") or ""
            if items and items[-1]["kind"] == "text":
                items[-1]["text"] += text
                continue
            items.append({"kind": "text", "text": text, "event": event})
        else:
            items.append({"kind": "event", "event": event})
    return items


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
