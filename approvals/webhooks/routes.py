"""HTTP handlers for webhook endpoints and the delivery log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from litestar import Request, delete, get, post
from litestar.params import FromPath
from sqlalchemy import delete as sql_delete
from sqlalchemy import insert, select, update

from approvals.auth.guard import requires
from approvals.clock import iso, now_iso
from approvals.db import one_or_404
from approvals.errors import ApiError, invalid, not_found
from approvals.events.log import new_id
from approvals.events.routes import read_json
from approvals.queue.schema import check_url
from approvals.webhooks import destinations
from approvals.webhooks.outbox import deliveries_table, endpoints_table
from approvals.webhooks.signing import new_secret
from approvals.webhooks.worker import attempts_table, endpoint_status

ROTATION_OVERLAP = timedelta(hours=24)
DELIVERY_STATUSES = ("pending", "succeeded", "failed")


def _check_types(value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise invalid(
            "body.eventTypes",
            "must be a non-empty list of event types ('approval.resolved', 'approval.*', '*')",
        )
    for index, item in enumerate(value):
        if (
            not isinstance(item, str)
            or not item
            or len(item) > 200
            or not item.isprintable()
            or " " in item
        ):
            raise invalid(f"body.eventTypes[{index}]", "is not an event type")
        if "*" in item.rstrip("*") or ("*" in item and item != "*" and not item.endswith(".*")):
            raise invalid(
                f"body.eventTypes[{index}]",
                "wildcards are '*' (every type) or a prefix such as 'approval.*'",
            )
    return sorted(set(value))


def endpoint_json(row: Any, settings: Any, secret: str | None = None) -> dict[str, Any]:
    """The public JSON of an endpoint; the secret only when just created or rotated."""
    out = {
        "id": row["id"],
        "url": row["url"],
        "description": row["description"],
        "eventTypes": row["event_types"],
        "status": endpoint_status(row, settings.webhook_failing_after),
        "disabledReason": row["disabled_reason"],
        "createdAt": row["created_at"],
        "lastSuccessAt": row["last_success_at"],
        "lastFailureAt": row["last_failure_at"],
        "failingSince": row["failing_since"],
        "failureStreak": row["failure_streak"],
    }
    if secret is not None:
        out["secret"] = secret
    return out


def delivery_json(row: Any, attempts: list[Any] | None = None) -> dict[str, Any]:
    """The public JSON of a delivery, with its attempts when given."""
    out: dict[str, Any] = {
        "id": row["id"],
        "msgId": row["msg_id"],
        "kind": row["kind"],
        "endpointId": row["endpoint_id"],
        "url": row["url"],
        "eventId": str(row["event_id"]),
        "eventType": row["event_type"],
        "status": row["status"],
        "attempts": row["attempts"],
        "nextAttemptAt": row["next_attempt_at"],
        "lastStatusCode": row["last_status_code"],
        "lastError": row["last_error"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }
    if attempts is not None:
        out["history"] = [
            {
                "attempt": a["attempt"],
                "trigger": a["trigger"],
                "statusCode": a["status_code"],
                "durationMs": a["duration_ms"],
                "error": a["error"],
                "at": a["created_at"],
            }
            for a in attempts
        ]
    return out


async def _endpoint(request: Request[Any, Any, Any], endpoint_id: str) -> Any:
    engine = request.app.state.services.engine
    return await one_or_404(engine, endpoints_table, endpoint_id, "webhook endpoint")


@post("/v1/webhooks", guards=[requires("admin")], status_code=201)
async def create_endpoint(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Register an endpoint; the answer carries its signing secret, shown this once."""
    body = await read_json(request)
    if not isinstance(body, dict):
        raise invalid("body", "must be a JSON object")
    unknown = sorted(set(body) - {"url", "eventTypes", "description"})
    if unknown:
        raise invalid(f"body.{unknown[0]}", "is not a field here (url, eventTypes, description)")
    url = check_url(body.get("url"), "body.url")
    types = _check_types(body.get("eventTypes"))
    description = body.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > 500):
        raise invalid("body.description", "must be a string of at most 500 characters")
    settings = request.app.state.services.settings
    allowed = destinations.parse(settings.webhook_allowed)
    host = url.split("//", 1)[1].split("/", 1)[0].split("@")[-1].rsplit(":", 1)[0].strip("[]")
    literal = [host] if host.replace(".", "").isdigit() or ":" in host else []
    if not allowed.open and not allowed.permits(host, literal):
        raise invalid(
            "body.url",
            f"{host} is not an allowed destination (APPROVALS_WEBHOOK_ALLOWED_DESTINATIONS)",
        )
    secret = new_secret()
    values = {
        "id": new_id("wh"),
        "url": url,
        "description": description,
        "event_types": types,
        "secret": secret,
        "created_at": now_iso(),
        "failure_streak": 0,
        "disabled_reason": None,
        "last_success_at": None,
        "last_failure_at": None,
        "failing_since": None,
    }
    async with request.app.state.services.engine.begin() as conn:
        await conn.execute(insert(endpoints_table).values(**values))
    return endpoint_json(values, settings, secret)


@get("/v1/webhooks", guards=[requires("admin")])
async def list_endpoints(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Every endpoint with its health."""
    services = request.app.state.services
    async with services.engine.connect() as conn:
        rows = (
            (await conn.execute(select(endpoints_table).order_by(endpoints_table.c.created_at)))
            .mappings()
            .all()
        )
    return {"webhooks": [endpoint_json(row, services.settings) for row in rows]}


@get("/v1/webhooks/{endpoint_id:str}", guards=[requires("admin")])
async def get_endpoint(
    request: Request[Any, Any, Any], endpoint_id: FromPath[str]
) -> dict[str, Any]:
    """One endpoint with its health."""
    row = await _endpoint(request, endpoint_id)
    return endpoint_json(row, request.app.state.services.settings)


@delete("/v1/webhooks/{endpoint_id:str}", guards=[requires("admin")], status_code=204)
async def delete_endpoint(request: Request[Any, Any, Any], endpoint_id: FromPath[str]) -> None:
    """Remove an endpoint; its pending deliveries are settled as failed."""
    await _endpoint(request, endpoint_id)
    async with request.app.state.services.engine.begin() as conn:
        await conn.execute(
            update(deliveries_table)
            .where(
                deliveries_table.c.endpoint_id == endpoint_id,
                deliveries_table.c.status == "pending",
            )
            .values(status="failed", last_error="endpoint deleted", next_attempt_at=None)
        )
        await conn.execute(sql_delete(endpoints_table).where(endpoints_table.c.id == endpoint_id))


@post("/v1/webhooks/{endpoint_id:str}/rotate-secret", guards=[requires("admin")], status_code=200)
async def rotate_secret(
    request: Request[Any, Any, Any], endpoint_id: FromPath[str]
) -> dict[str, Any]:
    """Issue a new secret; the old one keeps signing beside it for 24 hours."""
    row = await _endpoint(request, endpoint_id)
    secret = new_secret()
    until = iso(datetime.now(UTC) + ROTATION_OVERLAP)
    async with request.app.state.services.engine.begin() as conn:
        await conn.execute(
            update(endpoints_table)
            .where(endpoints_table.c.id == endpoint_id)
            .values(secret=secret, previous_secret=row["secret"], previous_secret_until=until)
        )
    row = await _endpoint(request, endpoint_id)
    out = endpoint_json(row, request.app.state.services.settings, secret)
    out["previousSecretValidUntil"] = until
    return out


@get("/v1/webhooks/{endpoint_id:str}/deliveries", guards=[requires("admin")])
async def list_deliveries(
    request: Request[Any, Any, Any], endpoint_id: FromPath[str]
) -> dict[str, Any]:
    """An endpoint's deliveries, newest first, with their attempts."""
    await _endpoint(request, endpoint_id)
    params = request.query_params
    status = params.get("status")
    if status is not None and status not in DELIVERY_STATUSES:
        raise ApiError(
            400,
            "invalid",
            f"status: must be one of {', '.join(DELIVERY_STATUSES)}",
            field="status",
        )
    limit_raw = params.get("limit", "50")
    if not limit_raw.isdigit() or not 1 <= int(limit_raw) <= 500:
        raise ApiError(400, "invalid", "limit: must be from 1 to 500", field="limit")
    limit = int(limit_raw)
    cursor = params.get("cursor")
    table = deliveries_table
    query = select(table).where(table.c.endpoint_id == endpoint_id)
    if status:
        query = query.where(table.c.status == status)
    if cursor:
        query = query.where(table.c.id < cursor)
    query = query.order_by(table.c.event_id.desc(), table.c.id.desc()).limit(limit + 1)
    async with request.app.state.services.engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
        page = rows[:limit]
        attempts: dict[str, list[Any]] = {row["id"]: [] for row in page}
        if page:
            for attempt in (
                await conn.execute(
                    select(attempts_table)
                    .where(attempts_table.c.delivery_id.in_(list(attempts)))
                    .order_by(attempts_table.c.id)
                )
            ).mappings():
                attempts[attempt["delivery_id"]].append(attempt)
    return {
        "deliveries": [delivery_json(row, attempts[row["id"]]) for row in page],
        "nextCursor": page[-1]["id"] if len(rows) > limit else None,
    }


async def requeue(services: Any, delivery_id: FromPath[str]) -> Any:
    """Make a delivery due now, its next attempt marked manual; 404 when unknown."""
    async with services.engine.begin() as conn:
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
    services.webhooks.wake()
    return row


@post("/v1/deliveries/{delivery_id:str}/retry", guards=[requires("admin")], status_code=202)
async def retry_delivery(
    request: Request[Any, Any, Any], delivery_id: FromPath[str]
) -> dict[str, Any]:
    """Send a delivery again now (recorded as a manual attempt)."""
    return delivery_json(await requeue(request.app.state.services, delivery_id))
