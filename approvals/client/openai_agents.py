"""OpenAI Agents SDK: decide ``result.interruptions`` through the service, resume the run.

Each ``ToolApprovalItem`` (a call of a tool with ``needs_approval``) becomes one
approval with the tool's name, arguments and the agent's name. Approve calls
``state.approve(item)``; reject and answer call ``state.reject(item,
rejection_message=...)`` so the reviewer's reason (or answer) reaches the model.
The SDK cannot run a tool with edited arguments, so these approvals refuse edits.

    result = await Runner.run(agent, "clean up")
    while result.interruptions:
        state = await resolve(client, result)
        result = await Runner.run(agent, state)

or simply ``result = await run(client, agent, "clean up")``.
"""

from __future__ import annotations

import json
from typing import Any

from agents import Agent, Runner
from agents.items import ToolApprovalItem
from agents.result import RunResult
from agents.run_state import RunState

from approvals.client.aio import AsyncApprovals
from approvals.client.decision import NOT_EXECUTABLE, Decision
from approvals.client.sync import Approvals


def approval_fields(item: ToolApprovalItem, scope: str | None = None) -> dict[str, Any]:
    """The ``request_approval`` arguments for one tool call awaiting approval.

    ``scope`` (the run's last model response id) with the call id keys the approval,
    so resolving the same result again reuses it.
    """
    raw = item.arguments or "{}"
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = {"raw": raw}
    arguments = parsed if isinstance(parsed, dict) else {"value": parsed}
    agent = getattr(item.agent, "name", None)
    shown = ", ".join(f"{k}={v!r}" for k, v in arguments.items())
    return {
        "title": f"{agent or 'The agent'} wants to call {item.name}({shown})",
        "tool": item.name,
        "arguments": arguments,
        "detail": {
            "format": "openai-agents",
            "agent": agent,
            "callId": item.call_id,
            "allowEdit": False,
            "allowedDecisions": ["approve", "reject", "answer"],
        },
        "key": f"openai-agents:{scope or '-'}:{item.call_id}" if item.call_id else None,
    }


def rejection_message(decision: Decision) -> str:
    """What the model reads when a call is not approved."""
    if decision.status == NOT_EXECUTABLE:
        return f"Not run: {decision.comment}"
    if decision.status == "answered":
        return f"The reviewer did not run this tool and answered: {decision.answer}"
    if decision.status == "rejected":
        reason = f": {decision.comment}" if decision.comment else " (no reason given)"
        return f"The reviewer {decision.resolved_by} rejected this tool call{reason}"
    if decision.status == "withdrawn":
        return f"The request was withdrawn by {decision.resolved_by}; it was not run."
    return "Nobody approved this tool call in time; it was not run."


def apply(
    state: RunState[Any], item: ToolApprovalItem, decision: Decision, on_timeout: str
) -> None:
    """Approve or reject ``item`` on ``state`` from a decision."""
    if decision.approved or (decision.pending and on_timeout == "approve"):
        state.approve(item)
    else:
        state.reject(item, rejection_message=rejection_message(decision))


def resolve_sync(
    client: Approvals,
    result: RunResult,
    *,
    timeout: float | None = None,
    on_timeout: str = "reject",
    **ids: str | None,
) -> RunState[Any]:
    """Decide every interruption through the service; return the state to resume."""
    state = result.to_state()
    opened = [
        (
            item,
            client.request_approval(
                **approval_fields(item, result.last_response_id),
                timeout=timeout,
                on_timeout=on_timeout,
                wait=False,
                **ids,  # type: ignore[arg-type]
            ),
        )
        for item in result.interruptions
    ]
    for item, decision in opened:
        final = decision if not decision.pending else client.wait(decision.approval_id, timeout)
        apply(state, item, client.executable(final), on_timeout)
    return state


async def resolve(
    client: AsyncApprovals,
    result: RunResult,
    *,
    timeout: float | None = None,
    on_timeout: str = "reject",
    **ids: str | None,
) -> RunState[Any]:
    """``resolve_sync`` for ``AsyncApprovals``."""
    state = result.to_state()
    opened = []
    for item in result.interruptions:
        decision = await client.request_approval(
            **approval_fields(item, result.last_response_id),
            timeout=timeout,
            on_timeout=on_timeout,
            wait=False,
            **ids,  # type: ignore[arg-type]
        )
        opened.append((item, decision))
    for item, decision in opened:
        final = (
            decision if not decision.pending else await client.wait(decision.approval_id, timeout)
        )
        apply(state, item, await client.executable(final), on_timeout)
    return state


async def run(
    client: AsyncApprovals,
    agent: Agent[Any],
    input: Any,
    *,
    timeout: float | None = None,
    on_timeout: str = "reject",
    **run_kwargs: Any,
) -> RunResult:
    """``Runner.run`` until the agent finishes, each interruption decided by a human."""
    result = await Runner.run(agent, input, **run_kwargs)
    while result.interruptions:
        state = await resolve(client, result, timeout=timeout, on_timeout=on_timeout)
        result = await Runner.run(agent, state, **run_kwargs)
    return result


def run_sync(
    client: Approvals,
    agent: Agent[Any],
    input: Any,
    *,
    timeout: float | None = None,
    on_timeout: str = "reject",
    **run_kwargs: Any,
) -> RunResult:
    """``Runner.run_sync`` until the agent finishes, each interruption decided by a human."""
    result = Runner.run_sync(agent, input, **run_kwargs)
    while result.interruptions:
        state = resolve_sync(client, result, timeout=timeout, on_timeout=on_timeout)
        result = Runner.run_sync(agent, state, **run_kwargs)
    return result
