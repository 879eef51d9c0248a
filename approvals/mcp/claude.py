"""Claude Code's ``PreToolUse`` hook: its JSON to an approval, a decision back to its JSON.

Claude Code runs a command hook with the call's JSON on stdin (``session_id``,
``tool_name``, ``tool_input``, ``tool_use_id``, ``cwd``, ``hook_event_name``) and reads
``{"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": …}}``
from stdout; an HTTP hook posts the same JSON and reads the same answer. The mapping
here is shared by ``approvals hook claude-code`` and ``POST /hooks/claude-code``.

Anything that is not a decision to allow is a ``deny`` with a reason Claude reads:
a rejection, an answer, an expiry, a withdrawal, no decision in time, unreadable
input, an unreachable service. Nothing here ever allows on an error.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from approvals.client import ApprovalsError, AsyncApprovals, Decision
from approvals.digest import approved_arguments

AGENT_ID = "claude-code"
SOURCE = "claude-code"
EVENT = "PreToolUse"
TITLE_LIMIT = 200
NAME_LIMIT = 200
KEY_LIMIT = 500
SLACK = 2.0  # seconds a wait outlasts the approval's timeout, for its expiry to land
# The input field each built-in tool acts on, shown in the title.
SUBJECTS = (
    "command",
    "file_path",
    "notebook_path",
    "path",
    "url",
    "query",
    "pattern",
    "description",
    "prompt",
)


class HookInputError(ValueError):
    """Hook input that is not a ``PreToolUse`` call: what is wrong, and the field at fault."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.reason = message


@dataclass(frozen=True)
class Ask:
    """The approval a ``PreToolUse`` call asks for."""

    title: str
    tool: str
    arguments: dict[str, Any]
    run_id: str | None
    key: str | None
    detail: dict[str, Any]

    def body(self, timeout: float | None) -> dict[str, Any]:
        """The ``POST /v1/approvals`` body (its ``timeoutSeconds`` set when given)."""
        body: dict[str, Any] = {
            "title": self.title,
            "detail": {**self.detail, "tool": self.tool, "arguments": self.arguments},
            "agentId": AGENT_ID,
            "source": SOURCE,
            "onTimeout": "reject",
        }
        if self.run_id is not None:
            body["runId"] = self.run_id
        if self.key is not None:
            body["externalId"] = self.key
        if timeout is not None:
            body["timeoutSeconds"] = timeout
        return body


def decode(raw: str | bytes) -> Any:
    """The hook's JSON; ``HookInputError`` when it is empty or not JSON."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if not text.strip():
        raise HookInputError("no hook input: Claude Code sends the tool call's JSON on stdin")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise HookInputError(f"the hook input is not JSON ({exc})") from None


def ask(payload: Any) -> Ask:
    """The approval a ``PreToolUse`` payload asks for; ``HookInputError`` when it is not one."""
    if not isinstance(payload, dict):
        raise HookInputError("the hook input must be a JSON object")
    event = payload.get("hook_event_name", EVENT)
    if event != EVENT:
        raise HookInputError(
            f"is {event!r}: register this hook for PreToolUse events only", "hook_event_name"
        )
    tool = payload.get("tool_name")
    if not isinstance(tool, str) or not tool.strip():
        raise HookInputError("must be a non-empty string", "tool_name")
    if len(tool) > NAME_LIMIT:
        raise HookInputError(f"is longer than {NAME_LIMIT} characters", "tool_name")
    arguments = payload.get("tool_input", {})
    if not isinstance(arguments, dict):
        raise HookInputError("must be a JSON object", "tool_input")
    session = _text(payload, "session_id")
    use_id = _text(payload, "tool_use_id")
    cwd = _text(payload, "cwd")
    detail: dict[str, Any] = {"hookEventName": EVENT}
    for name, value in (("sessionId", session), ("toolUseId", use_id), ("cwd", cwd)):
        if value is not None:
            detail[name] = value
    server = mcp_server(tool)
    if server is not None:
        detail["mcpServer"] = server
    return Ask(
        title=title(tool, arguments),
        tool=tool,
        arguments=arguments,
        run_id=session[:NAME_LIMIT] if session else None,
        # A retried hook (same tool_use_id) finds the approval it opened, decided or not.
        key=f"{SOURCE}:{use_id}"[:KEY_LIMIT] if use_id else None,
        detail=detail,
    )


def _text(payload: dict[str, Any], name: str) -> str | None:
    value = payload.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise HookInputError("must be a string", name)
    return value


def mcp_server(tool: str) -> str | None:
    """The MCP server of a tool Claude Code names ``mcp__<server>__<tool>``."""
    parts = tool.split("__", 2)
    return parts[1] if len(parts) == 3 and parts[0] == "mcp" and parts[1] else None


def title(tool: str, arguments: dict[str, Any]) -> str:
    """``Claude Code wants to run Bash: rm -rf build`` (one line, clipped)."""
    server = mcp_server(tool)
    name = f"{tool.split('__', 2)[2]} (MCP server {server})" if server else tool
    subject = next(
        (arguments[k] for k in SUBJECTS if isinstance(arguments.get(k), str) and arguments[k]),
        None,
    )
    if subject is None:
        subject = next((v for v in arguments.values() if isinstance(v, str) and v), None)
    text = f"Claude Code wants to run {name}" + (f": {subject}" if subject else "")
    return clip(text, TITLE_LIMIT)


def clip(text: str, limit: int) -> str:
    """``text`` on one line, at most ``limit`` characters (an ellipsis where it was cut)."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


# -- the answer -------------------------------------------------------------------------


def output(
    decision: str, reason: str, updated_input: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The hook's JSON answer: ``allow`` or ``deny``, its reason, the edited input if any."""
    specific: dict[str, Any] = {
        "hookEventName": EVENT,
        "permissionDecision": decision,
        "permissionDecisionReason": reason,
    }
    if updated_input is not None:
        specific["updatedInput"] = updated_input
    return {"hookSpecificOutput": specific}


def deny(reason: str) -> dict[str, Any]:
    """A ``deny`` answer with ``reason`` (Claude reads it)."""
    return output("deny", reason)


def answer(decision: Decision, original: dict[str, Any], waited: float | None) -> dict[str, Any]:
    """The hook's answer to a decision on the call whose input was ``original``."""
    by = decision.resolved_by or "a reviewer"
    comment = f": {decision.comment}" if decision.comment else ""
    if decision.approved:
        edited = decision.edited and decision.arguments is not None
        changed = decision.arguments if edited and decision.arguments != original else None
        if decision.status == "expired":
            reason = "Approved on timeout (nobody decided in time)"
        else:
            reason = f"Approved by {by}{comment}"
        if changed is not None:
            reason += " (with edited input)"
        return output("allow", reason, changed)
    if decision.status == "rejected":
        return deny(f"Rejected by {by}{comment or ' (no reason given)'}")
    if decision.status == "answered":
        return deny(f"Not run: {by} answered instead: {decision.answer}")
    if decision.status == "expired":
        return deny("Not run: nobody approved this call in time")
    if decision.status == "withdrawn":
        return deny(f"Not run: the request was withdrawn by {by}")
    if decision.pending:
        after = f" within {waited:g} s" if waited is not None else ""
        return deny(f"Not run: no decision{after} (approval {decision.approval_id})")
    return deny(f"Not run: the approval ended as {decision.status}")


async def run(
    raw: str | bytes, client: AsyncApprovals, timeout: float
) -> tuple[dict[str, Any], str | None]:
    """Ask through ``client`` for one hook call (its stdin ``raw``): the answer to print,
    and a message for stderr when something went wrong.

    The whole of it takes about ``timeout`` seconds at most: the approval expires (as a
    rejection) then, and a service that does not answer is given up on, so the hook
    answers before Claude Code's own timeout for it (set that a little longer).
    """
    try:
        call = ask(decode(raw))
    except HookInputError as exc:
        return deny(f"Not run: the approvals hook could not read its input: {exc}"), str(exc)
    began = time.monotonic()
    try:
        opened = await asyncio.wait_for(
            client.request_approval(
                call.title,
                tool=call.tool,
                arguments=call.arguments,
                detail=call.detail,
                run_id=call.run_id,
                agent_id=AGENT_ID,
                timeout=timeout,
                on_timeout="reject",
                key=call.key,
                source=SOURCE,
                wait=False,
            ),
            timeout,
        )
        left = timeout - (time.monotonic() - began)
        # The approval expires on the service at ``timeout``: wait a moment past it.
        decision = await asyncio.wait_for(
            client.wait(opened.approval_id, timeout=max(left, 0) + SLACK), left + 2 * SLACK
        )
    except ApprovalsError as exc:
        return deny(f"Not run: the approvals service could not be asked: {exc}"), str(exc)
    except TimeoutError:
        problem = f"the approvals service at {client.url} did not answer within {timeout:g} s"
        return deny(f"Not run: {problem}"), problem
    if decision.approved:
        try:
            # The receipt before Claude Code runs the call: a retried hook with the same
            # tool_use_id finds the approval executed and is denied.
            await client.record_execution(decision.approval_id, executed(decision, call.arguments))
        except ApprovalsError as exc:
            return deny(not_executable(decision, exc)), str(exc)
    return answer(decision, call.arguments, timeout), None


def executed(decision: Decision, original: dict[str, Any]) -> dict[str, Any]:
    """The input Claude Code runs once allowed: the call's, with a reviewer's edits."""
    return approved_arguments(original, decision.edits) or {}


def not_executable(decision: Decision, problem: object) -> str:
    """The deny reason when an approved call's execution receipt is refused."""
    return f"Not run: approval {decision.approval_id} cannot run this call again ({problem})"
