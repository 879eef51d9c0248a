"""``approvals hook claude-code``: Claude Code's ``PreToolUse`` command hook.

It reads the tool call's JSON on stdin, opens an approval through the SDK, waits for
the decision and prints the hook's JSON answer, always exiting 0: Claude Code reads
the answer only then (another exit status lets the call go on under Claude Code's
own permission rules, which is why every failure here prints a ``deny`` instead).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Annotated, Any

import typer

from approvals.client import AsyncApprovals
from approvals.mcp import claude

DEFAULT_TIMEOUT = 300.0
MAX_TIMEOUT = 24 * 3600.0
Url = Annotated[
    str | None,
    typer.Option("--url", envvar="APPROVALS_URL", help="The service (http://127.0.0.1:8000)."),
]
Key = Annotated[
    str | None,
    typer.Option(
        "--key",
        envvar="APPROVALS_KEY",
        help="An API key with events:write and approvals:read.",
        show_default=False,
    ),
]


def claude_code(
    url: Url = None,
    key: Key = None,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            min=1,
            max=MAX_TIMEOUT,
            help="Seconds a human has to decide; then the call is denied (and the "
            "approval expires). Give the hook a longer timeout in Claude Code.",
        ),
    ] = DEFAULT_TIMEOUT,
) -> None:
    """Ask a human before a Claude Code tool call runs (a PreToolUse command hook).

    Reads the hook's JSON on stdin and prints allow or deny as Claude Code expects;
    anything that goes wrong prints deny with the reason (and says why on stderr).
    """
    raw = sys.stdin.buffer.read()
    try:
        answer, problem = asyncio.run(_ask(raw, url, key, timeout))
    except Exception as exc:  # whatever fails, the call must not run unasked
        problem = f"{type(exc).__name__}: {exc}"
        answer = claude.deny(f"Not run: the approvals hook failed: {problem}")
    if problem is not None:
        typer.echo(f"approvals hook claude-code: {problem}", err=True)
    typer.echo(json.dumps(answer))


async def _ask(
    raw: bytes, url: str | None, key: str | None, timeout: float
) -> tuple[dict[str, Any], str | None]:
    async with AsyncApprovals(url, key) as client:
        return await claude.run(raw, client, timeout)
