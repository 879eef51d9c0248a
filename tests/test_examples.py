"""Each example in ``examples/`` runs against a real service and a reviewer's decision."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import Database, Server
from reviewers import WAIT, make_agent

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.mark.parametrize(
    ("script", "decision", "printed"),
    [
        ("decorator.py", {"arguments": {"count": 2}}, "posted 2 ads to meta"),
        ("langgraph_agent.py", {}, "ran make deploy"),
        ("openai_agents_agent.py", {}, "Finished: deleted every row of sessions"),
        (
            "pydantic_ai_agent.py",
            {"arguments": {"older_than_days": 30}},
            "Finished: deleted rows of sessions older than 30 days",
        ),
    ],
)
def test_example_runs_to_the_end(
    sqlite_database: Database,
    make_server: Callable[..., Server],
    script: str,
    decision: dict[str, Any],
    printed: str,
) -> None:
    agent = make_agent(make_server(sqlite_database))
    agent_key = sqlite_database.key("events:write", "approvals:read", name="example")
    reviewer = agent.decide_later(decision="approve", **decision)
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPROVALS_")}
    env.update(APPROVALS_URL=agent.url, APPROVALS_KEY=agent_key)
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    reviewer.join(WAIT)
    assert out.returncode == 0, out.stderr
    assert printed in out.stdout
