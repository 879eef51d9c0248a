"""Webhooks: deliveries/s to a fast local receiver, and decision -> receipt latency.

Run: .venv/bin/python bench/webhooks.py [--decisions 500] [--rate 100]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _harness import Server, key, percentiles, sqlite_url
from decide import open_many


class Receiver:
    """A threaded HTTP receiver that notes when each approval's delivery arrived."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                data = json.loads(body)["data"]
                name = data.get("approvalId") or f"flood-{data['id']}"
                receiver.arrived[name] = time.perf_counter()
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


def main() -> None:
    """Decide at a steady rate with an endpoint subscribed to approval.resolved."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--decisions", type=int, default=500)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--flood", type=int, default=2000)
    args = parser.parse_args()
    receiver = Receiver()
    with sqlite_url() as url:
        # The receiver is on this machine, which the service refuses by default.
        server = Server(url, approvals_webhook_allowed_destinations="127.0.0.1")
        admin = key(url)
        agent = key(url, "events:write")
        try:
            with httpx.Client(
                base_url=server.base, headers={"Authorization": f"Bearer {admin}"}
            ) as http:
                http.post(
                    "/v1/webhooks", json={"url": receiver.url, "eventTypes": ["approval.resolved"]}
                ).raise_for_status()
                ids = open_many(server.base, agent, args.decisions)
                sent: dict[str, float] = {}
                began = time.perf_counter()
                for n, approval in enumerate(ids):
                    delay = began + n / args.rate - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    sent[approval] = time.perf_counter()
                    http.post(f"/v1/approvals/{approval}/decision", json={"decision": "approve"})
                deadline = time.monotonic() + 30
                while len(receiver.arrived) < len(ids) and time.monotonic() < deadline:
                    time.sleep(0.05)
                elapsed = max(receiver.arrived.values()) - began if receiver.arrived else 0
                flood = flood_rate(http, receiver, args.flood)
        finally:
            server.stop()
    samples = [receiver.arrived[a] - sent[a] for a in ids if a in receiver.arrived]
    print(
        f"SQLite: {len(samples)}/{len(ids)} delivered at {args.rate:g} decisions/s "
        f"({len(samples) / elapsed:.0f}/s); decision -> receipt {percentiles(samples)}"
    )
    print(f"SQLite: a flood of {args.flood} events to one endpoint: {flood:.0f} deliveries/s")


def flood_rate(http: httpx.Client, receiver: Receiver, count: int) -> float:
    """Deliveries/s when ``count`` events for one endpoint are queued at once."""
    http.post(
        "/v1/webhooks", json={"url": receiver.url, "eventTypes": ["bench.flood"]}
    ).raise_for_status()
    before = len(receiver.arrived)
    began = time.perf_counter()
    for start in range(0, count, 100):
        http.post("/v1/events", json=[{"type": "bench.flood"}] * min(100, count - start))
    deadline = time.monotonic() + 120
    while len(receiver.arrived) - before < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return (len(receiver.arrived) - before) / (time.perf_counter() - began)


if __name__ == "__main__":
    main()
