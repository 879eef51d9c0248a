"""An OpenAI Agents SDK agent whose ``needs_approval`` tool waits for the inbox.

    export APPROVALS_KEY=…  # events:write and approvals:read, see examples/decorator.py
    .venv/bin/python examples/openai_agents_agent.py

The model here is the SDK's ``ScriptedModel`` so the example needs no API key; put
``model="gpt-5"`` (and ``OPENAI_API_KEY``) in its place for a real one. A rejection
reason is what the model reads as the tool's result.
"""

from __future__ import annotations

from agents import Agent, RunConfig, function_tool
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call

from approvals.client import Approvals
from approvals.client.openai_agents import run_sync


@function_tool(needs_approval=True)
def delete_rows(table: str) -> str:
    """Delete every row of a table."""
    return f"deleted every row of {table}"


def main() -> None:
    model = ScriptedModel(
        [
            [function_call("delete_rows", {"table": "sessions"}, call_id="call_cleanup")],
            ModelStep.respond(
                lambda call: [assistant_message(f"Finished: {call.input[-1]['output']}")]
            ),
        ]
    )
    agent = Agent(name="db-janitor", model=model, tools=[delete_rows])
    with Approvals() as client:
        result = run_sync(
            client, agent, "Clear the sessions table.", run_config=RunConfig(tracing_disabled=True)
        )
    print(result.final_output)


if __name__ == "__main__":
    main()
