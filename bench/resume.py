"""Time to the first replayed event when resuming from the middle of a large log.

Run: .venv/bin/python bench/resume.py [--events 1000000] [--tries 50]
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from pathlib import Path

from sqlalchemy import insert, update

sys.path.insert(0, str(Path(__file__).parent))
from _harness import Server, key, percentiles, sqlite_url

from approvals.core.db import make_sync_engine, parse_url
from approvals.events.log import events_table, head_table


def fill(url: str, count: int) -> None:
    """Insert ``count`` events straight into the log (much faster than HTTP)."""
    engine = make_sync_engine(parse_url(url))
    chunk = 20_000
    with engine.begin() as conn:
        for start in range(1, count + 1, chunk):
            rows = [
                {
                    "id": i,
                    "type": "token",
                    "source": "bench",
                    "run_id": f"run_{i % 1000}",
                    "title": f"token {i}",
                    "created_at": "2026-11-22T12:00:00.000Z",
                }
                for i in range(start, min(start + chunk, count + 1))
            ]
            conn.execute(insert(events_table), rows)
        conn.execute(update(head_table).values(last_id=count))
    engine.dispose()


def first_event(port: int, token: str, after: int) -> float:
    """Seconds from sending the request to receiving the first replayed event."""
    request = (
        f"GET /v1/events HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n"
        f"Accept: text/event-stream\r\nLast-Event-ID: {after}\r\n\r\n"
    ).encode()
    marker = f"id: {after + 1}\n".encode()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        began = time.perf_counter()
        sock.sendall(request)
        seen = b""
        while marker not in seen:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("stream closed")
            seen += chunk
        return time.perf_counter() - began


def main() -> None:
    """Fill a log, start a server on it, and resume from the middle many times."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--tries", type=int, default=50)
    args = parser.parse_args()
    with sqlite_url() as url:
        began = time.perf_counter()
        fill(url, args.events)
        print(f"filled {args.events} events in {time.perf_counter() - began:.1f}s")
        server = Server(url)
        token = key(url, "events:read")
        try:
            samples = []
            for n in range(args.tries):
                after = args.events // 2 + n * 997
                samples.append(first_event(server.port, token, after))
        finally:
            server.stop()
    print(f"SQLite, resume from the middle of {args.events} events: {percentiles(samples)}")


if __name__ == "__main__":
    main()
