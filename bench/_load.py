"""A lean HTTP/1.1 load generator: N keep-alive connections, each posting in turn.

The benchmarks run client and server on one 2-core machine, so the client must
cost far less per request than the server or it measures itself: a thread pool
of httpx clients spends about as much CPU per request as the service does.
This speaks just enough HTTP/1.1 (fixed requests, Content-Length answers) over
asyncio streams in one thread, and records each request's latency.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import msgspec


@dataclass
class Result:
    """What one run measured."""

    count: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    answers: list[bytes] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Requests per second."""
        return self.count / self.seconds

    def p(self, q: float) -> float:
        """The q-quantile latency in milliseconds."""
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def request_bytes(host: str, method: str, path: str, token: str, body: object) -> bytes:
    """One complete HTTP/1.1 request with a JSON body."""
    data = msgspec.json.encode(body)
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = await reader.readexactly(length) if length else b""
    return status, body


async def _run(
    base: str,
    clients: int,
    per_client: int,
    make: Callable[[int, int], tuple[str, str, object]],
    token: str,
    keep: bool,
) -> Result:
    url = urlsplit(base)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    connections = [await asyncio.open_connection(host, port) for _ in range(clients)]
    result = Result(count=clients * per_client, seconds=0.0)

    async def client(n: int) -> None:
        reader, writer = connections[n]
        for i in range(per_client):
            method, path, body = make(n, i)
            began = time.perf_counter()
            writer.write(request_bytes(host, method, path, token, body))
            status, answer = await _answer(reader)
            result.latencies.append(time.perf_counter() - began)
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if keep:
                result.answers.append(answer)

    began = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    result.seconds = time.perf_counter() - began
    for _, writer in connections:
        writer.close()
    return result


def run(
    base: str,
    token: str,
    clients: int,
    per_client: int,
    make: Callable[[int, int], tuple[str, str, object]],
    keep: bool = False,
) -> Result:
    """``clients`` connections each send ``per_client`` requests made by ``make(client, i)``."""
    return asyncio.run(_run(base, clients, per_client, make, token, keep))
