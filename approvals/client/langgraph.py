"""LangGraph: resume a graph paused on ``interrupt(HumanInterrupt)`` from the service's decisions.

Each interrupt (each ``HumanInterrupt`` when one interrupt carries a list of them) becomes
one approval; the graph resumes with ``Command(resume={interrupt.id: HumanResponse})``,
so several pending interrupts are answered by id. The interrupt's ``config`` decides
what a reviewer may do: ``accept`` (approve), ``edit`` (approve with edited arguments),
``response`` (answer with text), ``ignore`` (reject).

    graph = builder.compile(checkpointer=InMemorySaver())
    result = invoke(client, graph, {"messages": [...]}, {"configurable": {"thread_id": "t1"}})
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langgraph.types import Command, Interrupt

from approvals.client.aio import AsyncApprovals
from approvals.client.decision import NOT_EXECUTABLE, Decision
from approvals.client.sync import Approvals

DEFAULTS = {"allow_accept": True, "allow_ignore": True, "allow_respond": False, "allow_edit": False}


def _config(request: dict[str, Any]) -> dict[str, bool]:
    return {**DEFAULTS, **(request.get("config") or {})}


def _requests(interrupt: Interrupt) -> list[dict[str, Any]]:
    value = interrupt.value
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not (isinstance(item, dict) and isinstance(item.get("action_request"), dict)):
            raise TypeError(
                f"interrupt {interrupt.id} does not carry a HumanInterrupt "
                f"(action_request, config, description): {value!r}"
            )
    return items


def approval_fields(request: dict[str, Any]) -> dict[str, Any]:
    """The ``request_approval`` arguments for one ``HumanInterrupt``."""
    action = request["action_request"]
    config = _config(request)
    allowed = []
    if config["allow_accept"] or config["allow_edit"]:
        allowed.append("approve")
    if config["allow_ignore"]:
        allowed.append("reject")
    if config["allow_respond"]:
        allowed.append("answer")
    return {
        "title": request.get("description") or f"{action['action']} requested",
        "tool": action["action"],
        "arguments": action.get("args") or {},
        "detail": {
            "format": "langgraph",
            "allowedDecisions": allowed,
            "allowEdit": bool(config["allow_edit"]),
            "interrupt": request,
        },
    }


def human_response(request: dict[str, Any], decision: Decision, on_timeout: str) -> dict[str, Any]:
    """The ``HumanResponse`` that matches a decision and the interrupt's ``config``."""
    config = _config(request)
    action = request["action_request"]
    approved = decision.approved or (decision.pending and on_timeout == "approve")
    if decision.status == "answered":
        return {"type": "response", "args": decision.answer}
    if decision.status == NOT_EXECUTABLE:
        return {"type": "response", "args": f"Not run: {decision.comment}"}
    if approved:
        if config["allow_edit"] and (decision.edited or not config["allow_accept"]):
            return {
                "type": "edit",
                "args": {"action": action["action"], "args": decision.arguments or {}},
            }
        return {"type": "accept", "args": None}
    if not config["allow_ignore"] and config["allow_respond"]:
        return {"type": "response", "args": decision.comment or "rejected"}
    return {"type": "ignore", "args": None}


def _key(interrupt: Interrupt, index: int, many: bool) -> str:
    return f"langgraph:{interrupt.id}:{index}" if many else f"langgraph:{interrupt.id}"


def resume_command(
    client: Approvals,
    interrupts: Sequence[Interrupt],
    *,
    timeout: float | None = None,
    on_timeout: str = "reject",
    **ids: str | None,
) -> Command[Any]:
    """Open an approval per interrupt, wait for each, and build the resuming ``Command``."""
    opened: list[tuple[Interrupt, list[tuple[dict[str, Any], Decision]]]] = []
    for interrupt in interrupts:
        requests = _requests(interrupt)
        many = isinstance(interrupt.value, list)
        pending = [
            (
                request,
                client.request_approval(
                    **approval_fields(request),
                    key=_key(interrupt, index, many),
                    timeout=timeout,
                    on_timeout=on_timeout,
                    wait=False,
                    **ids,  # type: ignore[arg-type]
                ),
            )
            for index, request in enumerate(requests)
        ]
        opened.append((interrupt, pending))
    resume: dict[str, Any] = {}
    for interrupt, pending in opened:
        responses = []
        for request, decision in pending:
            final = decision if not decision.pending else client.wait(decision.approval_id, timeout)
            responses.append(human_response(request, client.executable(final), on_timeout))
        resume[interrupt.id] = responses if isinstance(interrupt.value, list) else responses[0]
    return Command(resume=resume)


async def aresume_command(
    client: AsyncApprovals,
    interrupts: Sequence[Interrupt],
    *,
    timeout: float | None = None,
    on_timeout: str = "reject",
    **ids: str | None,
) -> Command[Any]:
    """``resume_command`` for ``AsyncApprovals``."""
    opened: list[tuple[Interrupt, list[tuple[dict[str, Any], Decision]]]] = []
    for interrupt in interrupts:
        many = isinstance(interrupt.value, list)
        pending = []
        for index, request in enumerate(_requests(interrupt)):
            decision = await client.request_approval(
                **approval_fields(request),
                key=_key(interrupt, index, many),
                timeout=timeout,
                on_timeout=on_timeout,
                wait=False,
                **ids,  # type: ignore[arg-type]
            )
            pending.append((request, decision))
        opened.append((interrupt, pending))
    resume: dict[str, Any] = {}
    for interrupt, pending in opened:
        responses = []
        for request, decision in pending:
            final = (
                decision
                if not decision.pending
                else await client.wait(decision.approval_id, timeout)
            )
            responses.append(human_response(request, await client.executable(final), on_timeout))
        resume[interrupt.id] = responses if isinstance(interrupt.value, list) else responses[0]
    return Command(resume=resume)


def invoke(
    client: Approvals,
    graph: Any,
    input: Any,
    config: dict[str, Any],
    *,
    timeout: float | None = None,
    on_timeout: str = "reject",
    **ids: str | None,
) -> Any:
    """Run a graph (with a checkpointer), answering its interrupts, until it finishes."""
    result = graph.invoke(input, config)
    while interrupts := graph.get_state(config).interrupts:
        command = resume_command(client, interrupts, timeout=timeout, on_timeout=on_timeout, **ids)
        result = graph.invoke(command, config)
    return result


async def ainvoke(
    client: AsyncApprovals,
    graph: Any,
    input: Any,
    config: dict[str, Any],
    *,
    timeout: float | None = None,
    on_timeout: str = "reject",
    **ids: str | None,
) -> Any:
    """``invoke`` for ``AsyncApprovals`` and ``graph.ainvoke``."""
    result = await graph.ainvoke(input, config)
    while interrupts := (await graph.aget_state(config)).interrupts:
        command = await aresume_command(
            client, interrupts, timeout=timeout, on_timeout=on_timeout, **ids
        )
        result = await graph.ainvoke(command, config)
    return result
