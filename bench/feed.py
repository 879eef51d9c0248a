"""The inbox feed's fan-out: N subscribers on GET /v1/approvals/stream, approvals opened steadily.

Each opened approval reaches every subscriber as one `approval.opened` message; the
bench reports delivery latency (open -> receipt, p50/p99/max, one subscriber in ten
sampled) and messages delivered per second. The subscribers are the raw-socket
clients of bench/fanout.py; they share the machine's two cores with the server.

Run: .venv/bin/python bench/feed.py [--subscribers 1000] [--rate 10] [--seconds 10]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import fanout
from _harness import Server, key, percentiles, raise_file_limit, sqlite_url


def open_steadily(base: str, token: str, rate: float, count: int) -> None:
    """Open ``count`` approvals at ``rate`` per second, each titled with its send time."""
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http:
        start = time.monotonic()
        for n in range(count):
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            http.post("/v1/approvals", json={"title": f"t{time.time():.6f}"}).raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    raise_file_limit()
    fanout.PATH = "/v1/approvals/stream"
    with sqlite_url() as url:
        server = Server(url, approvals_keepalive_seconds="15")
        try:
            reader = key(url, "approvals:read")
            writer = key(url, "events:write")
            clients = fanout.Clients(server.port, reader, args.subscribers)
            clients.wait_connected()
            clients.ask("reset")
            began = time.monotonic()
            count = int(args.rate * args.seconds)
            open_steadily(server.base, writer, args.rate, count)
            time.sleep(2)
            elapsed = time.monotonic() - began
            stats = clients.ask("stats")
            delivered = sum(s[1] for s in stats)
            latencies = [x for s in stats for x in s[2]]
            clients.close()
            expected = count * clients.total
            print(
                f"inbox feed, SQLite, {clients.total} subscribers, {count} approvals at "
                f"{args.rate:g}/s: {delivered}/{expected} delivered "
                f"({delivered / elapsed:,.0f} messages/s); latency {percentiles(latencies)}; "
                f"server RSS {server.rss_mb():.0f} MB"
            )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
