"""Decisions back upstream: a signed delivery to the source's ``resumeUrl``."""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from approvals.connectors.models import Source
from approvals.delivery.outbox import delivery_row
from approvals.events.log import LogTransaction, events_table
from approvals.events.writer import prepared

sources_table = Source.__table__  # type: ignore[attr-defined]
# Sources that resume runs upstream, read once per transaction (a batch decides many).
RESUMING_SOURCES = prepared(
    select(sources_table.c.name, sources_table.c.id, sources_table.c.resume_url).where(
        sources_table.c.resume_url.is_not(None), sources_table.c.resume_url != ""
    )
)
SOURCES = "connectors.resuming"  # tx.extras key
UPSTREAM_ID = prepared(
    select(events_table.c.external_id).where(events_table.c.id == bindparam("event_id"))
)


async def resume_deliveries(
    tx: LogTransaction, approval: dict[str, Any], resolution: dict[str, Any]
) -> list[dict[str, Any]]:
    """A delivery to the resumeUrl of the source that opened this approval, if any."""
    resuming = tx.extras.get(SOURCES)
    if resuming is None:
        found = (await tx.conn.execute(RESUMING_SOURCES)).mappings()
        resuming = tx.extras[SOURCES] = {r["name"]: dict(r) for r in found}
    source = resuming.get(approval["source"])
    if source is None:
        return []
    upstream_id = (await tx.conn.execute(UPSTREAM_ID, {"event_id": approval["event_id"]})).scalar()
    detail = resolution.get("detail") or {}
    data = {
        "upstreamEventId": upstream_id,
        "approvalId": approval["id"],
        "runId": approval["run_id"],
        "threadId": approval["thread_id"],
        "agentId": approval["agent_id"],
        "status": resolution["status"],
        "decision": detail.get("decision"),
        "outcome": detail.get("outcome"),
        "comment": detail.get("comment"),
        "answer": detail.get("answer"),
        "arguments": detail.get("arguments"),
        "resolvedBy": resolution["resolvedBy"],
        "resolvedAt": resolution["resolvedAt"],
        "eventId": resolution["id"],
    }
    row = delivery_row(
        kind="resume", url=source["resume_url"], event=resolution, source_id=source["id"]
    )
    row["payload"] = msgspec.json.encode(
        {"type": resolution["type"], "timestamp": resolution["createdAt"], "data": data}
    ).decode()
    return [row]


async def resume_secret(conn: AsyncConnection, delivery: dict[str, Any]) -> list[str]:
    """The secret that signs a source's resume deliveries."""
    value = (
        await conn.execute(
            select(sources_table.c.resume_secret).where(sources_table.c.id == delivery["source_id"])
        )
    ).scalar()
    return [value] if value else []
