"""``approvals mcp …`` and ``approvals hook …``: the commands, registered on the main CLI."""

from __future__ import annotations

import typer

from approvals.mcp import gate, hooks, serve

mcp_app = typer.Typer(
    help="MCP: gate a server's tools, or serve approval tools.", no_args_is_help=True
)
hook_app = typer.Typer(
    help="Agent hooks that ask a human first (Claude Code).", no_args_is_help=True
)

mcp_app.command("gate")(gate.command)
mcp_app.command("serve")(serve.command)
hook_app.command("claude-code")(hooks.claude_code)


def register(app: typer.Typer) -> None:
    """Add the ``mcp`` and ``hook`` command groups to ``app``."""
    app.add_typer(mcp_app, name="mcp")
    app.add_typer(hook_app, name="hook")
