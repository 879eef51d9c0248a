"""HTTP handlers of the approval queue and its policies."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

from litestar import Request, delete, get, post
from litestar.params import Body, HeaderParameter, JSONBody, PathParameter, QueryParameter
from litestar.response import Stream
from sqlalchemy import delete as sql_delete
from sqlalchemy import insert, select

from approvals.auth import audit
from approvals.core.clock import now_iso
from approvals.core.contract import WRITE_ERRORS, convert, errors, refuse_body
from approvals.core.errors import ApiError, not_found
from approvals.core.outbound import parse as parse_destinations
from approvals.delivery.channels import notices
from approvals.events import redaction
from approvals.events.log import LogTransaction, new_id
from approvals.events.schema import parse_position
from approvals.http.api.events import Position
from approvals.http.guard import hold_stream, requires
from approvals.http.sse import EventStream
from approvals.queue import feed, service
from approvals.queue.schema import (
    ApprovalCreate,
    ApprovalOut,
    ApprovalPage,
    AssignIn,
    DecisionIn,
    DecisionItem,
    DecisionResult,
    DecisionResults,
    ExecutionIn,
    PolicyCreate,
    PolicyList,
    PolicyOut,
    check_decision,
    policy_values,
    request_row,
)

if TYPE_CHECKING:
    from approvals.services import Services

MAX_WAIT = 60.0
MAX_LIMIT = 500
TAGS = ["approvals"]
log = logging.getLogger("approvals.queue")

ListFilter = Annotated[str | None, QueryParameter(max_length=2000, description="comma-separated")]
ApprovalId = Annotated[str, PathParameter(max_length=200, description="the approval's id")]


@post(
    "/v1/approvals",
    guards=[requires("events:write", cached=True)],
    status_code=201,
    operation_id="openApproval",
    tags=TAGS,
    summary="Open an approval (appends its steering_request event)",
    responses=errors(409, *WRITE_ERRORS),
)
async def open_approval(
    request: Request[Any, Any, Any], data: JSONBody[ApprovalCreate]
) -> ApprovalOut:
    """Open an approval: append its ``steering_request`` event."""
    services = request.app.state.services
    row, options = request_row(data, parse_destinations(services.settings.webhook_allowed))
    principal = request.state.principal
    approval = await service.open_one(services.log, row, options, principal.name, principal.confirm)
    return _out(approval)


def _out(approval: dict[str, Any], request: Request[Any, Any, Any] | None = None) -> ApprovalOut:
    """The approval's answer; to any key but its requester's (``request`` given), with
    its arguments redacted by its policy: the agent reads its own arguments whole."""
    if request is not None and request.state.principal.name != approval["requestedBy"]:
        approval = redaction.approval(approval)
    return cast(ApprovalOut, convert(approval, ApprovalOut))


@get(
    "/v1/approvals",
    guards=[requires("approvals:read")],
    operation_id="listApprovals",
    tags=TAGS,
    summary="The queue, oldest first, with cursor pagination",
    responses=errors(),
)
async def list_approvals(
    request: Request[Any, Any, Any],
    status: Annotated[
        Literal["pending", "approved", "rejected", "answered", "expired", "withdrawn", "all"],
        QueryParameter(description="which approvals (pending by default)"),
    ] = "pending",
    run_id: Annotated[str | None, QueryParameter(name="run_id", max_length=2000)] = None,
    thread_id: Annotated[str | None, QueryParameter(name="thread_id", max_length=2000)] = None,
    agent_id: Annotated[str | None, QueryParameter(name="agent_id", max_length=2000)] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)] = 50,
    cursor: Annotated[
        str | None,
        QueryParameter(pattern=r"^[0-9]{1,18}$", description="the nextCursor of the previous page"),
    ] = None,
) -> ApprovalPage:
    """The queue, oldest first, with cursor pagination."""
    table = service.approvals_table
    query = select(table)
    if status != "all":
        query = query.where(table.c.status == status)
    for value, column in (
        (run_id, table.c.run_id),
        (thread_id, table.c.thread_id),
        (agent_id, table.c.agent_id),
    ):
        if value:
            query = query.where(column.in_([v for v in value.split(",") if v]))
    if cursor is not None:
        query = query.where(table.c.event_id > int(cursor))
    query = query.order_by(table.c.event_id).limit(limit + 1)
    async with request.app.state.services.engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    more = len(rows) > limit
    rows = rows[:limit]
    return ApprovalPage(
        approvals=[_out(service.approval_json(row), request) for row in rows],
        next_cursor=str(rows[-1]["event_id"]) if more else None,
    )


@get(
    "/v1/approvals/stream",
    guards=[requires("approvals:read")],
    media_type="text/event-stream",
    operation_id="streamApprovals",
    tags=TAGS,
    summary="The inbox feed: pending approvals as a snapshot, then every change, over SSE",
    description=(
        "`connected`, then (unless resuming) `snapshot` with `{approvals: [...]}` whose `id:` "
        "is the log position it reflects, then `approval.opened`, `approval.updated`, "
        "`approval.resolved` and `approval.expired`, each with the approval's JSON and the "
        "position of the event that caused it as `id:`. `Last-Event-ID` or `after` resumes "
        "with exactly the changes after that position."
    ),
    responses=errors(),
)
async def stream_approvals(
    request: Request[Any, Any, Any],
    agent_id: ListFilter = None,
    run_id: ListFilter = None,
    thread_id: ListFilter = None,
    tool: ListFilter = None,
    decidable: Annotated[
        bool, QueryParameter(description="only approvals the caller may decide under their policy")
    ] = False,
    after: Position = None,
    last_event_id: Annotated[
        str | None,
        HeaderParameter(name="Last-Event-ID", max_length=40, description="resume after this id"),
    ] = None,
) -> Stream:
    """Stream the queue: a snapshot of what is pending, then each change in log order."""
    services = request.app.state.services
    where = feed.FeedFilter(
        agent_ids=_values(agent_id),
        run_ids=_values(run_id),
        thread_ids=_values(thread_id),
        tools=_values(tool),
        decidable_by=request.state.principal if decidable else None,
    )
    resume = parse_position(last_event_id, "Last-Event-ID")
    after_id = parse_position(after, "after")
    start = resume if resume is not None else after_id
    origin = (
        "last-event-id" if resume is not None else ("after" if after_id is not None else "live")
    )
    release = hold_stream(request)
    return EventStream(
        feed.feed(services, where, after=start, origin=origin, retry_ms=services.settings.retry_ms),
        release=release,
    )


def _values(raw: str | None) -> frozenset[str]:
    return frozenset(part.strip() for part in (raw or "").split(",") if part.strip())


@get(
    "/v1/approvals/{approval_id:str}",
    guards=[requires("approvals:read")],
    operation_id="getApproval",
    tags=TAGS,
    summary="One approval with its request and resolution; wait long-polls",
    responses=errors(404),
)
async def get_approval(
    request: Request[Any, Any, Any],
    approval_id: ApprovalId,
    wait: Annotated[
        float | None,
        QueryParameter(
            ge=0,
            le=3600,
            schema_extra={"minimum": 0},
            description="seconds to wait for a decision (held at most 60)",
        ),
    ] = None,
) -> ApprovalOut:
    """One approval with its request and resolution; ``wait`` long-polls for the decision."""
    services = request.app.state.services
    # The head before the read: a decision committed while the read runs is then an event
    # after it, which the wait below returns for (taken after, the poll slept through it).
    position = services.broker.head
    current = await service.fetch(services.engine, approval_id, full=True)
    settled_now = await settled(services, current, position, min(wait or 0.0, MAX_WAIT))
    return _out(settled_now, request)


async def settled(
    services: Services, current: dict[str, Any], position: int, seconds: float
) -> dict[str, Any]:
    """The approval ``current`` once it is resolved, or as it stands after ``seconds``.

    ``position`` is the broker's head taken before ``current`` was read, so a decision
    committed meanwhile is not slept through."""
    approval_id = current["id"]
    deadline = time.monotonic() + seconds
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
    request: Request[Any, Any, Any], approval_id: str, values: dict[str, Any]
) -> dict[str, Any]:
    principal = request.state.principal
    log = request.app.state.services.log
    return await service.decide(log, approval_id, principal.name, values, confirm=principal.confirm)


@post(
    "/v1/approvals/{approval_id:str}/decision",
    guards=[requires("approvals:resolve", cached=True)],
    status_code=200,
    operation_id="decideApproval",
    tags=TAGS,
    summary="Approve, reject or answer; 409 when already resolved",
    responses=errors(404, 409, *WRITE_ERRORS),
)
async def decide(
    request: Request[Any, Any, Any], approval_id: ApprovalId, data: JSONBody[DecisionIn]
) -> ApprovalOut:
    """Approve, reject or answer one approval; 409 when it is already resolved."""
    return _out(await _decide_one(request, approval_id, check_decision(data)), request)


@post(
    "/v1/approvals/{approval_id:str}/withdraw",
    guards=[requires("events:write")],
    status_code=200,
    operation_id="withdrawApproval",
    tags=TAGS,
    summary="Withdraw a pending approval (its requester only); 409 when already resolved",
    description=(
        "Ends a pending approval as `withdrawn`, with an `approval.resolved` event whose "
        "`status` is `withdrawn` and whose `resolvedBy` is the key. Only the key that "
        "requested the approval (its `requestedBy`) may withdraw it; any other gets 403."
    ),
    responses=errors(404, 409),
)
async def withdraw(request: Request[Any, Any, Any], approval_id: ApprovalId) -> ApprovalOut:
    """Withdraw a pending approval its caller requested; 409 when it is already resolved."""
    await refuse_body(request)
    principal = request.state.principal
    log = request.app.state.services.log
    return _out(await service.withdraw(log, approval_id, principal.name, confirm=principal.confirm))


@post(
    "/v1/approvals/{approval_id:str}/assign",
    guards=[requires("approvals:resolve")],
    status_code=200,
    operation_id="assignApproval",
    tags=TAGS,
    summary="Hand a pending approval to a reviewer; 409 when already resolved",
    description=(
        "Claims the approval for the reviewer named by `to` (for 24 hours, or until its "
        "timeout), logs an `approval.assigned` event and notifies them on Slack and by email "
        "where they have an address. While `to` is away with a delegate, the delegate gets it "
        "and `delegatedFrom` names `to`. The approval and its resolution name `assignedBy`. "
        "422 naming `body.to` when there is no such active reviewer or the policy does not "
        "let them decide it."
    ),
    responses=errors(404, 409, 422),
)
async def assign(
    request: Request[Any, Any, Any], approval_id: ApprovalId, data: JSONBody[AssignIn]
) -> ApprovalOut:
    """Hand a pending approval to a reviewer (or their delegate while they are away)."""
    principal = request.state.principal
    services = request.app.state.services

    async def work(tx: LogTransaction) -> dict[str, Any]:
        await notices.assign(tx, approval_id, data.to, principal.name, services.webhooks.wake)
        return await service.fetch_in(tx.conn, approval_id, full=True)

    return _out(await services.log.run(work, principal.name, principal.confirm), request)


@post(
    "/v1/approvals/{approval_id:str}/execution",
    guards=[requires("events:write")],
    status_code=201,
    operation_id="recordExecution",
    tags=TAGS,
    summary="Record that an approved call runs now: once only (execute-once receipt)",
    description=(
        "Send the `argumentsDigest` of the arguments about to run, before running them. "
        "201 the first time; 409 `already_executed` after (a retried process must not run "
        "the call again), 409 `stale` when the digest is not that of the approved "
        "arguments, 409 `not_approved` unless the approval was approved. Only the key "
        "that requested the approval may record its execution."
    ),
    responses=errors(404, 409, *WRITE_ERRORS),
)
async def record_execution(
    request: Request[Any, Any, Any], approval_id: ApprovalId, data: JSONBody[ExecutionIn]
) -> ApprovalOut:
    """Record that the approved call of an approval runs now (once only)."""
    principal = request.state.principal
    log = request.app.state.services.log
    return _out(
        await service.record_execution(
            log, approval_id, principal.name, data.arguments_digest, confirm=principal.confirm
        )
    )


@post(
    "/v1/approvals/decisions",
    guards=[requires("approvals:resolve")],
    status_code=200,
    operation_id="decideApprovals",
    tags=TAGS,
    summary="Decide several approvals; each item succeeds or fails on its own",
    responses=errors(*WRITE_ERRORS),
)
async def decide_many(
    request: Request[Any, Any, Any],
    data: Annotated[list[dict[str, Any]], Body(min_length=1, max_length=500)],
) -> DecisionResults:
    """Decide several approvals; each item succeeds or fails on its own."""
    # Items are checked one by one (documented as DecisionItem by approvals.http.openapi), so a
    # bad item answers its own 422 beside the others' results.
    results: list[DecisionResult] = []
    for index, item in enumerate(data):
        try:
            where = f"body[{index}]"
            body: DecisionItem = convert(item, DecisionItem, where)
            approval = await _decide_one(request, body.id, check_decision(body, where))
            shown = _out(approval, request)
            results.append(DecisionResult(id=body.id, status=200, approval=shown))
        except ApiError as exc:
            raw_id = item.get("id")
            results.append(
                DecisionResult(
                    id=raw_id if isinstance(raw_id, str) else None,
                    status=exc.status,
                    error=exc.code,
                    message=exc.message,
                )
            )
    return DecisionResults(results=results)


@post(
    "/v1/policies",
    guards=[requires("admin")],
    status_code=201,
    operation_id="createPolicy",
    tags=["policies"],
    summary="Store a policy for an agent and/or a tool",
    responses=errors(*WRITE_ERRORS),
)
async def create_policy(request: Request[Any, Any, Any], data: JSONBody[PolicyCreate]) -> PolicyOut:
    """Store a policy for an agent and/or a tool."""
    values = policy_values(data)
    values.update(id=new_id("pol"), created_at=now_iso())
    async with audit.change(request) as trail:
        await notices.check_ladder(trail.conn, values["escalation"])
        await trail.conn.execute(insert(service.policies_table).values(**values))
        trail.note(
            "policy.created",
            f"Policy {values['id']} created",
            policy=values["id"],
            agentId=values.get("agent_id"),
            tool=values.get("tool"),
            action=values.get("action"),
        )
    return PolicyOut.from_row(values)


@get(
    "/v1/policies",
    guards=[requires("admin")],
    operation_id="listPolicies",
    tags=["policies"],
    summary="Every policy, oldest first",
    responses=errors(),
)
async def list_policies(request: Request[Any, Any, Any]) -> PolicyList:
    """Every policy, oldest first."""
    table = service.policies_table
    async with request.app.state.services.engine.connect() as conn:
        rows = (await conn.execute(select(table).order_by(table.c.created_at))).mappings().all()
    return PolicyList(policies=[PolicyOut.from_row(row) for row in rows])


@delete(
    "/v1/policies/{policy_id:str}",
    guards=[requires("admin")],
    status_code=204,
    operation_id="deletePolicy",
    tags=["policies"],
    summary="Remove a policy",
    responses=errors(404),
)
async def delete_policy(
    request: Request[Any, Any, Any],
    policy_id: Annotated[str, PathParameter(max_length=200)],
) -> None:
    """Remove a policy; open approvals keep the rule they were opened under."""
    table = service.policies_table
    async with audit.change(request) as trail:
        result = await trail.conn.execute(sql_delete(table).where(table.c.id == policy_id))
        if result.rowcount == 0:
            raise not_found(f"policy {policy_id}")
        trail.note("policy.deleted", f"Policy {policy_id} deleted", policy=policy_id)
