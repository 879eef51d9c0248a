"""A Pydantic AI agent whose ``requires_approval`` tool is decided in the inbox.

    export APPROVALS_KEY=…  # events:write and approvals:read, see examples/decorator.py
    .venv/bin/python examples/pydantic_ai_agent.py

The model is a ``FunctionModel`` so the example needs no API key; pass
``"openai:gpt-5"`` or any model name for a real one. A reviewer may edit the
arguments (``approvals approve ID --arguments '{"older_than_days": 30}'``).
"""

from __future__ import annotations

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

from approvals.client import Approvals
from approvals.client.pydantic_ai import run_sync


def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Call the tool once, then report what it answered."""
    for message in reversed(messages):
        if isinstance(message, ModelRequest):
            for part in message.parts:
                if isinstance(part, ToolReturnPart):
                    return ModelResponse(parts=[TextPart(f"Finished: {part.content}")])
    args = {"table": "sessions", "older_than_days": 7}
    return ModelResponse(parts=[ToolCallPart("delete_rows", args, "call_cleanup")])


agent: Agent[None, str | DeferredToolRequests] = Agent(
    FunctionModel(model), name="db-janitor", output_type=[str, DeferredToolRequests]
)


@agent.tool_plain(requires_approval=True)
def delete_rows(table: str, older_than_days: int) -> str:
    """Delete the rows of a table older than some days."""
    return f"deleted rows of {table} older than {older_than_days} days"


def main() -> None:
    with Approvals() as client:
        result = run_sync(client, agent, "Trim the sessions table.")
    print(result.output)


if __name__ == "__main__":
    main()
