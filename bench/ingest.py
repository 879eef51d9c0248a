"""Ingest throughput: single posts by 1, 8 and 32 keep-alive clients, and batches of 100.

Run: .venv/bin/python bench/ingest.py [--events 6000]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _harness import Server, key, postgres_url, sqlite_url
from _load import run


def singles(base: str, token: str, count: int, clients: int) -> str:
    """Events/s and latency posting one event per request from ``clients`` connections."""
    per_client = max(1, count // clients)

    def make(n: int, i: int) -> tuple[str, str, object]:
        return "POST", "/v1/events", {"type": "token", "runId": f"r{n}", "title": str(i)}

    run(base, token, clients, min(per_client, 50), make)  # warm up
    result = run(base, token, clients, per_client, make)
    assert set(result.statuses) == {201}, result.statuses
    return f"{result.rate:6.0f}/s p99 {result.p(0.99):5.1f} ms ({clients:2} clients)"


def batches(base: str, token: str, count: int, size: int = 100, clients: int = 2) -> float:
    """Events/s posting batches of ``size``."""
    body = [{"type": "token", "runId": "r", "title": "x" * 40} for _ in range(size)]

    def work(_: int) -> None:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http:
            for _ in range(count // size // clients):
                http.post("/v1/events", json=body).raise_for_status()

    began = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(work, range(clients)))
    return (count // size // clients * clients * size) / (time.perf_counter() - began)


def measure(label: str, url: str, events: int) -> None:
    """Print the figures for one database."""
    server = Server(url)
    token = key(url)
    try:
        figures = [singles(server.base, token, events // n * n, n) for n in (1, 8, 32)]
        batched = batches(server.base, token, events * 10)
    finally:
        server.stop()
    print(f"{label:10} single posts: " + "; ".join(figures))
    print(f"{label:10} batches of 100: {batched:8.0f} events/s")


def main() -> None:
    """Run on SQLite and, when reachable, PostgreSQL."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=6000)
    args = parser.parse_args()
    with sqlite_url() as url:
        measure("SQLite", url, args.events)
    with postgres_url() as url:
        if url:
            measure("PostgreSQL", url, args.events)


if __name__ == "__main__":
    main()
