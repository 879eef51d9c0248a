"""``POST /hooks/claude-code``: Claude Code's HTTP ``PreToolUse`` hook, answered after a human.

The same JSON in and out as ``approvals hook claude-code`` (the mapping is
``approvals.mcp.claude``): the call opens an approval, the request waits here for its
decision (at most ``timeout`` seconds), and the answer allows or denies the tool call.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, cast

import msgspec
from litestar import Request, post
from litestar.params import JSONBody, QueryParameter

from approvals.client import Decision
from approvals.core.contract import WRITE_ERRORS, Out, convert, errors
from approvals.core.errors import ApiError, invalid
from approvals.core.outbound import parse as parse_destinations
from approvals.digest import arguments_digest
from approvals.http.api.approvals import settled
from approvals.http.guard import requires
from approvals.mcp import claude
from approvals.queue import service
from approvals.queue.schema import ApprovalCreate, request_row

DEFAULT_WAIT = 300.0
MAX_WAIT = 1800.0
EXPIRY_SLACK = 1.0  # seconds the wait outlasts the approval's timeout, for the expiry to land
Name = Annotated[str, msgspec.Meta(max_length=claude.NAME_LIMIT)]


class PreToolUse(msgspec.Struct, kw_only=True):
    """What Claude Code sends a ``PreToolUse`` hook (other properties it adds are ignored)."""

    tool_name: Annotated[str, msgspec.Meta(min_length=1, max_length=claude.NAME_LIMIT)]
    tool_input: dict[str, Any] = msgspec.field(default_factory=dict)
    session_id: Name | None = None
    tool_use_id: Annotated[str, msgspec.Meta(max_length=claude.KEY_LIMIT)] | None = None
    cwd: Annotated[str, msgspec.Meta(max_length=4096)] | None = None
    hook_event_name: Literal["PreToolUse"] = "PreToolUse"


class HookDecision(Out, omit_defaults=True):
    """Allow or deny the tool call, why, and the input as a reviewer edited it."""

    hook_event_name: Literal["PreToolUse"]
    permission_decision: Literal["allow", "deny"]
    permission_decision_reason: str
    updated_input: dict[str, Any] | None = None


class HookAnswer(Out):
    """The hook's answer, as Claude Code reads it."""

    hook_specific_output: HookDecision


@post(
    "/hooks/claude-code",
    guards=[requires("events:write")],
    status_code=200,
    operation_id="claudeCodePreToolUse",
    tags=["hooks"],
    summary="Claude Code's PreToolUse hook: ask a human, answer allow or deny",
    description=(
        "Takes the JSON Claude Code sends a `PreToolUse` hook, opens an approval "
        "(`agentId: claude-code`, `runId` the session, `detail.tool` and `detail.arguments` "
        "the call; a repeated `tool_use_id` finds the same approval) and answers when it is "
        "decided, or after `timeout` seconds, with `permissionDecision` `allow` (and "
        "`updatedInput` when a reviewer edited the input) or `deny` and the reason."
    ),
    security=[{"bearer": []}],
    responses=errors(*WRITE_ERRORS),
)
async def claude_code(
    request: Request[Any, Any, Any],
    data: JSONBody[PreToolUse],
    timeout: Annotated[
        float,
        QueryParameter(
            gt=0,
            le=MAX_WAIT,
            description="seconds to wait for a decision; the approval expires (rejected) then",
        ),
    ] = DEFAULT_WAIT,
) -> HookAnswer:
    """Open an approval for one Claude Code tool call and answer with its decision."""
    try:
        call = claude.ask(msgspec.to_builtins(data))
    except claude.HookInputError as exc:
        raise invalid(f"body.{exc.field}" if exc.field else "body", exc.reason) from None
    services = request.app.state.services
    body = convert(call.body(timeout), ApprovalCreate)
    row, options = request_row(body, parse_destinations(services.settings.webhook_allowed))
    principal = request.state.principal
    # The head before the approval is opened: a decision that lands before the wait
    # begins is then an event after it (see ``settled``).
    position = services.broker.head
    approval = await service.open_one(services.log, row, options, principal.name, principal.confirm)
    approval = await settled(services, approval, position, timeout + EXPIRY_SLACK)
    decision = Decision.from_json(approval)
    if decision.approved:
        # The receipt before Claude Code runs the call (a retried hook is denied).
        digest = arguments_digest(claude.executed(decision, call.arguments))
        try:
            await service.record_execution(
                services.log,
                decision.approval_id,
                principal.name,
                digest,
                confirm=principal.confirm,
            )
        except ApiError as exc:
            denied = claude.deny(claude.not_executable(decision, exc.message))
            return cast(HookAnswer, convert(denied, HookAnswer))
    answer = claude.answer(decision, call.arguments, timeout)
    return cast(HookAnswer, convert(answer, HookAnswer))
