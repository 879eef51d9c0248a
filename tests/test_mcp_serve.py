"""`approvals mcp serve` driven by the MCP SDK's own stdio client against a real service."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from conftest import Server, until
from reviewers import WAIT, Agent, make_agent

T = TypeVar("T")


@asynccontextmanager
async def session(agent: Agent) -> AsyncIterator[ClientSession]:
    """An MCP client session with `approvals mcp serve` as a subprocess."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "approvals", "mcp", "serve", "--url", agent.url, "--key", agent.key],
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
        await asyncio.wait_for(client.initialize(), WAIT)
        yield client


def result_of(answer: Any) -> dict[str, Any]:
    """A tool's answer: its structured content, which its text says too."""
    assert not answer.is_error, answer.content
    structured = dict(answer.structured_content)
    assert json.loads(answer.content[0].text) == structured
    return structured


def run(scenario: Callable[[ClientSession], Awaitable[T]], agent: Agent) -> T:
    async def main() -> T:
        async with session(agent) as client:
            return await asyncio.wait_for(scenario(client), 3 * WAIT)

    return asyncio.run(main())


async def decided(
    client: ClientSession, agent: Agent, ask: dict[str, Any], **decision: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Call request_approval, decide what it opened through the API; the tool's answer and
    the approval as the reviewer saw it."""
    call = asyncio.ensure_future(client.call_tool("request_approval", ask))
    (pending,) = await asyncio.to_thread(agent.pending)
    await asyncio.to_thread(agent.decide, pending["id"], **decision)
    return result_of(await asyncio.wait_for(call, WAIT)), pending


def test_the_tools_are_listed_with_their_parameters(server: Server) -> None:
    agent = make_agent(server)

    async def scenario(client: ClientSession) -> dict[str, Any]:
        return {tool.name: tool for tool in (await client.list_tools()).tools}

    tools = run(scenario, agent)
    assert set(tools) == {"request_approval", "get_approval"}
    schema = tools["request_approval"].input_schema
    assert schema["required"] == ["title"]
    assert set(schema["properties"]) == {"title", "tool", "arguments", "reason", "timeoutSeconds"}
    assert schema["properties"]["timeoutSeconds"]["exclusiveMinimum"] == 0
    assert tools["get_approval"].input_schema["required"] == ["id"]


def test_approve_reject_and_edit(server: Server) -> None:
    agent = make_agent(server)
    ask = {
        "title": "Refund order #1042 (129 EUR)?",
        "tool": "refund",
        "arguments": {"order": 1042, "amount": 129},
        "reason": "The customer got a <b>broken</b> item",
        "timeoutSeconds": WAIT,
    }

    async def scenario(client: ClientSession) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        return [
            await decided(client, agent, ask, decision="approve", comment="fine"),
            await decided(client, agent, ask, decision="reject", comment="refund 40 EUR at most"),
            await decided(
                client, agent, ask, decision="approve", arguments={"order": 1042, "amount": 40}
            ),
            await decided(client, agent, ask, decision="answer", answer="Offer a voucher"),
        ]

    (approved, opened), (rejected, _), (edited, _), (answered, _) = run(scenario, agent)
    assert (opened["source"], opened["tool"], opened["arguments"]) == (
        "mcp",
        "refund",
        {"order": 1042, "amount": 129},
    )
    assert opened["title"] == ask["title"] and opened["expiresAt"]
    with agent.server.client(agent.reviewer) as http:
        request = http.get(f"/v1/approvals/{opened['id']}").json()["request"]
    assert request["detail"]["description"] == ask["reason"]  # shown on the request's page
    assert approved["approved"] is True and approved["status"] == "approved"
    assert approved["arguments"] == {"order": 1042, "amount": 129} and not approved["edited"]
    assert approved["reason"] == "fine" and approved["resolvedBy"] == "reviewer"
    assert rejected["approved"] is False and rejected["status"] == "rejected"
    assert rejected["reason"] == "refund 40 EUR at most"
    assert "Rejected by reviewer: refund 40 EUR at most" in rejected["message"]
    assert edited["approved"] is True and edited["edited"] is True
    assert edited["arguments"] == {"order": 1042, "amount": 40}
    assert "edited arguments" in edited["message"]
    assert answered["approved"] is False and answered["answer"] == "Offer a voucher"


def test_get_approval_reads_one(server: Server) -> None:
    agent = make_agent(server)
    with agent.client() as sdk:
        opened = sdk.request_approval("Rotate keys?", tool="rotate", wait=False)

    async def scenario(client: ClientSession) -> tuple[dict[str, Any], dict[str, Any], Any]:
        before = result_of(await client.call_tool("get_approval", {"id": opened.approval_id}))
        await asyncio.to_thread(agent.decide, opened.approval_id, decision="reject", comment="no")
        after = result_of(await client.call_tool("get_approval", {"id": opened.approval_id}))
        missing = await client.call_tool("get_approval", {"id": "apr_missing"})
        return before, after, missing

    before, after, missing = run(scenario, agent)
    assert before["status"] == "pending" and before["approved"] is False
    assert "Do not go ahead yet" in before["message"]
    assert after["status"] == "rejected" and after["reason"] == "no"
    assert missing.is_error and "does not exist" in missing.content[0].text


def test_bad_arguments_are_refused_and_open_nothing(server: Server) -> None:
    agent = make_agent(server)

    async def scenario(client: ClientSession) -> list[Any]:
        return [
            await client.call_tool("request_approval", arguments)
            for arguments in (
                {"title": ""},
                {"title": "x", "timeoutSeconds": 0},
                {"title": "x", "arguments": "rm -rf /"},
            )
        ]

    for answer in run(scenario, agent):
        assert answer.is_error
    assert agent.server.db.scalar("SELECT count(*) FROM approvals") == 0


def test_a_call_the_client_cancels_is_withdrawn(server: Server) -> None:
    agent = make_agent(server)

    async def scenario(client: ClientSession) -> str:
        call = asyncio.ensure_future(
            client.call_tool("request_approval", {"title": "Drop the staging DB?"})
        )
        (pending,) = await asyncio.to_thread(agent.pending)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        return str(pending["id"])

    approval_id = run(scenario, agent)

    def status() -> str | None:
        with agent.server.client(agent.reviewer) as http:
            found = http.get(f"/v1/approvals/{approval_id}").json()
        return found["resolvedBy"] if found["status"] == "withdrawn" else None

    assert until(status, WAIT, "the withdrawal") == "agent"
