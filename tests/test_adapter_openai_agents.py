"""The OpenAI Agents SDK adapter: a real agent on a scripted model, decided by a reviewer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from agents import Agent, RunConfig, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call

from approvals.client import AsyncApprovals
from approvals.client.openai_agents import run, run_sync
from conftest import Database, Server
from reviewers import WAIT, make_agent
from reviewers import Agent as Principals

NO_TRACING = RunConfig(tracing_disabled=True)


@pytest.fixture
def agent(sqlite_database: Database, make_server: Callable[..., Server]) -> Principals:
    return make_agent(make_server(sqlite_database))


def cleaner() -> tuple[Agent[Any], ScriptedModel, list[str]]:
    deleted: list[str] = []

    @function_tool(needs_approval=True)
    def delete_rows(table: str) -> str:
        """Delete every row of a table."""
        deleted.append(table)
        return f"deleted {table}"

    model = ScriptedModel(
        [
            [function_call("delete_rows", {"table": "sessions"}, call_id="call_1")],
            [assistant_message("done")],
        ]
    )
    return Agent(name="cleaner", model=model, tools=[delete_rows]), model, deleted


def tool_output(model: ScriptedModel) -> str:
    """What the model was told the tool call returned."""
    call = model.last_call
    assert call is not None
    (output,) = [
        item
        for item in call.input
        if isinstance(item, dict) and item.get("type") == "function_call_output"
    ]
    return str(output["output"])


def test_an_approved_call_runs_the_tool(agent: Principals) -> None:
    client = agent.client()
    bot, model, deleted = cleaner()
    reviewer = agent.decide_later(decision="approve")
    result = run_sync(client, bot, "clean up", run_config=NO_TRACING, timeout=WAIT)
    reviewer.join(WAIT)
    assert deleted == ["sessions"]
    assert result.final_output == "done"
    assert tool_output(model) == "deleted sessions"
    (seen,) = reviewer.seen  # type: ignore[attr-defined]
    assert seen["tool"] == "delete_rows" and seen["arguments"] == {"table": "sessions"}
    assert seen["title"] == "cleaner wants to call delete_rows(table='sessions')"
    client.close()


def test_a_rejection_reason_reaches_the_model(agent: Principals) -> None:
    client = agent.client()
    bot, model, deleted = cleaner()
    reviewer = agent.decide_later(decision="reject", comment="sessions are still in use")
    result = run_sync(client, bot, "clean up", run_config=NO_TRACING)
    reviewer.join(WAIT)
    assert deleted == []
    assert result.final_output == "done"
    assert "sessions are still in use" in tool_output(model)
    assert "reviewer" in tool_output(model)


def test_async_answer_and_no_edits(agent: Principals) -> None:
    bot, model, deleted = cleaner()

    def review() -> None:
        (approval,) = agent.pending()
        with agent.server.client(agent.reviewer) as http:
            edit = http.post(
                f"/v1/approvals/{approval['id']}/decision",
                json={"decision": "approve", "arguments": {"table": "users"}},
            )
        assert edit.status_code == 422, edit.text
        agent.decide(approval["id"], decision="answer", answer="only rows older than 30 days")

    async def scenario() -> Any:
        async with AsyncApprovals(agent.url, agent.key) as client:
            reviewing = asyncio.create_task(asyncio.to_thread(review))
            result = await run(client, bot, "clean up", run_config=NO_TRACING)
            await reviewing
            return result

    result = asyncio.run(scenario())
    assert deleted == []
    assert result.final_output == "done"
    assert "only rows older than 30 days" in tool_output(model)
