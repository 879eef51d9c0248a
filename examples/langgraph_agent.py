"""A LangGraph graph that pauses on ``interrupt(HumanInterrupt)``, resumed from the inbox.

    export APPROVALS_KEY=…  # events:write and approvals:read, see examples/decorator.py
    .venv/bin/python examples/langgraph_agent.py

The node asks before running a shell command; accept, edit the command, answer
with text, or reject (``ignore``) in the dashboard or with ``approvals``.
"""

from __future__ import annotations

import operator
import uuid
from typing import Annotated, TypedDict

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt

from approvals.client import Approvals
from approvals.client.langgraph import invoke


class State(TypedDict, total=False):
    command: str
    log: Annotated[list[str], operator.add]


def run_command(state: State) -> State:
    """Ask a human (an Agent Inbox style HumanInterrupt), then act on the response."""
    response = interrupt(
        {
            "action_request": {"action": "run_command", "args": {"command": state["command"]}},
            "config": {
                "allow_accept": True,
                "allow_edit": True,
                "allow_respond": True,
                "allow_ignore": True,
            },
            "description": f"Run `{state['command']}` on the build server?",
        }
    )
    if response["type"] == "accept":
        return {"log": [f"ran {state['command']}"]}
    if response["type"] == "edit":
        return {"log": [f"ran {response['args']['args']['command']} (edited)"]}
    if response["type"] == "response":
        return {"log": [f"did not run; the reviewer said: {response['args']}"]}
    return {"log": ["skipped"]}


def main() -> None:
    builder = StateGraph(State)
    builder.add_node("run_command", run_command)
    builder.add_edge(START, "run_command")
    builder.add_edge("run_command", END)
    graph = builder.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": f"thread-{uuid.uuid4().hex[:8]}"}}
    with Approvals() as client:
        result = invoke(client, graph, {"command": "make deploy", "log": []}, config)
    print("\n".join(result["log"]))


if __name__ == "__main__":
    main()
