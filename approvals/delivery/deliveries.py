"""Manual work on the delivery log: sending a delivery again by hand, audited."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from approvals.auth import audit
from approvals.core.clock import now_iso
from approvals.core.errors import not_found
from approvals.delivery.outbox import deliveries_table
from approvals.delivery.worker import WithWorker


async def requeue(services: WithWorker, delivery_id: str, actor: str) -> Any:
    """Make a delivery due now, its next attempt marked manual, and audit it (``actor`` as
    ``key:NAME`` or ``user:NAME``); 404 when unknown."""
    async with services.log.transaction(actor.partition(":")[2]) as tx:
        conn = tx.conn
        result = await conn.execute(
            update(deliveries_table)
            .where(deliveries_table.c.id == delivery_id)
            .values(
                status="pending",
                next_attempt_at=now_iso(),
                next_trigger="manual",
                claimed_until=None,
                updated_at=now_iso(),
            )
        )
        if result.rowcount == 0:
            raise not_found(f"delivery {delivery_id}")
        row = (
            (
                await conn.execute(
                    select(deliveries_table).where(deliveries_table.c.id == delivery_id)
                )
            )
            .mappings()
            .one()
        )
        await audit.record(
            tx,
            "delivery.retried",
            actor,
            f"Delivery {delivery_id} sent again by hand",
            delivery=delivery_id,
            webhook=row["endpoint_id"],
            eventType=row["event_type"],
        )
    services.webhooks.wake()
    return row
