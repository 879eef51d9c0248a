"""Which secrets sign a delivery: the endpoint's, the callback secret, or a source's."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from approvals.core.clock import now_iso
from approvals.core.secretbox import stored
from approvals.delivery.outbox import endpoints_table
from approvals.delivery.signing import new_secret

CALLBACK = "callback"

# kind -> coroutine giving the secrets for a delivery; connectors register "resume".
LOOKUPS: dict[str, Callable[[AsyncConnection, dict[str, Any]], Awaitable[list[str]]]] = {}


def callback_secret(conn: Connection) -> str:
    """The service-wide secret that signs approval callbacks (created on first use)."""
    return stored(conn, CALLBACK, new_secret)


async def signing_secrets(conn: AsyncConnection, delivery: dict[str, Any]) -> list[str]:
    """Every secret a delivery is signed with (two while a rotated one is still honoured)."""
    kind = delivery["kind"]
    if kind == "endpoint":
        row = (
            await conn.execute(
                select(
                    endpoints_table.c.secret,
                    endpoints_table.c.previous_secret,
                    endpoints_table.c.previous_secret_until,
                ).where(endpoints_table.c.id == delivery["endpoint_id"])
            )
        ).first()
        if row is None:
            return []
        keys = [row.secret]
        if row.previous_secret and (row.previous_secret_until or "") > now_iso():
            keys.append(row.previous_secret)
        return keys
    if kind == "callback":
        value = await conn.run_sync(lambda sync: callback_secret(sync))
        return [value]
    lookup = LOOKUPS.get(kind)
    return await lookup(conn, delivery) if lookup is not None else []


async def signing_secrets_for(
    conn: AsyncConnection, deliveries: list[dict[str, Any]]
) -> dict[str, list[str]]:
    """The signing secrets of several deliveries (delivery id -> secrets), in few queries."""
    out: dict[str, list[str]] = {}
    endpoint_ids = {d["endpoint_id"] for d in deliveries if d["kind"] == "endpoint"}
    endpoints: dict[str, list[str]] = {}
    if endpoint_ids:
        now = now_iso()
        rows = await conn.execute(
            select(
                endpoints_table.c.id,
                endpoints_table.c.secret,
                endpoints_table.c.previous_secret,
                endpoints_table.c.previous_secret_until,
            ).where(endpoints_table.c.id.in_(sorted(endpoint_ids)))
        )
        for row in rows:
            keys = [row.secret]
            if row.previous_secret and (row.previous_secret_until or "") > now:
                keys.append(row.previous_secret)
            endpoints[row.id] = keys
    callback: list[str] = []
    for delivery in deliveries:
        if delivery["kind"] == "endpoint":
            out[delivery["id"]] = endpoints.get(delivery["endpoint_id"], [])
        elif delivery["kind"] == "callback":
            callback = callback or await signing_secrets(conn, delivery)
            out[delivery["id"]] = callback
        else:
            out[delivery["id"]] = await signing_secrets(conn, delivery)
    return out
