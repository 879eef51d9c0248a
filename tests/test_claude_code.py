"""Claude Code's PreToolUse hook: `approvals hook claude-code` and `POST /hooks/claude-code`.

Recorded hook payloads (Bash, Edit, an MCP tool) go through the command (a subprocess)
and the HTTP endpoint against a real service; a reviewer decides through the API.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from approvals.client import Decision
from approvals.mcp import claude
from conftest import Server, free_port
from reviewers import WAIT, Agent, make_agent

SESSION = "4f7c2d0e-8a51-4b8e-9d3c-2a1e6f0b9c77"
BASH = {
    "session_id": SESSION,
    "transcript_path": "/home/dev/.claude/projects/-srv-shop/4f7c2d0e.jsonl",
    "cwd": "/srv/shop",
    "permission_mode": "default",
    "hook_event_name": "PreToolUse",
    "tool_name": "Bash",
    "tool_input": {
        "command": "rm -rf build/ && npm run deploy -- --prod",
        "description": "Deploy the shop to production",
    },
    "tool_use_id": "toolu_01BashXk3n9QeR7tZ2wYp4Lm",
}
EDIT = {
    "session_id": SESSION,
    "transcript_path": "/home/dev/.claude/projects/-srv-shop/4f7c2d0e.jsonl",
    "cwd": "/srv/shop",
    "permission_mode": "default",
    "hook_event_name": "PreToolUse",
    "tool_name": "Edit",
    "tool_input": {
        "file_path": "/srv/shop/config/prices.yaml",
        "old_string": "discount: 0.05",
        "new_string": "discount: 0.5",
        "replace_all": False,
    },
    "tool_use_id": "toolu_01EditPq8mW2vB5cN4hJ6sDf",
}
MCP_WRITE = {
    "session_id": SESSION,
    "transcript_path": "/home/dev/.claude/projects/-srv-shop/4f7c2d0e.jsonl",
    "cwd": "/srv/shop",
    "permission_mode": "acceptEdits",
    "hook_event_name": "PreToolUse",
    "tool_name": "mcp__files__write_file",
    "tool_input": {"path": "/srv/shop/.env", "content": "STRIPE_KEY=sk_live_<redacted>\n"},
    "tool_use_id": "toolu_01McpWr7aS3dF9gH2jK5lZxC",
}


def hook_json(answer: dict[str, Any]) -> dict[str, Any]:
    specific = answer["hookSpecificOutput"]
    assert specific["hookEventName"] == "PreToolUse"
    assert specific["permissionDecision"] in ("allow", "deny")
    return dict(specific)


@dataclass
class Call:
    """One hook call in flight, through the command or the HTTP endpoint."""

    transport: str
    server: Server
    key: str
    payload: Any
    timeout: float = WAIT
    url: str | None = None
    proc: subprocess.Popen[str] | None = None
    thread: threading.Thread | None = None
    response: list[httpx.Response] = field(default_factory=list)

    def start(self) -> Call:
        if self.transport == "command":
            self.proc = subprocess.Popen(
                [
                    *hook_command(self.url or self.server.base, self.key),
                    "--timeout",
                    str(self.timeout),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={k: v for k, v in os.environ.items() if not k.startswith("APPROVALS_")},
            )
            assert self.proc.stdin is not None
            raw = self.payload if isinstance(self.payload, str) else json.dumps(self.payload)
            self.proc.stdin.write(raw)
            self.proc.stdin.close()
            self.proc.stdin = None  # sent: communicate() only reads
        else:
            self.thread = threading.Thread(target=self._post, daemon=True)
            self.thread.start()
        return self

    def _post(self) -> None:
        self.response.append(
            httpx.post(
                self.server.base + "/hooks/claude-code",
                params={"timeout": str(self.timeout)},
                json=self.payload,
                headers={"Authorization": f"Bearer {self.key}"},
                timeout=self.timeout + 30,
            )
        )

    def result(self) -> tuple[dict[str, Any], str]:
        """The hook's JSON answer and what it said on stderr (the command only)."""
        if self.proc is not None:
            out, err = self.proc.communicate(timeout=self.timeout + 60)
            assert self.proc.returncode == 0, err
            return json.loads(out), err
        assert self.thread is not None
        self.thread.join(self.timeout + 60)
        (response,) = self.response
        assert response.status_code == 200, response.text
        return response.json(), ""


def hook_command(url: str, key: str) -> list[str]:
    return [sys.executable, "-m", "approvals", "hook", "claude-code", "--url", url, "--key", key]


def approvals_of(agent: Agent) -> list[dict[str, Any]]:
    with agent.server.client(agent.reviewer) as http:
        return list(http.get("/v1/approvals", params={"status": "all"}).json()["approvals"])


TRANSPORTS = ["command", "http"]


# -- the mapping, pure ------------------------------------------------------------------


def test_a_payload_maps_to_one_approval_request() -> None:
    bash = claude.ask(BASH)
    assert bash.title == (
        "Claude Code wants to run Bash: rm -rf build/ && npm run deploy -- --prod"
    )
    assert (bash.tool, bash.arguments, bash.run_id) == ("Bash", BASH["tool_input"], SESSION)
    assert bash.key == "claude-code:toolu_01BashXk3n9QeR7tZ2wYp4Lm"
    assert bash.detail["cwd"] == "/srv/shop" and "transcript_path" not in json.dumps(bash.detail)
    body = bash.body(30)
    assert (body["agentId"], body["source"], body["timeoutSeconds"]) == ("claude-code",) * 2 + (30,)
    assert body["detail"]["tool"] == "Bash" and body["detail"]["arguments"] == BASH["tool_input"]
    write = claude.ask(MCP_WRITE)
    assert write.title == "Claude Code wants to run write_file (MCP server files): /srv/shop/.env"
    assert write.detail["mcpServer"] == "files"
    assert claude.ask(EDIT).title.endswith("Edit: /srv/shop/config/prices.yaml")
    long = claude.ask({**BASH, "tool_input": {"command": "echo 'x'\n" * 100}})
    assert len(long.title) == claude.TITLE_LIMIT and long.title.endswith("…")
    assert "\n" not in long.title


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("", "no hook input"),
        ("{not json", "not JSON"),
        ("[1, 2]", "JSON object"),
        (json.dumps({**BASH, "hook_event_name": "PostToolUse"}), "hook_event_name"),
        (json.dumps({**BASH, "tool_name": ""}), "tool_name"),
        (json.dumps({**BASH, "tool_input": "rm -rf /"}), "tool_input"),
        (json.dumps({**BASH, "session_id": 7}), "session_id"),
    ],
)
def test_input_that_is_no_pretooluse_call_is_refused(raw: str, says: str) -> None:
    with pytest.raises(claude.HookInputError, match=says):
        claude.ask(claude.decode(raw))


def _decision(**fields: Any) -> Decision:
    body = {"id": "apr_1", "status": "pending", "arguments": {"path": "/a", "mode": "w"}}
    return Decision.from_json({**body, **fields})


def test_each_decision_maps_to_allow_or_deny() -> None:
    original = {"path": "/a", "mode": "w"}
    approved = claude.answer(
        _decision(status="approved", decision="approve", resolvedBy="ann"), original, 30
    )
    assert hook_json(approved) == {
        "hookEventName": "PreToolUse",
        "permissionDecision": "allow",
        "permissionDecisionReason": "Approved by ann",
    }
    edited = hook_json(
        claude.answer(
            _decision(
                status="approved",
                decision="approve",
                resolvedBy="ann",
                editedArguments={"path": "/b", "mode": "w"},
            ),
            original,
            30,
        )
    )
    assert edited["permissionDecision"] == "allow"
    assert edited["updatedInput"] == {"path": "/b", "mode": "w"}
    same = claude.answer(
        _decision(status="approved", decision="approve", editedArguments=original), original, 30
    )
    assert "updatedInput" not in hook_json(same)
    for fields, says in (
        ({"status": "rejected", "decision": "reject", "resolvedBy": "bo", "comment": "no"}, "no"),
        ({"status": "rejected", "decision": "reject", "resolvedBy": "bo"}, "no reason given"),
        ({"status": "answered", "decision": "answer", "answer": "use /tmp"}, "use /tmp"),
        ({"status": "expired", "decision": "reject"}, "in time"),
        ({"status": "withdrawn", "resolvedBy": "agent"}, "withdrawn by agent"),
        ({}, "no decision within 30 s"),
    ):
        specific = hook_json(claude.answer(_decision(**fields), original, 30))
        assert specific["permissionDecision"] == "deny", fields
        assert says in specific["permissionDecisionReason"], fields
        assert "updatedInput" not in specific


# -- against a real service -------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_bash_allowed_edit_denied_mcp_write_edited(server: Server, transport: str) -> None:
    agent = make_agent(server)

    bash = Call(transport, server, agent.key, BASH).start()
    (pending,) = agent.pending()
    agent.decide(pending["id"], decision="approve", comment="ship it")
    answer, _ = bash.result()
    assert hook_json(answer) == {
        "hookEventName": "PreToolUse",
        "permissionDecision": "allow",
        "permissionDecisionReason": "Approved by reviewer: ship it",
    }
    assert pending["title"] == (
        "Claude Code wants to run Bash: rm -rf build/ && npm run deploy -- --prod"
    )
    assert (pending["agentId"], pending["runId"], pending["source"]) == (
        "claude-code",
        SESSION,
        "claude-code",
    )
    assert (pending["tool"], pending["arguments"]) == ("Bash", BASH["tool_input"])
    assert pending["requestedBy"] == "agent"

    edit = Call(transport, server, agent.key, EDIT).start()
    (pending,) = agent.pending()
    agent.decide(pending["id"], decision="reject", comment="50% off is a typo; keep 0.05")
    specific = hook_json(edit.result()[0])
    assert specific["permissionDecision"] == "deny"
    assert specific["permissionDecisionReason"] == (
        "Rejected by reviewer: 50% off is a typo; keep 0.05"
    )

    write = Call(transport, server, agent.key, MCP_WRITE).start()
    (pending,) = agent.pending()
    assert pending["tool"] == "mcp__files__write_file"
    safer = {"path": "/srv/shop/.env.example", "content": "STRIPE_KEY=\n"}
    agent.decide(pending["id"], decision="approve", arguments=safer)
    specific = hook_json(write.result()[0])
    assert specific["permissionDecision"] == "allow"
    assert specific["updatedInput"] == safer
    assert "edited" in specific["permissionDecisionReason"]
    assert [a["status"] for a in approvals_of(agent)] == ["approved", "rejected", "approved"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_retried_hook_gets_the_same_approval(server: Server, transport: str) -> None:
    agent = make_agent(server)
    first = Call(transport, server, agent.key, BASH).start()
    (pending,) = agent.pending()
    agent.decide(pending["id"], decision="reject", comment="not today")
    assert hook_json(first.result()[0])["permissionDecision"] == "deny"
    began = time.monotonic()
    again = hook_json(Call(transport, server, agent.key, copy.deepcopy(BASH)).start().result()[0])
    assert again["permissionDecisionReason"] == "Rejected by reviewer: not today"
    assert time.monotonic() - began < WAIT
    assert len(approvals_of(agent)) == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_allowed_call_is_allowed_once(server: Server, transport: str) -> None:
    agent = make_agent(server)
    first = Call(transport, server, agent.key, BASH).start()
    (pending,) = agent.pending()
    agent.decide(pending["id"], decision="approve")
    assert hook_json(first.result()[0])["permissionDecision"] == "allow"
    # The hook recorded the execution receipt: the same tool_use_id again is denied.
    again = hook_json(Call(transport, server, agent.key, copy.deepcopy(BASH)).start().result()[0])
    assert again["permissionDecision"] == "deny"
    assert "already executed" in again["permissionDecisionReason"]
    (approval,) = approvals_of(agent)
    assert approval["execution"] is not None


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_policies_answer_at_once(server: Server, transport: str) -> None:
    agent = make_agent(server)
    with server.client(agent.key) as http:
        for policy in (
            {"agentId": "claude-code", "tool": "Read", "action": "auto_approve"},
            {"agentId": "claude-code", "tool": "mcp__files__write_file", "action": "deny"},
        ):
            assert http.post("/v1/policies", json=policy).status_code == 201
    read = {**BASH, "tool_name": "Read", "tool_input": {"file_path": "/srv/shop/README.md"}}
    read["tool_use_id"] = "toolu_01ReadAb"
    began = time.monotonic()
    allowed = hook_json(Call(transport, server, agent.key, read, timeout=600).start().result()[0])
    denied = hook_json(
        Call(transport, server, agent.key, MCP_WRITE, timeout=600).start().result()[0]
    )
    assert time.monotonic() - began < WAIT  # nobody was asked, nothing waited
    assert allowed["permissionDecision"] == "allow"
    assert allowed["permissionDecisionReason"] == "Approved by system:policy"
    assert denied["permissionDecision"] == "deny"
    assert "denied by policy" in denied["permissionDecisionReason"]
    assert agent.server.db.scalar("SELECT count(*) FROM approvals WHERE status = 'pending'") == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_no_decision_in_time_denies_and_expires(server: Server, transport: str) -> None:
    agent = make_agent(server)
    answer, _ = Call(transport, server, agent.key, EDIT, timeout=1).start().result()
    specific = hook_json(answer)
    assert specific["permissionDecision"] == "deny"
    assert "in time" in specific["permissionDecisionReason"]
    (approval,) = approvals_of(agent)
    assert approval["status"] == "expired" and approval["resolvedBy"] == "system:timeout"


def test_the_command_denies_whatever_goes_wrong(server: Server) -> None:
    agent = make_agent(server)
    for payload, says in (
        ("{not json", "not JSON"),
        (json.dumps({**BASH, "hook_event_name": "Stop"}), "hook_event_name"),
    ):
        answer, err = Call("command", server, agent.key, payload).start().result()
        assert hook_json(answer)["permissionDecision"] == "deny"
        assert says in hook_json(answer)["permissionDecisionReason"] and says in err
    unreachable = f"http://127.0.0.1:{free_port()}"
    began = time.monotonic()
    down = Call("command", server, agent.key, BASH, timeout=2, url=unreachable)
    answer, err = down.start().result()
    assert hook_json(answer)["permissionDecision"] == "deny"
    assert f"the approvals service at {unreachable} did not answer within 2 s" in err
    assert time.monotonic() - began < 15  # answered before Claude Code's own hook timeout
    wrong_key, err = Call("command", server, "not-a-key", BASH).start().result()
    assert hook_json(wrong_key)["permissionDecision"] == "deny" and "401" in err
    assert approvals_of(agent) == []


def test_the_endpoint_refuses_bad_input_and_changes_nothing(server: Server) -> None:
    agent = make_agent(server)
    reader = server.db.key("approvals:read", name="reader")
    url = server.base + "/hooks/claude-code"
    auth = {"Authorization": f"Bearer {agent.key}"}
    for body, field_name in (
        ({**BASH, "hook_event_name": "PostToolUse"}, "hook_event_name"),
        ({**BASH, "tool_name": ""}, "tool_name"),
        ({**BASH, "tool_input": ["rm", "-rf"]}, "tool_input"),
        ({key: value for key, value in BASH.items() if key != "tool_name"}, "tool_name"),
    ):
        answer = httpx.post(url, json=body, headers=auth)
        assert answer.status_code in (400, 422), answer.text
        assert field_name in answer.json()["field"], answer.json()
    for params in ({"timeout": "0"}, {"timeout": "100000"}, {"wait": "5"}):
        answer = httpx.post(url, json=BASH, headers=auth, params=params)
        assert answer.status_code == 400, (params, answer.text)
    assert httpx.post(url, json=BASH).status_code == 401
    forbidden = httpx.post(url, json=BASH, headers={"Authorization": f"Bearer {reader}"})
    assert forbidden.status_code == 403 and "events:write" in forbidden.json()["message"]
    assert approvals_of(agent) == []
    document = httpx.get(server.base + "/schema/openapi.json").json()
    operation = document["paths"]["/hooks/claude-code"]["post"]
    assert operation["security"] == [{"bearer": []}]
    assert operation["operationId"] == "claudeCodePreToolUse"
