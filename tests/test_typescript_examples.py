"""Each TypeScript example in ``examples/typescript/`` runs with node against a real
service while a reviewer decides through the API.

The examples depend on the built ``approvals-client`` package (installed as a copy,
see ``examples/typescript/.npmrc``), so a session fixture builds it and installs the
examples' packages when they are missing or older than the build.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typescript_build import CLIENT, NODE, ROOT, ensure_client, locked, must, needs_node, npm

from conftest import Database, Server
from reviewers import WAIT, make_agent

EXAMPLES = ROOT / "examples" / "typescript"

pytestmark = needs_node


def _fingerprint(folder: Path) -> str:
    """A digest of every file under ``folder`` (paths and contents); empty when absent."""
    if not folder.is_dir():
        return ""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="session")
def examples_installed() -> Path:
    """``examples/typescript`` with its packages installed and a current client build
    (``make test`` installs and builds the client first)."""
    with locked():
        ensure_client()
        installed = EXAMPLES / "node_modules" / "approvals-client" / "dist"
        if _fingerprint(installed) != _fingerprint(CLIENT / "dist"):
            must(npm("ci", "--no-audit", "--no-fund", cwd=EXAMPLES), "npm ci (examples)")
    return EXAMPLES


def _run(
    examples: Path, server: Server, script: str, **decision: Any
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Run ``script`` while a reviewer decides its one approval; return the process and
    the approval the reviewer saw."""
    assert NODE is not None
    agent = make_agent(server)
    agent_key = server.db.key("events:write", "approvals:read", name="example")
    reviewer = agent.decide_later(**decision)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APPROVALS_", "OPENAI_"))}
    env.update(APPROVALS_URL=agent.url, APPROVALS_KEY=agent_key, OPENAI_AGENTS_DISABLE_TRACING="1")
    out = subprocess.run(
        [NODE, script], cwd=examples, env=env, capture_output=True, text=True, timeout=120
    )
    reviewer.join(WAIT)
    assert out.returncode == 0, out.stdout + out.stderr
    (seen,) = reviewer.seen  # type: ignore[attr-defined]
    return out, seen


@pytest.mark.parametrize(
    ("script", "decision", "printed"),
    [
        ("ai_sdk_agent.mjs", {}, "Finished: deleted every row of sessions"),
        ("openai_agents_agent.mjs", {}, "Finished: deleted every row of sessions"),
        (
            "langgraph_agent.mjs",
            {"arguments": {"command": "make deploy-staging"}},
            "Finished: ran make deploy-staging (edited)",
        ),
        ("langgraph_agent.mjs", {}, "Finished: ran make deploy"),
    ],
)
def test_example_runs_to_the_end(
    examples_installed: Path,
    sqlite_database: Database,
    make_server: Callable[..., Server],
    script: str,
    decision: dict[str, Any],
    printed: str,
) -> None:
    out, seen = _run(
        examples_installed, make_server(sqlite_database), script, decision="approve", **decision
    )
    assert printed in out.stdout
    assert seen["tool"] in {"deleteRows", "delete_rows", "run_command"}


@pytest.mark.parametrize(
    ("script", "printed"),
    [
        (
            "ai_sdk_agent.mjs",
            "Finished without deleting anything. The reviewer reviewer rejected this tool call: "
            "not on a Friday",
        ),
        (
            "openai_agents_agent.mjs",
            "Finished: The reviewer reviewer rejected this tool call: not on a Friday",
        ),
    ],
)
def test_a_rejection_reason_reaches_the_model(
    examples_installed: Path,
    sqlite_database: Database,
    make_server: Callable[..., Server],
    script: str,
    printed: str,
) -> None:
    out, _ = _run(
        examples_installed,
        make_server(sqlite_database),
        script,
        decision="reject",
        comment="not on a Friday",
    )
    assert printed in out.stdout
    assert "deleted every row" not in out.stdout


@pytest.mark.parametrize("script", ["ai_sdk_agent.mjs", "openai_agents_agent.mjs"])
def test_an_answer_reaches_the_model_and_edits_are_refused(
    examples_installed: Path,
    sqlite_database: Database,
    make_server: Callable[..., Server],
    script: str,
) -> None:
    out, seen = _run(
        examples_installed,
        make_server(sqlite_database),
        script,
        decision="answer",
        answer="truncate only rows older than 30 days",
    )
    assert (
        "The reviewer did not run this tool and answered: truncate only rows older than 30 days"
        in out.stdout
    )
    # The framework cannot run changed arguments, so the approval says edits are refused.
    assert seen["allowEdit"] is False
    assert seen["arguments"] == {"table": "sessions"}
    assert "db-janitor wants to call" in seen["title"]


def test_langgraph_answer_is_the_node_response(
    examples_installed: Path, sqlite_database: Database, make_server: Callable[..., Server]
) -> None:
    out, seen = _run(
        examples_installed,
        make_server(sqlite_database),
        "langgraph_agent.mjs",
        decision="answer",
        answer="deploy to staging first",
    )
    assert "Finished: did not run; the reviewer said: deploy to staging first" in out.stdout
    assert seen["allowEdit"] is True
    assert seen["arguments"] == {"command": "make deploy"}


# Resolves the same AI SDK result twice (the second time the approved call's receipt is
# refused), then resumes two LangGraph interrupts, one carrying a list, by id.
REPLAY = """
import { Approvals } from "approvals-client";
import { resolveToolApprovals } from "approvals-client/ai-sdk";
import { resumeCommand } from "approvals-client/langgraph";

const client = new Approvals();
const call = (n, table) => ({
  type: "tool-approval-request",
  approvalId: `aitxt-${n}`,
  toolCall: { toolCallId: `call_${n}`, toolName: "deleteRows", input: { table } },
});
const result = { content: [call(1, "a"), call(2, "b")] };
for (const round of ["first", "again"]) {
  const [message] = await resolveToolApprovals(client, result);
  console.log(JSON.stringify({ round, content: message.content }));
}
const command = await resumeCommand(client, [
  {
    id: "0123456789abcdef0123456789abcdef",
    value: [
      {
        action_request: { action: "scale", args: { n: 1 } },
        config: { allow_accept: true, allow_edit: true, allow_ignore: true, allow_respond: false },
      },
      {
        action_request: { action: "notify", args: { n: 2 } },
        config: { allow_accept: true, allow_edit: false, allow_ignore: false, allow_respond: true },
      },
    ],
  },
  {
    id: "fedcba9876543210fedcba9876543210",
    value: { action_request: { action: "restart", args: {} } },
  },
]);
console.log(JSON.stringify({ resume: command.resume }));
await client.close();
"""


def test_adapters_reuse_approvals_refuse_a_second_run_and_resume_by_id(
    examples_installed: Path, sqlite_database: Database, make_server: Callable[..., Server]
) -> None:
    assert NODE is not None
    agent = make_agent(make_server(sqlite_database))
    agent_key = sqlite_database.key("events:write", "approvals:read", name="example")

    def review() -> None:
        by_table = {a["arguments"]["table"]: a["id"] for a in agent.pending(2)}
        agent.decide(by_table["a"], decision="approve")
        agent.decide(by_table["b"], decision="reject", comment="not b")
        by_tool = {a["tool"]: a for a in agent.pending(3, status="pending")}
        assert by_tool["scale"]["allowEdit"] is True
        assert by_tool["notify"]["allowedDecisions"] == ["approve", "answer"]
        agent.decide(by_tool["scale"]["id"], decision="approve", arguments={"n": 5})
        agent.decide(by_tool["notify"]["id"], decision="answer", answer="use the pager")
        agent.decide(by_tool["restart"]["id"], decision="approve")

    reviewer = threading.Thread(target=review, daemon=True)
    reviewer.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPROVALS_")}
    env.update(APPROVALS_URL=agent.url, APPROVALS_KEY=agent_key)
    out = subprocess.run(
        [NODE, "--input-type=module", "-e", REPLAY],
        cwd=examples_installed,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    reviewer.join(WAIT)
    assert out.returncode == 0, out.stdout + out.stderr
    first, again, resumed = (json.loads(line) for line in out.stdout.splitlines())
    rejected = {
        "type": "tool-approval-response",
        "approvalId": "aitxt-2",
        "approved": False,
        "reason": "The reviewer reviewer rejected this tool call: not b",
    }
    assert first["content"] == [
        {"type": "tool-approval-response", "approvalId": "aitxt-1", "approved": True},
        rejected,
    ]
    (refused, rejected_again) = again["content"]
    assert refused["approved"] is False
    assert refused["reason"].startswith("Not run: ")
    assert "already executed" in refused["reason"]
    assert rejected_again == rejected
    assert resumed["resume"] == {
        "0123456789abcdef0123456789abcdef": [
            {"type": "edit", "args": {"action": "scale", "args": {"n": 5}}},
            {"type": "response", "args": "use the pager"},
        ],
        "fedcba9876543210fedcba9876543210": {"type": "accept", "args": None},
    }
