"""The LangGraph adapter: a real graph paused on HumanInterrupts, resumed from decisions."""

from __future__ import annotations

import asyncio
import operator
import threading
from collections.abc import Callable
from typing import Annotated, Any, TypedDict

import httpx
import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt

from approvals.client import AsyncApprovals
from approvals.client.langgraph import ainvoke, invoke
from conftest import Database, Server
from reviewers import WAIT, Agent, make_agent


@pytest.fixture
def agent(sqlite_database: Database, make_server: Callable[..., Server]) -> Agent:
    return make_agent(make_server(sqlite_database))


class State(TypedDict, total=False):
    count: int
    log: Annotated[list[str], operator.add]


def ask(action: str, count: int, **config: bool) -> dict[str, Any]:
    return {
        "action_request": {"action": action, "args": {"count": count}},
        "config": {
            "allow_accept": True,
            "allow_ignore": True,
            "allow_respond": True,
            "allow_edit": True,
            **config,
        },
        "description": f"{action} {count}?",
    }


def act(action: str, **config: bool) -> Callable[[State], State]:
    def node(state: State) -> State:
        response = interrupt(ask(action, state["count"], **config))
        kind = response["type"]
        if kind == "accept":
            return {"log": [f"{action} {state['count']}"]}
        if kind == "edit":
            return {"log": [f"{action} {response['args']['args']['count']} (edited)"]}
        if kind == "response":
            return {"log": [f"{action} told: {response['args']}"]}
        return {"log": [f"{action} skipped"]}

    return node


def one_step_graph(**config: bool) -> Any:
    builder = StateGraph(State)
    builder.add_node("post_ads", act("post_ads", **config))
    builder.add_edge(START, "post_ads")
    builder.add_edge("post_ads", END)
    return builder.compile(checkpointer=InMemorySaver())


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"decision": "approve"}, "post_ads 5"),
        ({"decision": "approve", "arguments": {"count": 2}}, "post_ads 2 (edited)"),
        ({"decision": "answer", "answer": "wait for Monday"}, "post_ads told: wait for Monday"),
        ({"decision": "reject", "comment": "no"}, "post_ads skipped"),
    ],
)
def test_each_decision_resumes_with_the_matching_human_response(
    agent: Agent, body: dict[str, Any], expected: str
) -> None:
    client = agent.client()
    reviewer = agent.decide_later(**body)
    config = {"configurable": {"thread_id": "t1"}}
    result = invoke(client, one_step_graph(), {"count": 5, "log": []}, config, run_id="run_lg")
    reviewer.join(WAIT)
    assert result["log"] == [expected]
    (seen,) = reviewer.seen  # type: ignore[attr-defined]
    assert seen["tool"] == "post_ads" and seen["title"] == "post_ads 5?"
    assert seen["arguments"] == {"count": 5} and seen["runId"] == "run_lg"
    client.close()


def test_the_interrupt_config_limits_what_a_reviewer_may_do(agent: Agent) -> None:
    client = agent.client()
    graph = one_step_graph(allow_respond=False, allow_edit=False)
    config = {"configurable": {"thread_id": "t2"}}
    done: list[Any] = []
    runner = threading.Thread(
        target=lambda: done.append(invoke(client, graph, {"count": 3, "log": []}, config)),
        daemon=True,
    )
    runner.start()
    (approval,) = agent.pending()
    with agent.server.client(agent.reviewer) as http:
        answer = http.post(
            f"/v1/approvals/{approval['id']}/decision", json={"decision": "answer", "answer": "x"}
        )
        edit = http.post(
            f"/v1/approvals/{approval['id']}/decision",
            json={"decision": "approve", "arguments": {"count": 9}},
        )
    assert answer.status_code == 422 and edit.status_code == 422
    agent.decide(approval["id"], decision="approve")
    runner.join(WAIT)
    assert done[0]["log"] == ["post_ads 3"]
    client.close()


def test_parallel_interrupts_each_get_their_own_approval(agent: Agent) -> None:
    builder = StateGraph(State)
    builder.add_node("post_ads", act("post_ads"))
    builder.add_node("send_email", act("send_email"))
    builder.add_edge(START, "post_ads")
    builder.add_edge(START, "send_email")
    builder.add_edge("post_ads", END)
    builder.add_edge("send_email", END)
    graph = builder.compile(checkpointer=InMemorySaver())

    def review() -> None:
        for approval in agent.pending(2):
            if approval["tool"] == "post_ads":
                agent.decide(approval["id"], decision="approve", arguments={"count": 1})
            else:
                agent.decide(approval["id"], decision="reject", comment="not now")

    reviewer = threading.Thread(target=review, daemon=True)
    reviewer.start()

    async def scenario() -> Any:
        async with AsyncApprovals(agent.url, agent.key) as client:
            config = {"configurable": {"thread_id": "t3"}}
            return await ainvoke(client, graph, {"count": 4, "log": []}, config)

    result = asyncio.run(scenario())
    reviewer.join(WAIT)
    assert sorted(result["log"]) == ["post_ads 1 (edited)", "send_email skipped"]
    with httpx.Client(base_url=agent.url, headers={"Authorization": f"Bearer {agent.key}"}) as h:
        decided = h.get("/v1/approvals", params={"status": "all"}).json()["approvals"]
    assert len(decided) == 2


def test_a_retried_resume_reuses_the_open_approvals_and_runs_nothing_twice(
    agent: Agent,
) -> None:
    from approvals.client.langgraph import resume_command

    client = agent.client()
    graph = one_step_graph()
    config = {"configurable": {"thread_id": "t4"}}
    graph.invoke({"count": 5, "log": []}, config)
    interrupts = graph.get_state(config).interrupts
    reviewer = agent.decide_later(decision="approve")
    first = resume_command(client, interrupts, timeout=WAIT)
    reviewer.join(WAIT)
    second = resume_command(client, interrupts, timeout=WAIT)
    assert agent.server.db.scalar("SELECT count(*) FROM approvals") == 1
    # The first resume recorded the execution receipt: a retry of it runs nothing.
    (answer,) = second.resume.values()
    assert answer["type"] == "response" and "already executed" in answer["args"]
    assert graph.invoke(first, config)["log"] == ["post_ads 5"]
    client.close()
