"""HTTP handlers of the approval queue and its policies."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from litestar import Request, delete, get, post
from litestar.params import FromPath
from sqlalchemy import delete as sql_delete
from sqlalchemy import insert, select

from approvals.auth.guard import requires
from approvals.clock import now_iso
from approvals.errors import ApiError, invalid, not_found
from approvals.events.log import new_id
from approvals.events.routes import read_json
from approvals.queue import service
from approvals.queue.schema import parse_decision, parse_policy, parse_request

STATUSES = ("pending", "approved", "rejected", "answered", "expired", "all")
MAX_WAIT = 60.0
MAX_LIMIT = 500
log = logging.getLogger("approvals.queue")


@post("/v1/approvals", guards=[requires("events:write")], status_code=201)
async def open_approval(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Open an approval: append its ``steering_request`` event."""
    row, options = parse_request(await read_json(request))
    row[service.OPTIONS_KEY] = options
    services = request.app.state.services
    (event,) = await services.log.append([row], request.state.principal.name)
    return await service.fetch(services.engine, event["approvalId"], full=True)


@get("/v1/approvals", guards=[requires("approvals:read")])
async def list_approvals(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The queue, oldest first, with cursor pagination."""
    params = request.query_params
    status = params.get("status", "pending")
    if status not in STATUSES:
        raise ApiError(
            400, "invalid", f"status: must be one of {', '.join(STATUSES)}", field="status"
        )
    limit_raw = params.get("limit", "50")
    if not limit_raw.isdigit() or not 1 <= int(limit_raw) <= MAX_LIMIT:
        raise ApiError(
            400, "invalid", f"limit: must be a whole number from 1 to {MAX_LIMIT}", field="limit"
        )
    limit = int(limit_raw)
    cursor = params.get("cursor")
    if cursor is not None and not cursor.isdigit():
        raise ApiError(
            400, "invalid", "cursor: pass the nextCursor of the previous page", field="cursor"
        )
    table = service.approvals_table
    query = select(table)
    if status != "all":
        query = query.where(table.c.status == status)
    for name, column in (
        ("run_id", table.c.run_id),
        ("thread_id", table.c.thread_id),
        ("agent_id", table.c.agent_id),
    ):
        value = params.get(name)
        if value:
            query = query.where(column.in_([v for v in value.split(",") if v]))
    if cursor is not None:
        query = query.where(table.c.event_id > int(cursor))
    query = query.order_by(table.c.event_id).limit(limit + 1)
    async with request.app.state.services.engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "approvals": [service.approval_json(row) for row in rows],
        "nextCursor": str(rows[-1]["event_id"]) if more else None,
    }


@get("/v1/approvals/{approval_id:str}", guards=[requires("approvals:read")])
async def get_approval(
    request: Request[Any, Any, Any], approval_id: FromPath[str]
) -> dict[str, Any]:
    """One approval with its request and resolution; ``wait`` long-polls for the decision."""
    services = request.app.state.services
    raw_wait = request.query_params.get("wait")
    wait = 0.0
    if raw_wait is not None:
        try:
            wait = float(raw_wait)
        except ValueError:
            wait = -1
        if not wait >= 0:
            raise ApiError(400, "invalid", "wait: must be a number of seconds", field="wait")
        wait = min(wait, MAX_WAIT)
    current = await service.fetch(services.engine, approval_id, full=True)
    deadline = time.monotonic() + wait
    position = services.broker.head
    while current["status"] == "pending" and (remaining := deadline - time.monotonic()) > 0:
        if not await services.broker.wait(position, remaining):
            break
        items = services.broker.since(position)
        position = services.broker.head
        if items is not None and not any(
            item.event.get("approvalId") == approval_id for item in items
        ):
            continue
        current = await service.fetch(services.engine, approval_id, full=True)
    return current


async def _decide_one(
    request: Request[Any, Any, Any], approval_id: str, body: dict[str, Any]
) -> Any:
    services = request.app.state.services
    principal = request.state.principal.name
    async with services.log.transaction(principal) as tx:
        await service.decide(
            tx,
            approval_id,
            decision=body["decision"],
            principal=principal,
            comment=body["comment"],
            answer=body["answer"],
            arguments=body["arguments"],
        )
    return await service.fetch(services.engine, approval_id, full=True)


@post(
    "/v1/approvals/{approval_id:str}/decision",
    guards=[requires("approvals:resolve")],
    status_code=200,
)
async def decide(request: Request[Any, Any, Any], approval_id: FromPath[str]) -> Any:
    """Approve, reject or answer one approval; 409 when it is already resolved."""
    body = parse_decision(await read_json(request))
    return await _decide_one(request, approval_id, body)


@post("/v1/approvals/decisions", guards=[requires("approvals:resolve")], status_code=200)
async def decide_many(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Decide several approvals; each item succeeds or fails on its own."""
    raw = await read_json(request)
    if not isinstance(raw, list) or not raw:
        raise invalid("body", "must be a non-empty JSON array of {id, decision, ...}")
    if len(raw) > 500:
        raise invalid("body", "at most 500 decisions per request")
    results: list[dict[str, Any]] = []
    for index, item in enumerate(raw):
        try:
            body = parse_decision(item, f"body[{index}]", with_id=True)
            approval = await _decide_one(request, body["id"], body)
            results.append({"id": body["id"], "status": 200, "approval": approval})
        except ApiError as exc:
            results.append(
                {
                    "id": item.get("id") if isinstance(item, dict) else None,
                    "status": exc.status,
                    "error": exc.code,
                    "message": exc.message,
                }
            )
    return {"results": results}


@post("/v1/policies", guards=[requires("admin")], status_code=201)
async def create_policy(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Store a policy for an agent and/or a tool."""
    values = parse_policy(await read_json(request))
    values.update(id=new_id("pol"), created_at=now_iso())
    async with request.app.state.services.engine.begin() as conn:
        await conn.execute(insert(service.policies_table).values(**values))
    return _policy_json(values)


@get("/v1/policies", guards=[requires("admin")])
async def list_policies(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Every policy, oldest first."""
    table = service.policies_table
    async with request.app.state.services.engine.connect() as conn:
        rows = (await conn.execute(select(table).order_by(table.c.created_at))).mappings().all()
    return {"policies": [_policy_json(dict(row)) for row in rows]}


@delete("/v1/policies/{policy_id:str}", guards=[requires("admin")], status_code=204)
async def delete_policy(request: Request[Any, Any, Any], policy_id: FromPath[str]) -> None:
    """Remove a policy; open approvals keep the rule they were opened under."""
    table = service.policies_table
    async with request.app.state.services.engine.begin() as conn:
        result = await conn.execute(sql_delete(table).where(table.c.id == policy_id))
    if result.rowcount == 0:
        raise not_found(f"policy {policy_id}")


def _policy_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "agentId": row["agent_id"],
        "tool": row["tool"],
        "action": row["action"],
        "minApprovals": row["min_approvals"],
        "allowSelfApproval": row["allow_self_approval"],
        "reviewers": row["reviewers"],
        "createdAt": row["created_at"],
    }


async def expiry_loop(services: Any) -> None:
    """Expire due approvals: a cheap indexed check four times a second."""
    while True:
        try:
            await service.expire_due(services.log)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("expiring approvals failed; retrying")
        await asyncio.sleep(0.25)
