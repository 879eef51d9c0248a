"""The latency ``approvals mcp gate`` adds to a tool call that is not gated.

The MCP SDK's client calls ``read_file`` on examples/mcp/files_server.py over stdio, once
directly and once through the gate (``--gate`` matching no tool, so no approval is asked
and no service is needed), in alternating blocks so that drift hits both alike; it prints
p50/p99 of each and of the difference.

Run: .venv/bin/python bench/mcp_gate.py [--calls 3000] [--mode legacy|auto]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters

FILES_SERVER = Path(__file__).resolve().parent.parent / "examples" / "mcp" / "files_server.py"
BLOCK = 250  # calls per block; the blocks alternate direct / gated


def quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def figures(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50, p99 = statistics.median(ordered) * 1000, quantile(ordered, 0.99) * 1000
    return f"p50 {p50:.3f} ms, p99 {p99:.3f} ms, max {ordered[-1] * 1000:.3f} ms (n={len(ordered)})"


@asynccontextmanager
async def connect(folder: Path, gated: bool, mode: str) -> AsyncIterator[Client]:
    upstream = [sys.executable, str(FILES_SERVER), str(folder)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPROVALS_")}
    if gated:
        # the tool is not gated: no approval is opened and the service is never asked
        gate = ["-m", "approvals", "mcp", "gate", "--gate", "no_such_tool", "--"]
        params = StdioServerParameters(command=sys.executable, args=gate + upstream, env=env)
    else:
        params = StdioServerParameters(command=upstream[0], args=upstream[1:], env=env)
    async with Client(params, mode=mode) as client:
        yield client


async def calls(client: Client, count: int, into: list[float]) -> None:
    for _ in range(count):
        began = time.perf_counter()
        result = await client.call_tool("read_file", {"path": "notes.txt"})
        into.append(time.perf_counter() - began)
        assert not result.is_error


def cpu_seconds(marker: str) -> float:
    """User and system CPU time of the gate process (found by ``marker`` in its command
    line), from /proc: a figure the load of the machine does not blur."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            if "mcp gate" in cmdline and marker in cmdline:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            continue
    return float("nan")


async def main(total: int, mode: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "notes.txt").write_text("hello world\n" * 10)
        direct: list[float] = []
        gated: list[float] = []
        async with connect(folder, False, mode) as plain, connect(folder, True, mode) as gate:
            await calls(plain, 200, [])  # warm up both paths
            await calls(gate, 200, [])
            began = cpu_seconds(str(folder))
            done = 0
            while done < total:
                block = min(BLOCK, total - done)
                await calls(plain, block, direct)
                await calls(gate, block, gated)
                done += block
            cpu = cpu_seconds(str(folder)) - began
    print(f"ungated read_file over stdio, {total} calls each, mode={mode}")
    print(f"  direct to the server:   {figures(direct)}")
    print(f"  through the gate:       {figures(gated)}")
    p50 = statistics.median(gated) - statistics.median(direct)
    p99 = quantile(sorted(gated), 0.99) - quantile(sorted(direct), 0.99)
    print(f"  added by the gate:      p50 {p50 * 1000:.3f} ms, p99 {p99 * 1000:.3f} ms")
    print(f"  the gate's own CPU:     {cpu / total * 1000:.3f} ms per call (user + system)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--mode", default="legacy", choices=["legacy", "auto"])
    options = parser.parse_args()
    anyio.run(main, options.calls, options.mode)
