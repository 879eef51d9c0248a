"""A small MCP server over one directory, to put behind ``approvals mcp gate``.

    python examples/mcp/files_server.py DIR          # speaks MCP on stdin/stdout

Tools: ``list_files``, ``read_file``, ``write_file``, ``search`` (reports progress and
logs) and ``delete_file``, which asks for a confirmation (an MCP elicitation) before it
deletes. Every path is relative to ``DIR`` and may not leave it. Also a resource per file
(``file:///{path}``) and a prompt (``review_file``).

Behind the gate (docs/mcp.md walks through it):

    approvals mcp gate --gate 'write_*' --gate 'delete_*' -- \\
        python examples/mcp/files_server.py ./sandbox
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPDeprecationWarning
from pydantic import BaseModel, Field

# Log lines (``ctx.info``) are deprecated from protocol 2026-07-28 on; the 2025 clients
# most people run still show them.
warnings.filterwarnings("ignore", category=MCPDeprecationWarning)

if len(sys.argv) != 2:
    sys.exit("usage: files_server.py DIR")
ROOT = Path(sys.argv[1]).resolve()
ROOT.mkdir(parents=True, exist_ok=True)

server = MCPServer(
    "files",
    version="1.0.0",
    instructions=f"Files in one directory ({ROOT.name}); every path is relative to it.",
)


def inside(path: str) -> Path:
    """``path`` under the directory; a ``ToolError`` (its text reaches the client) when it
    would leave it."""
    target = (ROOT / path).resolve()
    if target != ROOT and not target.is_relative_to(ROOT):
        raise ToolError(f"{path!r} is outside the served directory")
    return target


@server.tool()
def list_files() -> list[str]:
    """Every file in the directory, as relative paths."""
    return sorted(str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file())


@server.tool()
def read_file(path: str) -> str:
    """The text of one file."""
    return inside(path).read_text()


@server.tool()
def write_file(path: str, content: str) -> str:
    """Write text to a file (created, or replaced)."""
    target = inside(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content)
    return f"wrote {len(content)} characters to {path}"


@server.tool()
async def search(text: str, ctx: Context) -> list[str]:
    """The files whose text contains ``text``; reports progress file by file."""
    files = [p for p in sorted(ROOT.rglob("*")) if p.is_file()]
    found = []
    for done, path in enumerate(files, 1):
        if text in path.read_text(errors="replace"):
            found.append(str(path.relative_to(ROOT)))
        await ctx.report_progress(done, len(files), f"searched {path.name}")
    await ctx.info(f"search for {text!r}: {len(found)} of {len(files)} files")
    return found


class Confirmation(BaseModel):
    """What ``delete_file`` asks before it deletes."""

    confirm: bool = Field(description="Delete the file?")
    reason: str = Field(default="", description="Why (kept in the server's answer)")
    keep_days: int = Field(default=0, ge=0, le=365, description="Days to keep a backup copy")


@server.tool()
async def delete_file(path: str, ctx: Context) -> str:
    """Delete a file, after asking the user to confirm (an elicitation)."""
    target = inside(path)
    if not target.is_file():
        raise ToolError(f"no file {path!r}")
    answer = await ctx.elicit(f"Delete {path} ({target.stat().st_size} bytes)?", Confirmation)
    if answer.action != "accept":
        outcome = "declined" if answer.action == "decline" else "cancelled"
        return f"kept {path}: the confirmation was {outcome}"
    if not answer.data.confirm:
        return f"kept {path}: not confirmed"
    if answer.data.keep_days:
        target.rename(target.with_name(target.name + ".bak"))
    else:
        target.unlink()
    reason = f" ({answer.data.reason})" if answer.data.reason else ""
    return f"deleted {path}{reason}, backup kept {answer.data.keep_days} days"


@server.resource("file:///{path}", mime_type="text/plain")
def file_resource(path: str) -> str:
    """One file's text."""
    return inside(path).read_text()


@server.prompt()
def review_file(path: str) -> str:
    """Ask the model to review one file."""
    return f"Review the file {path} and list what should change:\n\n{inside(path).read_text()}"


if __name__ == "__main__":
    server.run()
