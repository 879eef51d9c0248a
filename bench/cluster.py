"""Scale-out: 1,000 subscribers on one process, on two workers, on three instances.

Scenarios (the same subscriber clients and load as bench/fanout.py):
- SQLite, 1 instance x 1 worker: the baseline;
- SQLite, 1 instance x 2 workers (`serve --workers 2`, one port: the kernel
  spreads subscribers and posts over the workers; they wake each other with
  datagrams);
- PostgreSQL, 3 instances (three ports, subscribers split evenly, posts to all
  three in turn; LISTEN/NOTIFY);
- SQLite wake-up: posts on one instance, 100 subscribers on another instance
  of the same file, so every delivery crosses processes.
For each: post -> receipt latency at a steady 20 events/s (p50/p99/max), and
aggregate deliveries/s when batches of 20 are posted flat out. Every process
(servers, subscriber clients, posters) shares this machine's cores, so more
server processes also means less CPU for each: the figures are floors.

Run: .venv/bin/python bench/cluster.py [--subscribers 1000] [--only sqlite1,sqlite2,pg3,wake]
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _harness import Server, key, percentiles, postgres_url, raise_file_limit, sqlite_url
from fanout import Clients

RATE = 20


def steady(bases: list[str], token: str, rate: float, count: int) -> None:
    """Post ``count`` single events at ``rate``/s, to each base in turn, stamped with send time."""
    headers = {"Authorization": f"Bearer {token}"}
    clients = [httpx.Client(base_url=b, headers=headers, timeout=60) for b in bases]
    try:
        began = time.perf_counter()
        for n, http in zip(range(count), itertools.cycle(clients), strict=False):
            delay = began + n / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            http.post("/v1/events", json=[{"type": "tick", "title": f"t{time.time():.6f}"}])
    finally:
        for http in clients:
            http.close()


def flat_out(bases: list[str], token: str, seconds: float, posters: int) -> int:
    """``posters`` threads post batches of 20 as fast as taken, spread over ``bases``."""
    posted = [0] * posters
    deadline = time.monotonic() + seconds

    def poster(index: int) -> None:
        base = bases[index % len(bases)]
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60
        ) as http:
            while time.monotonic() < deadline:
                body = [{"type": "tick", "title": f"t{time.time():.6f}"} for _ in range(20)]
                http.post("/v1/events", json=body)
                posted[index] += 20

    threads = [threading.Thread(target=poster, args=(i,)) for i in range(posters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(posted)


def run(
    name: str,
    post_bases: list[str],
    sub_ports: list[int],
    token: str,
    subscribers: int,
    posters: int,
) -> None:
    """Latency at a steady rate, then aggregate deliveries/s at saturation."""
    share = subscribers // len(sub_ports)
    groups = [Clients(port, token, share) for port in sub_ports]
    try:
        for group in groups:
            group.wait_connected(timeout=300)
        for group in groups:
            group.ask("reset")
        steady(post_bases, token, RATE, RATE * 5)
        time.sleep(2)
        latencies = [x for g in groups for s in g.ask("stats") for x in s[2]]
        for group in groups:
            group.ask("reset")
        began = time.monotonic()
        posted = flat_out(post_bases, token, 6.0, posters)
        time.sleep(1.0)
        delivered = sum(s[1] for g in groups for s in g.ask("stats"))
        rate = delivered / (time.monotonic() - began)
    finally:
        for group in groups:
            group.close()
    total = share * len(sub_ports)
    print(
        f"  {name:34} {total:5} subscribers: latency {percentiles(latencies)}; "
        f"saturated {rate:9.0f} deliveries/s ({posted / 6.0:.0f} events/s posted)",
        flush=True,
    )


def scenario(
    url: str, make: Callable[[], list[Server]], body: Callable[[list[Server], str], None]
) -> None:
    servers = make()
    try:
        body(servers, key(url))
    finally:
        for server in servers:
            server.stop()


def main() -> None:
    """Run the scenarios and print one line each."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--only", default="sqlite1,sqlite2,pg3,wake")
    args = parser.parse_args()
    only = set(args.only.split(","))
    count = args.subscribers
    raise_file_limit()
    load = os.getloadavg()[0]
    print(f"cluster fan-out on {os.cpu_count()} cores (load average {load:.1f} at start)")
    quiet = {"approvals_keepalive_seconds": "30"}
    if "sqlite1" in only:
        with sqlite_url() as url:
            scenario(
                url,
                lambda: [Server(url, **quiet)],
                lambda s, t: run(
                    "SQLite, 1 instance x 1 worker", [s[0].base], [s[0].port], t, count, 1
                ),
            )
    if "sqlite2" in only:
        with sqlite_url() as url:
            scenario(
                url,
                lambda: [Server(url, ("--workers", "2"), **quiet)],
                lambda s, t: run(
                    "SQLite, 1 instance x 2 workers", [s[0].base], [s[0].port], t, count, 2
                ),
            )
    if "pg3" in only:
        with postgres_url() as url:
            if url is not None:
                scenario(
                    url,
                    lambda: [Server(url, **quiet) for _ in range(3)],
                    lambda s, t: run(
                        "PostgreSQL, 3 instances x 1 worker",
                        [x.base for x in s],
                        [x.port for x in s],
                        t,
                        count,
                        3,
                    ),
                )
    if "wake" in only:
        with sqlite_url() as url:
            scenario(
                url,
                lambda: [Server(url, **quiet), Server(url, **quiet)],
                lambda s, t: run(
                    "SQLite wake-up: post on A, read on B", [s[0].base], [s[1].port], t, 100, 1
                ),
            )


if __name__ == "__main__":
    main()
