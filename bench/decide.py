"""Decisions and openings: throughput by client count, and decision -> stream latency.

Opening: POST /v1/approvals from 8 keep-alive clients. Deciding: a queue of
``--pending`` approvals decided by 1 and by 8 clients. Latency: decisions at
``--rate`` per second against an open stream of approval.resolved events.

Run: .venv/bin/python bench/decide.py [--pending 10000] [--rate 100]
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _harness import Server, key, percentiles, postgres_url, sqlite_url
from _load import run


def open_many(base: str, token: str, count: int) -> list[str]:
    """Open ``count`` approvals with batched steering requests; return their ids."""
    ids: list[str] = []
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http:
        for start in range(0, count, 100):
            body = [
                {"type": "steering_request", "title": f"request {n}", "runId": f"run_{n}"}
                for n in range(start, min(start + 100, count))
            ]
            ids += [event["approvalId"] for event in http.post("/v1/events", json=body).json()]
    return ids


def opening(base: str, token: str, count: int, clients: int = 8) -> str:
    """Approvals opened per second by ``clients`` connections."""

    def make(n: int, i: int) -> tuple[str, str, object]:
        return "POST", "/v1/approvals", {"title": f"open {n}.{i}", "runId": f"run_{n}"}

    result = run(base, token, clients, count // clients, make)
    assert set(result.statuses) == {201}, result.statuses
    return f"{result.rate:6.0f}/s p99 {result.p(0.99):5.1f} ms ({clients} clients)"


def throughput(base: str, token: str, ids: list[str], clients: int) -> str:
    """Decisions/s with ``clients`` concurrent reviewers."""
    parts = [ids[n::clients] for n in range(clients)]
    per_client = min(len(p) for p in parts)

    def make(n: int, i: int) -> tuple[str, str, object]:
        return "POST", f"/v1/approvals/{parts[n][i]}/decision", {"decision": "approve"}

    result = run(base, token, clients, per_client, make)
    assert set(result.statuses) == {200}, result.statuses
    return f"{result.rate:6.0f}/s p99 {result.p(0.99):5.1f} ms ({clients} clients)"


def latency(server: Server, token: str, ids: list[str], rate: float) -> list[float]:
    """Seconds from sending each decision to its approval.resolved on an open stream."""
    sent: dict[str, float] = {}
    seen: list[float] = []
    done = threading.Event()
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(
        f"GET /v1/events?type=approval.resolved HTTP/1.1\r\nHost: b\r\n"
        f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n".encode()
    )

    def read() -> None:
        buffer = b""
        while len(seen) < len(ids):
            chunk = sock.recv(65536)
            if not chunk:
                break
            now = time.perf_counter()
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.startswith(b"data: {") and b"approvalId" in line:
                    approval = json.loads(line[6:])["approvalId"]
                    if approval in sent:
                        seen.append(now - sent[approval])
        done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.3)
    with httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {token}"}) as http:
        began = time.perf_counter()
        for n, approval in enumerate(ids):
            delay = began + n / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            sent[approval] = time.perf_counter()
            http.post(f"/v1/approvals/{approval}/decision", json={"decision": "approve"})
    done.wait(10)
    sock.close()
    return seen


def measure(label: str, url: str, pending: int, rate: float) -> None:
    """Print the figures for one database."""
    server = Server(url)
    agent, reviewer = key(url, "events:write"), key(url)
    try:
        opened = opening(server.base, agent, 2000)
        ids = open_many(server.base, agent, pending)
        third = pending // 3
        one = throughput(server.base, reviewer, ids[:third], 1)
        eight = throughput(server.base, reviewer, ids[third : 2 * third], 8)
        samples = latency(server, reviewer, ids[2 * third : 2 * third + int(rate * 5)], rate)
    finally:
        server.stop()
    print(f"{label:10} opening approvals: {opened}")
    print(f"{label:10} decisions on a queue of {pending}: {one}; {eight}")
    print(f"{label:10} decision -> approval.resolved at {rate:g}/s: {percentiles(samples)}")


def main() -> None:
    """Run on SQLite and, when reachable, PostgreSQL."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pending", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=100)
    args = parser.parse_args()
    with sqlite_url() as url:
        measure("SQLite", url, args.pending, args.rate)
    with postgres_url() as url:
        if url:
            measure("PostgreSQL", url, args.pending, args.rate)


if __name__ == "__main__":
    main()
