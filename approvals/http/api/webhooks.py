"""HTTP handlers for webhook endpoints and the delivery log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from litestar import Request, delete, get, post
from litestar.params import FromQuery, JSONBody, PathParameter, QueryParameter
from sqlalchemy import delete as sql_delete
from sqlalchemy import insert, select, update

from approvals.auth import audit
from approvals.core.clock import iso, now_iso
from approvals.core.contract import WRITE_ERRORS, errors, refuse_body
from approvals.core.db import one_or_404
from approvals.core.errors import invalid
from approvals.core.outbound import check_url as check_destination
from approvals.core.outbound import parse as destinations
from approvals.delivery.deliveries import requeue
from approvals.delivery.outbox import deliveries_table, endpoints_table
from approvals.delivery.schema import (
    Attempt,
    DeliveryOut,
    DeliveryPage,
    WebhookCreate,
    WebhookList,
    WebhookOut,
)
from approvals.delivery.signing import new_secret
from approvals.delivery.worker import attempts_table, endpoint_status
from approvals.events.log import new_id
from approvals.http.guard import requires
from approvals.queue.schema import check_url

ROTATION_OVERLAP = timedelta(hours=24)
TAGS = ["webhooks"]
EndpointId = Annotated[str, PathParameter(max_length=200, description="the endpoint's id")]


def _check_types(value: list[str]) -> list[str]:
    for index, item in enumerate(value):
        if "*" in item.rstrip("*") or ("*" in item and item != "*" and not item.endswith(".*")):
            raise invalid(
                f"body.eventTypes[{index}]",
                "wildcards are '*' (every type) or a prefix such as 'approval.*'",
            )
    return sorted(set(value))


def endpoint_json(row: Any, settings: Any, secret: str | None = None) -> WebhookOut:
    """The public form of an endpoint; the secret only when just created or rotated."""
    return WebhookOut(
        id=row["id"],
        url=row["url"],
        description=row["description"],
        event_types=row["event_types"],
        status=endpoint_status(row, settings.webhook_failing_after),  # type: ignore[arg-type]
        disabled_reason=row["disabled_reason"],
        created_at=row["created_at"],
        last_success_at=row["last_success_at"],
        last_failure_at=row["last_failure_at"],
        failing_since=row["failing_since"],
        failure_streak=row["failure_streak"],
        secret=secret,
    )


def delivery_json(row: Any, attempts: list[Any] | None = None) -> DeliveryOut:
    """The public form of a delivery, with its attempts when given."""
    return DeliveryOut(
        id=row["id"],
        msg_id=row["msg_id"],
        kind=row["kind"],
        endpoint_id=row["endpoint_id"],
        url=row["url"],
        event_id=str(row["event_id"]),
        event_type=row["event_type"],
        status=row["status"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_status_code=row["last_status_code"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        history=None
        if attempts is None
        else [
            Attempt(
                attempt=a["attempt"],
                trigger=a["trigger"],
                status_code=a["status_code"],
                duration_ms=a["duration_ms"],
                error=a["error"],
                at=a["created_at"],
            )
            for a in attempts
        ],
    )


async def _endpoint(request: Request[Any, Any, Any], endpoint_id: str) -> Any:
    engine = request.app.state.services.engine
    return await one_or_404(engine, endpoints_table, endpoint_id, "webhook endpoint")


@post(
    "/v1/webhooks",
    guards=[requires("admin")],
    status_code=201,
    operation_id="createWebhook",
    tags=TAGS,
    summary="Register an endpoint; the answer carries its signing secret once",
    responses=errors(*WRITE_ERRORS),
)
async def create_endpoint(
    request: Request[Any, Any, Any], data: JSONBody[WebhookCreate]
) -> WebhookOut:
    """Register an endpoint; the answer carries its signing secret, shown this once."""
    url = check_url(data.url, "body.url")
    types = _check_types(data.event_types)
    description = data.description
    settings = request.app.state.services.settings
    check_destination(url, "body.url", destinations(settings.webhook_allowed))
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
    async with audit.change(request) as trail:
        await trail.conn.execute(insert(endpoints_table).values(**values))
        trail.note(
            "webhook.created",
            f"Webhook endpoint {values['id']} created",
            webhook=values["id"],
            host=urlsplit(url).hostname,  # not the URL: its path or query may be a credential
            eventTypes=types,
        )
    return endpoint_json(values, settings, secret)


@get(
    "/v1/webhooks",
    guards=[requires("admin")],
    operation_id="listWebhooks",
    tags=TAGS,
    summary="Every endpoint with its health",
    responses=errors(),
)
async def list_endpoints(request: Request[Any, Any, Any]) -> WebhookList:
    """Every endpoint with its health."""
    services = request.app.state.services
    async with services.engine.connect() as conn:
        rows = (
            (await conn.execute(select(endpoints_table).order_by(endpoints_table.c.created_at)))
            .mappings()
            .all()
        )
    return WebhookList(webhooks=[endpoint_json(row, services.settings) for row in rows])


@get(
    "/v1/webhooks/{endpoint_id:str}",
    guards=[requires("admin")],
    operation_id="getWebhook",
    tags=TAGS,
    summary="One endpoint with its health",
    responses=errors(404),
)
async def get_endpoint(request: Request[Any, Any, Any], endpoint_id: EndpointId) -> WebhookOut:
    """One endpoint with its health."""
    row = await _endpoint(request, endpoint_id)
    return endpoint_json(row, request.app.state.services.settings)


@delete(
    "/v1/webhooks/{endpoint_id:str}",
    guards=[requires("admin")],
    status_code=204,
    operation_id="deleteWebhook",
    tags=TAGS,
    summary="Remove an endpoint",
    responses=errors(404),
)
async def delete_endpoint(request: Request[Any, Any, Any], endpoint_id: EndpointId) -> None:
    """Remove an endpoint; its pending deliveries are settled as failed."""
    await _endpoint(request, endpoint_id)
    async with audit.change(request) as trail:
        conn = trail.conn
        trail.note(
            "webhook.deleted", f"Webhook endpoint {endpoint_id} deleted", webhook=endpoint_id
        )
        await conn.execute(
            update(deliveries_table)
            .where(
                deliveries_table.c.endpoint_id == endpoint_id,
                deliveries_table.c.status == "pending",
            )
            .values(status="failed", last_error="endpoint deleted", next_attempt_at=None)
        )
        await conn.execute(sql_delete(endpoints_table).where(endpoints_table.c.id == endpoint_id))


@post(
    "/v1/webhooks/{endpoint_id:str}/rotate-secret",
    guards=[requires("admin")],
    status_code=200,
    operation_id="rotateWebhookSecret",
    tags=TAGS,
    summary="Issue a new secret; the old one signs beside it for 24 hours",
    responses=errors(404),
)
async def rotate_secret(request: Request[Any, Any, Any], endpoint_id: EndpointId) -> WebhookOut:
    """Issue a new secret; the old one keeps signing beside it for 24 hours."""
    await refuse_body(request)
    row = await _endpoint(request, endpoint_id)
    secret = new_secret()
    until = iso(datetime.now(UTC) + ROTATION_OVERLAP)
    async with audit.change(request) as trail:
        await trail.conn.execute(
            update(endpoints_table)
            .where(endpoints_table.c.id == endpoint_id)
            .values(secret=secret, previous_secret=row["secret"], previous_secret_until=until)
        )
        trail.note(
            "webhook.secret_rotated",
            f"Webhook endpoint {endpoint_id} secret rotated",
            webhook=endpoint_id,
            previousValidUntil=until,
        )
    row = await _endpoint(request, endpoint_id)
    out = endpoint_json(row, request.app.state.services.settings, secret)
    out.previous_secret_valid_until = until
    return out


@get(
    "/v1/webhooks/{endpoint_id:str}/deliveries",
    guards=[requires("admin")],
    operation_id="listDeliveries",
    tags=TAGS,
    summary="An endpoint's deliveries, newest first, with their attempts",
    responses=errors(404),
)
async def list_deliveries(
    request: Request[Any, Any, Any],
    endpoint_id: EndpointId,
    status: FromQuery[Literal["pending", "succeeded", "failed"] | None] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
    cursor: Annotated[
        str | None,
        QueryParameter(max_length=200, description="the nextCursor of the previous page"),
    ] = None,
) -> DeliveryPage:
    """An endpoint's deliveries, newest first, with their attempts."""
    await _endpoint(request, endpoint_id)
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
    return DeliveryPage(
        deliveries=[delivery_json(row, attempts[row["id"]]) for row in page],
        next_cursor=page[-1]["id"] if len(rows) > limit else None,
    )


@post(
    "/v1/deliveries/{delivery_id:str}/retry",
    guards=[requires("admin")],
    status_code=202,
    operation_id="retryDelivery",
    tags=TAGS,
    summary="Send a delivery again now (recorded as a manual attempt)",
    responses=errors(404),
)
async def retry_delivery(
    request: Request[Any, Any, Any],
    delivery_id: Annotated[str, PathParameter(max_length=200)],
) -> DeliveryOut:
    """Send a delivery again now (recorded as a manual attempt)."""
    await refuse_body(request)
    actor = audit.actor_of(request.state.principal)
    return delivery_json(await requeue(request.app.state.services, delivery_id, actor))
