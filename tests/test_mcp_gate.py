"""``approvals mcp gate`` in front of examples/mcp/files_server.py, driven by the MCP SDK's
own client over stdio and over Streamable HTTP, against a real service whose reviewers
decide through the API, the dashboard and the terminal."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
from mcp import Client, StdioServerParameters, types
from test_dashboard import add_user, csrf_of, sign_in

from conftest import Database, Server, free_port, until
from reviewers import WAIT, Agent, make_agent

FILES_SERVER = Path(__file__).parent.parent / "examples" / "mcp" / "files_server.py"
GATED = ("--gate", "write_*", "--gate", "delete_*")
BOUND = 60.0  # every scenario ends within this many seconds, or fails


def gate_env(url: str, key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPROVALS_")}
    return {**env, "APPROVALS_URL": url, "APPROVALS_KEY": key}


@contextlib.asynccontextmanager
async def gated(
    url: str,
    key: str,
    files: Path,
    *options: str,
    transport: str = "stdio",
    mode: str = "legacy",
    log: Path | None = None,
    **client: Any,
) -> AsyncIterator[Client]:
    """The files server behind ``approvals mcp gate``, and the SDK's client connected to it."""
    command = ["-m", "approvals", "mcp", "gate", "--agent", "files-bot", *options]
    upstream = ["--", sys.executable, str(FILES_SERVER), str(files)]
    env = gate_env(url, key)
    if transport == "stdio":
        params = StdioServerParameters(command=sys.executable, args=command + upstream, env=env)
        async with Client(params, mode=mode, **client) as session:
            yield session
        return
    port = free_port()
    listen = ["--listen", f"127.0.0.1:{port}"]
    errors = open(log or os.devnull, "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, *command, *listen, *upstream], env=env, stderr=errors, stdout=errors
    )
    try:

        def listening() -> bool:
            assert proc.poll() is None, "the gate exited"
            try:
                httpx.get(f"http://127.0.0.1:{port}/mcp", timeout=1)
            except httpx.HTTPError:
                return False
            return True

        until(listening, timeout=WAIT, what="the gate listening")
        async with Client(f"http://127.0.0.1:{port}/mcp", mode=mode, **client) as session:
            yield session
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        errors.close()


def text(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


def approvals_of(agent: Agent, status: str = "all") -> list[dict[str, Any]]:
    with agent.server.client(agent.reviewer) as http:
        return list(http.get("/v1/approvals", params={"status": status}).json()["approvals"])


def full(agent: Agent, approval_id: str) -> dict[str, Any]:
    with agent.server.client(agent.reviewer) as http:
        return dict(http.get(f"/v1/approvals/{approval_id}").json())


@pytest.fixture
def files(tmp_path: Path) -> Path:
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello world\n")
    (folder / "old.log").write_text("12345\n")
    return folder


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_a_gated_call_waits_for_a_reviewer_and_runs_with_the_edited_arguments(
    server: Server, files: Path, transport: str, tmp_path: Path
) -> None:
    agent = make_agent(server)

    async def scenario() -> types.CallToolResult:
        with anyio.fail_after(BOUND):
            async with gated(
                agent.url, agent.key, files, *GATED, transport=transport, log=tmp_path / "gate.log"
            ) as client:
                described = {t.name: t.description or "" for t in (await client.list_tools()).tools}
                assert described["write_file"].startswith("[needs approval] ")
                assert described["delete_file"].startswith("[needs approval] ")
                assert not described["read_file"].startswith("[needs approval]")
                assert client.server_info is not None and client.server_info.name == "files"
                assert "Files in one directory" in (client.instructions or "")
                reviewer = agent.decide_later(
                    decision="approve", arguments={"content": "edited by a human\n"}
                )
                result = await client.call_tool(
                    "write_file", {"path": "plan.txt", "content": "agent's plan\n"}
                )
                reviewer.join(WAIT)
                return result

    result = anyio.run(scenario)
    assert not result.is_error, text(result)
    assert (files / "plan.txt").read_text() == "edited by a human\n"
    assert "wrote 18 characters to plan.txt" in text(result)
    (approval,) = approvals_of(agent)
    assert approval["status"] == "approved" and approval["source"] == "mcp"
    assert approval["tool"] == "write_file" and approval["agentId"] == "files-bot"
    assert approval["arguments"] == {"path": "plan.txt", "content": "agent's plan\n"}
    detail = full(agent, approval["id"])["request"]["detail"]
    assert detail["mcp"] == {"server": "files", "version": "1.0.0", "method": "tools/call"}
    # The gate recorded the receipt of the edited call before it ran it.
    execution = approval["execution"]
    assert execution is not None and execution["by"] == "agent"
    assert execution["argumentsDigest"] == approval["argumentsDigest"]


def test_a_rejected_call_returns_an_error_with_the_reason(server: Server, files: Path) -> None:
    agent = make_agent(server)

    async def scenario() -> types.CallToolResult:
        with anyio.fail_after(BOUND):
            async with gated(agent.url, agent.key, files, *GATED, mode="auto") as client:
                reviewer = agent.decide_later(decision="reject", comment="not on a Friday")
                result = await client.call_tool("delete_file", {"path": "notes.txt"})
                reviewer.join(WAIT)
                return result

    result = anyio.run(scenario)
    assert result.is_error
    assert "not on a Friday" in text(result) and "rejected" in text(result)
    assert (files / "notes.txt").exists()


def test_ungated_tools_resources_prompts_progress_and_logs_pass_through(
    server: Server, files: Path
) -> None:
    agent = make_agent(server)
    progress: list[tuple[float, float | None, str | None]] = []
    logged: list[Any] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logged.append(params.data)

    async def scenario() -> dict[str, Any]:
        with anyio.fail_after(BOUND):
            async with gated(
                agent.url, agent.key, files, *GATED, logging_callback=on_log
            ) as client:
                read = await client.call_tool("read_file", {"path": "notes.txt"})
                found = await client.call_tool(
                    "search", {"text": "hello"}, progress_callback=on_progress
                )
                outside = await client.call_tool("read_file", {"path": "../secret"})
                # gated by name, but the server has no such tool: its error, no human asked
                missing = await client.call_tool("delete_everything", {})
                resource = await client.read_resource("file:///notes.txt")
                prompt = await client.get_prompt("review_file", {"path": "notes.txt"})
                await anyio.sleep(0.5)  # the log line is a notification of its own
                return {
                    "read": read,
                    "found": found,
                    "outside": outside,
                    "missing": missing,
                    "resource": resource,
                    "prompt": prompt,
                }

    seen = anyio.run(scenario)
    assert text(seen["read"]) == "hello world\n"
    assert text(seen["found"]) == "notes.txt"
    assert seen["outside"].is_error and "outside the served directory" in text(seen["outside"])
    assert seen["missing"].is_error and "delete_everything" in text(seen["missing"])
    contents = seen["resource"].contents
    assert isinstance(contents[0], types.TextResourceContents)
    assert contents[0].text == "hello world\n"
    assert "hello world" in str(seen["prompt"].messages[0].content)
    assert [p[:2] for p in progress] == [(1.0, 2.0), (2.0, 2.0)]
    assert any("search for 'hello'" in str(line) for line in logged)
    assert approvals_of(agent) == []  # nothing asked a human


def test_a_policy_that_auto_approves_lets_the_call_through_without_a_human(
    server: Server, files: Path
) -> None:
    agent = make_agent(server)
    with server.client(agent.reviewer) as http:
        made = http.post("/v1/policies", json={"action": "auto_approve", "tool": "write_file"})
        assert made.status_code == 201, made.text

    async def scenario() -> types.CallToolResult:
        with anyio.fail_after(BOUND):
            async with gated(agent.url, agent.key, files) as client:
                return await client.call_tool("write_file", {"path": "a.txt", "content": "x"})

    result = anyio.run(scenario)
    assert not result.is_error, text(result)
    assert (files / "a.txt").read_text() == "x"
    (approval,) = approvals_of(agent)
    assert approval["status"] == "approved" and approval["resolvedBy"].startswith("system")


@pytest.mark.parametrize(("transport", "mode"), [("stdio", "legacy"), ("http", "auto")])
def test_a_client_that_cancels_the_call_withdraws_the_approval(
    server: Server, files: Path, transport: str, mode: str
) -> None:
    agent = make_agent(server)

    async def scenario() -> None:
        with anyio.fail_after(BOUND):
            async with gated(agent.url, agent.key, files, transport=transport, mode=mode) as client:
                async with anyio.create_task_group() as tasks:

                    async def call() -> None:
                        await client.call_tool("write_file", {"path": "b.txt", "content": "x"})

                    tasks.start_soon(call)
                    await anyio.to_thread.run_sync(agent.pending)  # a human is being asked
                    tasks.cancel_scope.cancel()  # the client gives up: notifications/cancelled
                until_withdrawn = time.monotonic() + WAIT
                while approvals_of(agent, "pending") and time.monotonic() < until_withdrawn:
                    await anyio.sleep(0.1)

    anyio.run(scenario)
    (approval,) = approvals_of(agent)
    assert approval["status"] == "withdrawn"
    assert approvals_of(agent, "pending") == []
    assert not (files / "b.txt").exists()


def test_an_elicitation_is_answered_through_the_dashboard_form(server: Server, files: Path) -> None:
    agent = make_agent(server)
    add_user(server.db, "alice")
    seen: dict[str, Any] = {}

    def review() -> None:
        (approval,) = agent.pending()
        http, _ = sign_in(server, "alice")
        with contextlib.closing(http):
            page = http.get(f"/approvals/{approval['id']}").text
            seen["page"] = page
            url = f"/approvals/{approval['id']}/decide"
            form = {
                "csrf_token": csrf_of(page),
                "view": "page",
                "decision": "answer",
                "elicit": "1",
                "field:confirm": "true",
                "field:reason": "rotated <logs>",
                "field:keep_days": "a week",
            }
            one_line = {"csrf_token": form["csrf_token"], "view": "inbox", "answer": "sure"}
            inbox = http.post(
                url, data={**one_line, "decision": "answer"}, headers={"HX-Request": "true"}
            )
            seen["inbox"] = (inbox.status_code, inbox.text)
            wrong = http.post(url, data=form, headers={"HX-Request": "true"})
            seen["wrong"] = (wrong.status_code, wrong.text)
            right = http.post(
                url, data={**form, "field:keep_days": "7"}, headers={"HX-Request": "true"}
            )
            seen["right"] = (right.status_code, right.text)

    async def scenario() -> types.CallToolResult:
        with anyio.fail_after(BOUND):
            async with gated(
                agent.url, agent.key, files, "--gate", "write_*", transport="http"
            ) as client:
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(anyio.to_thread.run_sync, review)
                    # the call itself is not gated: only the server's own question is asked
                    result = await client.call_tool("delete_file", {"path": "old.log"})
                return result

    result = anyio.run(scenario)
    page = seen["page"]
    assert "Through" in page and "the server files 1.0.0, which asks a question" in page
    assert "Delete old.log (6 bytes)?" in page
    for label in ("Delete the file?", "Days to keep a backup copy", 'name="field:reason"'):
        assert label in page
    status, inbox = seen["inbox"]  # the inbox's one-line answer cannot fill the form
    assert status == 422 and "This request asks for a form: answer it on its page." in inbox
    status, wrong = seen["wrong"]
    assert status == 422 and "must be a whole number" in wrong
    assert 'value="rotated &lt;logs&gt;"' in wrong  # what was typed is kept, escaped
    assert seen["right"][0] == 200 and "Answered by" in seen["right"][1]
    assert not result.is_error, text(result)
    assert text(result) == "deleted old.log (rotated <logs>), backup kept 7 days"
    assert (files / "old.log.bak").exists() and not (files / "old.log").exists()
    (approval,) = approvals_of(agent)
    assert approval["status"] == "answered"
    assert json.loads(approval["answer"]) == {
        "confirm": True,
        "reason": "rotated <logs>",
        "keep_days": 7,
    }
    assert approval["allowedDecisions"] == ["reject", "answer"]


def test_an_elicitation_answered_in_the_terminal_or_rejected_maps_back(
    sqlite_database: Database, make_server: Callable[..., Server], files: Path
) -> None:
    server = make_server(sqlite_database)
    agent = make_agent(server)

    def terminal(*args: str) -> subprocess.CompletedProcess[str]:
        env = gate_env(server.base, agent.reviewer)
        return subprocess.run(
            [sys.executable, "-m", "approvals", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    outcomes: dict[str, Any] = {}

    def answer() -> None:
        (approval,) = agent.pending()
        outcomes["bad"] = terminal("answer", approval["id"], "--field", "keep_days=-1")
        outcomes["good"] = terminal(
            "answer", approval["id"], "--field", "confirm=yes", "--field", "keep_days=0"
        )

    async def scenario() -> tuple[types.CallToolResult, types.CallToolResult]:
        with anyio.fail_after(BOUND):
            async with gated(agent.url, agent.key, files, "--gate", "write_*") as client:
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(anyio.to_thread.run_sync, answer)
                    answered = await client.call_tool("delete_file", {"path": "old.log"})
                reviewer = agent.decide_later(decision="reject", comment="keep it")
                declined = await client.call_tool("delete_file", {"path": "notes.txt"})
                reviewer.join(WAIT)
                return answered, declined

    answered, declined = anyio.run(scenario)
    bad = outcomes["bad"]
    assert bad.returncode == 2 and "keep_days must be at least 0" in bad.stderr
    assert "confirm (boolean) (required)" in bad.stderr
    assert outcomes["good"].returncode == 0, outcomes["good"].stderr
    assert text(answered) == "deleted old.log, backup kept 0 days"
    assert not (files / "old.log").exists()
    assert text(declined) == "kept notes.txt: the confirmation was declined"
    assert (files / "notes.txt").exists()


def test_a_service_restart_while_waiting_does_not_lose_the_call(
    sqlite_database: Database, make_server: Callable[..., Server], files: Path
) -> None:
    server = make_server(sqlite_database)
    agent = make_agent(server)

    def restart_then_approve() -> None:
        (approval,) = agent.pending()
        server.stop()
        time.sleep(1.0)  # the gate's long poll fails meanwhile, and retries
        server.start()
        agent.decide(approval["id"], decision="approve")

    async def scenario() -> types.CallToolResult:
        with anyio.fail_after(BOUND):
            async with gated(agent.url, agent.key, files) as client:
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(anyio.to_thread.run_sync, restart_then_approve)
                    result = await client.call_tool("write_file", {"path": "c.txt", "content": "y"})
                return result

    result = anyio.run(scenario)
    assert not result.is_error, text(result)
    assert (files / "c.txt").read_text() == "y"


def test_service_errors_come_back_as_tool_errors_naming_what_to_fix(
    sqlite_database: Database, make_server: Callable[..., Server], files: Path
) -> None:
    server = make_server(sqlite_database)
    nobody = f"http://127.0.0.1:{free_port()}"

    async def call(url: str, key: str) -> tuple[types.CallToolResult, types.CallToolResult]:
        with anyio.fail_after(BOUND):
            async with gated(url, key, files, "--gate", "write_*") as client:
                refused = await client.call_tool("write_file", {"path": "d.txt", "content": "z"})
                ungated = await client.call_tool("read_file", {"path": "notes.txt"})
                return refused, ungated

    unreachable, still = anyio.run(call, nobody, "apk_whatever")
    assert unreachable.is_error
    assert nobody in text(unreachable) and "APPROVALS_URL" in text(unreachable)
    assert text(still) == "hello world\n"  # the proxy keeps serving
    refused, _ = anyio.run(call, server.base, "apk_not_a_key")
    assert refused.is_error
    assert server.base in text(refused) and "APPROVALS_KEY" in text(refused)
    assert not (files / "d.txt").exists()


def test_the_request_page_shows_any_schema_escaped_and_never_fails(server: Server) -> None:
    add_user(server.db, "alice")
    agent = server.db.key("events:write")
    payload = "<script>alert(1)</script>"
    schemas = [
        {
            "type": "object",
            "properties": {
                "pick": {"type": "string", "title": payload, "enum": ["a", payload]},
                "why": {"type": "string", "description": payload, "default": payload},
            },
            "required": ["pick"],
        },
        {"type": "object", "properties": 5, "required": "pick"},
        {"properties": {"x": [1, 2], "y": {"type": "string", "oneOf": [3, {"const": 4}]}}},
    ]
    with server.client(agent) as api:
        opened = [
            api.post(
                "/v1/approvals",
                json={
                    "title": "A question",
                    "source": "mcp",
                    "detail": {
                        "requestedSchema": schema,
                        "mcp": {"server": payload},
                        "allowedDecisions": ["answer", "reject"],
                    },
                },
            ).json()
            for schema in schemas
        ]
    http, _ = sign_in(server, "alice")
    with contextlib.closing(http):
        pages = [http.get(f"/approvals/{a['id']}") for a in opened]
    for answer in pages:
        assert answer.status_code == 200
        assert payload not in answer.text and "&lt;script&gt;" in answer.text
    assert re.search(r'<select id="field-[^"]+" name="field:pick"', pages[0].text)
