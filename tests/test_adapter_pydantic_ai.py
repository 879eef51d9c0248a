"""The Pydantic AI adapter: a real agent on a FunctionModel, its deferred calls decided."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from pydantic_ai import Agent, DeferredToolRequests
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from approvals.client import AsyncApprovals
from approvals.client.pydantic_ai import run, run_sync
from conftest import Database, Server
from reviewers import WAIT, make_agent
from reviewers import Agent as Principals


@pytest.fixture
def agent(sqlite_database: Database, make_server: Callable[..., Server]) -> Principals:
    return make_agent(make_server(sqlite_database))


def scripted(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Call ``delete_rows`` once, then report what the tool answered."""
    returns = [
        part
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart)
    ]
    if returns:
        return ModelResponse(parts=[TextPart(f"tool said: {returns[-1].content}")])
    return ModelResponse(
        parts=[ToolCallPart("delete_rows", {"table": "sessions", "older_than_days": 7}, "call_1")]
    )


def cleaner() -> tuple[Agent[None, str | DeferredToolRequests], list[tuple[str, int]]]:
    deleted: list[tuple[str, int]] = []
    bot: Agent[None, str | DeferredToolRequests] = Agent(
        FunctionModel(scripted), name="cleaner", output_type=[str, DeferredToolRequests]
    )

    @bot.tool_plain(requires_approval=True)
    def delete_rows(table: str, older_than_days: int) -> str:
        """Delete old rows of a table."""
        deleted.append((table, older_than_days))
        return f"deleted {table} rows older than {older_than_days} days"

    return bot, deleted


def test_an_approved_call_runs_with_the_edited_arguments(agent: Principals) -> None:
    client = agent.client()
    bot, deleted = cleaner()
    reviewer = agent.decide_later(decision="approve", arguments={"older_than_days": 30})
    result = run_sync(client, bot, "clean up", timeout=WAIT)
    reviewer.join(WAIT)
    assert deleted == [("sessions", 30)]
    assert result.output == "tool said: deleted sessions rows older than 30 days"
    (seen,) = reviewer.seen  # type: ignore[attr-defined]
    assert seen["tool"] == "delete_rows"
    assert seen["arguments"] == {"table": "sessions", "older_than_days": 7}
    assert seen["title"] == "cleaner wants to call delete_rows(table='sessions', older_than_days=7)"
    client.close()


def test_a_rejection_reason_reaches_the_model(agent: Principals) -> None:
    client = agent.client()
    bot, deleted = cleaner()
    reviewer = agent.decide_later(decision="reject", comment="keep a week of history")
    result = run_sync(client, bot, "clean up")
    reviewer.join(WAIT)
    assert deleted == []
    assert "keep a week of history" in result.output and "reviewer" in result.output
    client.close()


def test_async_answer_and_expiry(agent: Principals) -> None:
    async def scenario() -> tuple[Any, Any]:
        async with AsyncApprovals(agent.url, agent.key) as client:
            bot, deleted = cleaner()
            reviewer = agent.decide_later(decision="answer", answer="ask the DBA first")
            answered = await run(client, bot, "clean up")
            await asyncio.to_thread(reviewer.join, WAIT)
            assert deleted == []
            again, deleted_again = cleaner()
            expired = await run(client, again, "clean up", timeout=1, on_timeout="approve")
            assert deleted_again == [("sessions", 7)]
            return answered, expired

    answered, expired = asyncio.run(scenario())
    assert "ask the DBA first" in answered.output
    assert expired.output == "tool said: deleted sessions rows older than 7 days"
