"""The gate's standard input and output as asyncio pipes, for the MCP SDK's
``stdio_server(stdin=…, stdout=…)``.

The SDK reads stdin and writes stdout through a worker thread per line. A thread blocked
reading stdin cannot be cancelled, so a gate whose upstream server exited could not stop
while its client held the pipe open; and two thread hand-offs per message were most of
the latency the gate added. Pipes on the event loop do neither. As the SDK does, the
process's own fd 0 and fd 1 are pointed at the null device and at stderr while the gate
serves, so nothing else in the process can read the client's messages or print into the
protocol stream. Only for pipes, sockets and terminals (what MCP clients give); anything
else (a regular file) falls back to the SDK's own streams.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

LINE_LIMIT = 1 << 28  # bytes in one JSON-RPC line before the reader refuses it (256 MiB)


class Lines:
    """``async for line in stdin``: text lines from a pipe."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader

    def __aiter__(self) -> Lines:
        return self

    async def __anext__(self) -> str:
        line = await self.reader.readline()
        if not line:
            raise StopAsyncIteration
        return line.decode("utf-8", errors="replace")


class Output:
    """``await stdout.write(text)`` and ``await stdout.flush()`` on a pipe."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer

    async def write(self, text: str) -> None:
        self.writer.write(text.encode("utf-8"))

    async def flush(self) -> None:
        await self.writer.drain()


def _pipe_like(fd: int) -> bool:
    mode = os.fstat(fd).st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)


@asynccontextmanager
async def pipes() -> AsyncIterator[tuple[Any, Any] | None]:
    """``(stdin, stdout)`` for ``stdio_server``, or None when they are not pipes."""
    if not (_pipe_like(0) and _pipe_like(1)):
        yield None
        return
    loop = asyncio.get_running_loop()
    wire_in, wire_out = os.dup(0), os.dup(1)
    saved_in, saved_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)  # stray reads see end of file
    os.dup2(2, 1)  # stray prints go to stderr, not into the protocol
    os.close(null)
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    read_transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(wire_in, "rb", 0)
    )
    write_transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(wire_out, "wb", 0)
    )
    writer = asyncio.StreamWriter(write_transport, protocol, None, loop)
    try:
        yield Lines(reader), Output(writer)
    finally:
        read_transport.close()
        write_transport.close()
        os.dup2(saved_in, 0)
        os.dup2(saved_out, 1)
        os.close(saved_in)
        os.close(saved_out)
