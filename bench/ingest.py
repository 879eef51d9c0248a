"""Ingest throughput: single posts (one and four clients) and batches of 100, per database.

Run: .venv/bin/python bench/ingest.py [--events 3000]
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


def singles(base: str, token: str, count: int, clients: int) -> float:
    """Events/s posting one event per request from ``clients`` threads."""

    def work(n: int) -> None:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http:
            for i in range(count // clients):
                http.post("/v1/events", json={"type": "token", "runId": f"r{n}", "title": str(i)})

    began = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(work, range(clients)))
    return (count // clients * clients) / (time.perf_counter() - began)


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
    """Print the three figures for one database."""
    server = Server(url)
    token = key(url)
    try:
        one = singles(server.base, token, events // 3, 1)
        four = singles(server.base, token, events // 3, 4)
        batched = batches(server.base, token, events * 10)
    finally:
        server.stop()
    print(
        f"{label:10} single posts: {one:8.0f} events/s (1 client), {four:8.0f} events/s "
        f"(4 clients); batches of 100: {batched:8.0f} events/s"
    )


def main() -> None:
    """Run on SQLite and, when reachable, PostgreSQL."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=3000)
    args = parser.parse_args()
    with sqlite_url() as url:
        measure("SQLite", url, args.events)
    with postgres_url() as url:
        if url:
            measure("PostgreSQL", url, args.events)


if __name__ == "__main__":
    main()
