"""``approvals mcp serve``: approval tools over MCP (stdio), for agents that ask explicitly.

Two tools: ``request_approval`` opens an approval (``source: "mcp"``) and waits for
its decision; ``get_approval`` reads one. Both answer the same object: the status, the
reviewer's reason or answer, and the arguments as approved (a reviewer's edits
included). A call the client cancels withdraws its approval (``AsyncApprovals`` does).
The MCP SDK is imported only when the server starts, so ``approvals --help`` loads none.
"""

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from approvals.client import ApprovalsError, AsyncApprovals, Decision
from approvals.mcp.hooks import Key, Url

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

SOURCE = "mcp"
DEFAULT_TIMEOUT = 600.0  # seconds a human has to decide when the agent names none
MAX_TIMEOUT = 24 * 3600.0
MAX_TEXT = 10_000
INSTRUCTIONS = (
    "Ask a human before doing something risky or irreversible: call request_approval with a "
    "short title, the tool and arguments you mean to use, and your reason. It waits for the "
    "decision. Go ahead only when `approved` is true, and then with the returned `arguments` "
    "(a reviewer may have edited them); otherwise read `reason` or `answer` and do not do it."
)


def outcome(decision: Decision) -> dict[str, Any]:
    """A tool's answer: where the approval stands, and what the agent should do."""
    by = decision.resolved_by or "a reviewer"
    comment = f": {decision.comment}" if decision.comment else ""
    if decision.pending:
        message = "Still waiting for a human; call get_approval later. Do not go ahead yet."
    elif decision.approved:
        edits = " with edited arguments: use those" if decision.edited else ""
        message = f"Approved by {by}{edits}{comment}"
    elif decision.status == "answered":
        message = f"Not approved: {by} answered instead: {decision.answer}"
    elif decision.status == "rejected":
        message = f"Rejected by {by}{comment or ' (no reason given)'}. Do not go ahead."
    elif decision.status == "withdrawn":
        message = f"Withdrawn by {by}. Do not go ahead."
    else:
        message = "Nobody approved in time. Do not go ahead."
    return {
        "approvalId": decision.approval_id,
        "status": decision.status,
        "approved": decision.approved,
        "decision": decision.raw.get("decision"),
        "reason": decision.comment,
        "answer": decision.answer,
        "arguments": decision.arguments,
        "edited": decision.edited,
        "resolvedBy": decision.resolved_by,
        "resolvedAt": decision.resolved_at,
        "message": message,
    }


def build(client: AsyncApprovals) -> "MCPServer[Any]":
    """The MCP server and its two tools, asking through ``client``.

    (No ``from __future__ import annotations`` in this module: the SDK reads the tools'
    annotations, which name ``Field`` imported here, when they are registered.)"""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from pydantic import Field

    server: MCPServer[Any] = MCPServer(
        name="approvals", instructions=INSTRUCTIONS, log_level="WARNING"
    )

    @server.tool(
        name="request_approval",
        description="Ask a human to approve an action and wait for the decision. Go ahead "
        "only when `approved` is true, with the returned `arguments`.",
    )
    async def request_approval(
        title: Annotated[
            str,
            Field(min_length=1, max_length=MAX_TEXT, description="What the human is asked."),
        ],
        tool: Annotated[
            str | None,
            Field(max_length=200, description="The tool or action you mean to run."),
        ] = None,
        arguments: Annotated[
            dict[str, Any] | None, Field(description="Its arguments (a reviewer may edit them).")
        ] = None,
        reason: Annotated[
            str | None,
            Field(max_length=MAX_TEXT, description="Why you want to do it (shown to the human)."),
        ] = None,
        timeoutSeconds: Annotated[  # the tool parameter as the wire names it
            float,
            Field(
                gt=0,
                le=MAX_TIMEOUT,
                description="Seconds the human has to decide; then it is rejected.",
            ),
        ] = DEFAULT_TIMEOUT,
    ) -> dict[str, Any]:
        detail = {"description": reason} if reason else None
        try:
            decision = await client.request_approval(
                title,
                tool=tool,
                arguments=arguments,
                detail=detail,
                timeout=timeoutSeconds,
                on_timeout="reject",
                source=SOURCE,
            )
        except ApprovalsError as exc:
            raise ToolError(f"the approvals service could not be asked: {exc}") from None
        return outcome(decision)

    @server.tool(
        name="get_approval",
        description="Where an approval stands: its status, the reviewer's reason or answer, "
        "and the arguments as approved.",
    )
    async def get_approval(
        id: Annotated[str, Field(min_length=1, max_length=200, description="The approval's id.")],
    ) -> dict[str, Any]:
        try:
            decision = await client.get_approval(id)
        except ApprovalsError as exc:
            raise ToolError(f"approval {id}: {exc}") from None
        return outcome(decision)

    return server


async def serve(url: str | None, key: str | None) -> None:
    """Serve the tools over stdio until the client closes it."""
    async with AsyncApprovals(url, key) as client:
        await build(client).run_stdio_async()


def command(url: Url = None, key: Key = None) -> None:
    """Serve request_approval and get_approval as MCP tools over stdio."""
    try:
        import anyio
        import mcp.server.mcpserver  # noqa: F401 (the MCP SDK is an extra)
    except ImportError as exc:
        typer.echo(
            f"error: approvals mcp serve needs the MCP SDK ({exc}): pip install 'approvals[mcp]'",
            err=True,
        )
        raise typer.Exit(2) from exc
    try:
        anyio.run(serve, url, key)
    except KeyboardInterrupt:
        sys.exit(130)
