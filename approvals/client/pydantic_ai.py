"""Pydantic AI: tools with ``requires_approval=True`` decided through the service.

A run whose output is ``DeferredToolRequests`` lists the calls waiting for approval;
each becomes one approval, and the decisions come back as ``DeferredToolResults``:
approve → ``ToolApproved`` (with ``override_args`` when a reviewer edited them),
reject and answer → ``ToolDenied`` whose message (the reason, the answer) the model
reads. Give the agent ``output_type=[str, DeferredToolRequests]`` (or your own type).

    result = await run(client, agent, "clean up the sessions table")
"""

from __future__ import annotations

from typing import Any

from pydantic_ai import Agent, DeferredToolRequests, DeferredToolResults, ToolApproved, ToolDenied
from pydantic_ai.messages import ToolCallPart

from approvals.client.aio import AsyncApprovals
from approvals.client.decision import NOT_EXECUTABLE, Decision
from approvals.client.sync import Approvals


def approval_fields(
    call: ToolCallPart, agent_name: str | None = None, scope: str | None = None
) -> dict[str, Any]:
    """The ``request_approval`` arguments for one deferred tool call.

    ``scope`` (the model response's ``run_id``) keeps equal tool call ids of
    different runs apart; resolving the same requests again reuses the approvals.
    """
    arguments = call.args_as_dict()
    shown = ", ".join(f"{k}={v!r}" for k, v in arguments.items())
    return {
        "title": f"{agent_name or 'The agent'} wants to call {call.tool_name}({shown})",
        "tool": call.tool_name,
        "arguments": arguments,
        "detail": {
            "format": "pydantic-ai",
            "agent": agent_name,
            "toolCallId": call.tool_call_id,
            "allowedDecisions": ["approve", "reject", "answer"],
        },
        "key": f"pydantic-ai:{scope or '-'}:{call.tool_call_id}",
    }


def tool_result(decision: Decision, on_timeout: str) -> ToolApproved | ToolDenied:
    """The deferred tool result of a decision."""
    if decision.approved or (decision.pending and on_timeout == "approve"):
        return ToolApproved(override_args=decision.arguments if decision.edited else None)
    if decision.status == NOT_EXECUTABLE:
        return ToolDenied(f"Not run: {decision.comment}")
    if decision.status == "answered":
        return ToolDenied(f"The reviewer did not run this tool and answered: {decision.answer}")
    if decision.status == "rejected":
        reason = f": {decision.comment}" if decision.comment else " (no reason given)"
        return ToolDenied(f"The reviewer {decision.resolved_by} rejected this tool call{reason}")
    if decision.status == "withdrawn":
        return ToolDenied(f"The request was withdrawn by {decision.resolved_by}; it was not run.")
    return ToolDenied("Nobody approved this tool call in time; it was not run.")


def _results(
    requests: DeferredToolRequests, decided: list[tuple[str, Decision]], on_timeout: str
) -> DeferredToolResults:
    return requests.build_results(
        approvals={call_id: tool_result(d, on_timeout) for call_id, d in decided},
        answered_by={call_id: d.resolved_by for call_id, d in decided if d.resolved_by},
    )


def resolve_sync(
    client: Approvals,
    requests: DeferredToolRequests,
    *,
    agent_name: str | None = None,
    scope: str | None = None,
    timeout: float | None = None,
    on_timeout: str = "reject",
    **ids: str | None,
) -> DeferredToolResults:
    """Decide every call in ``requests.approvals`` through the service."""
    opened = [
        (
            call.tool_call_id,
            client.request_approval(
                **approval_fields(call, agent_name, scope),
                timeout=timeout,
                on_timeout=on_timeout,
                wait=False,
                **ids,  # type: ignore[arg-type]
            ),
        )
        for call in requests.approvals
    ]
    decided = [
        (call_id, client.executable(d if not d.pending else client.wait(d.approval_id, timeout)))
        for call_id, d in opened
    ]
    return _results(requests, decided, on_timeout)


async def resolve(
    client: AsyncApprovals,
    requests: DeferredToolRequests,
    *,
    agent_name: str | None = None,
    scope: str | None = None,
    timeout: float | None = None,
    on_timeout: str = "reject",
    **ids: str | None,
) -> DeferredToolResults:
    """``resolve_sync`` for ``AsyncApprovals``."""
    opened = []
    for call in requests.approvals:
        decision = await client.request_approval(
            **approval_fields(call, agent_name, scope),
            timeout=timeout,
            on_timeout=on_timeout,
            wait=False,
            **ids,  # type: ignore[arg-type]
        )
        opened.append((call.tool_call_id, decision))
    decided = [
        (
            call_id,
            await client.executable(
                d if not d.pending else await client.wait(d.approval_id, timeout)
            ),
        )
        for call_id, d in opened
    ]
    return _results(requests, decided, on_timeout)


async def run(
    client: AsyncApprovals,
    agent: Agent[Any, Any],
    prompt: str | None,
    *,
    timeout: float | None = None,
    on_timeout: str = "reject",
    **run_kwargs: Any,
) -> Any:
    """``agent.run`` until its output is no longer waiting on approvals.

    Calls deferred for external execution (``requests.calls``) are left to the caller:
    the run result is returned as soon as any are pending.
    """
    result = await agent.run(prompt, **run_kwargs)
    while isinstance(result.output, DeferredToolRequests) and not result.output.calls:
        results = await resolve(
            client,
            result.output,
            agent_name=agent.name,
            scope=_scope(result),
            timeout=timeout,
            on_timeout=on_timeout,
        )
        result = await agent.run(
            message_history=result.all_messages(), deferred_tool_results=results, **run_kwargs
        )
    return result


def run_sync(
    client: Approvals,
    agent: Agent[Any, Any],
    prompt: str | None,
    *,
    timeout: float | None = None,
    on_timeout: str = "reject",
    **run_kwargs: Any,
) -> Any:
    """``agent.run_sync`` until its output is no longer waiting on approvals."""
    result = agent.run_sync(prompt, **run_kwargs)
    while isinstance(result.output, DeferredToolRequests) and not result.output.calls:
        results = resolve_sync(
            client,
            result.output,
            agent_name=agent.name,
            scope=_scope(result),
            timeout=timeout,
            on_timeout=on_timeout,
        )
        result = agent.run_sync(
            message_history=result.all_messages(), deferred_tool_results=results, **run_kwargs
        )
    return result


def _scope(result: Any) -> str | None:
    messages = result.all_messages()
    return getattr(messages[-1], "run_id", None) if messages else None
