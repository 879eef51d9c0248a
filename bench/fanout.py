"""Fan-out: N SSE subscribers on one server, events posted at a steady rate and flat out.

Measures, for approvals and for a bare sse-starlette broadcast server under the
same load: delivery latency (post -> receipt, p50/p99/max), delivered events/s
at saturation, and server RSS. Subscribers are raw asyncio sockets split over
two client processes; on this 2-core machine the clients compete with the
server for CPU, so the figures are a floor.

Run: .venv/bin/python bench/fanout.py [--subscribers 100,1000] [--hold 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _harness import Server, free_port, key, percentiles, raise_file_limit, sqlite_url

TITLE = re.compile(rb'"title": ?"t(\d+\.\d+)"')
CLIENT_PROCESSES = 2
PATH = "/v1/events"  # bench/feed.py follows the inbox feed with the same subscribers


async def _subscribe(port: int, token: str, sample: bool, stats: dict, stop: asyncio.Event) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET {PATH} HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer {token}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    tail = b""
    first = b""
    while b"event: connected" not in first:  # counted once the server has answered
        chunk = await reader.read(65536)
        if not chunk:
            raise RuntimeError(f"subscription refused: {first[:200]!r}")
        first += chunk
    stats["connected"] += 1
    try:
        while not stop.is_set():
            chunk = await reader.read(262144)
            if not chunk:
                break
            now = time.time()
            data = tail + chunk
            stats["delivered"] += data.count(b"\nid: ") + data.startswith(b"id: ")
            tail = data[-6:]  # an "id: " split across reads is counted once
            stats["delivered"] -= tail.count(b"\nid: ")
            if sample:
                stats["latencies"].extend(now - float(m) for m in TITLE.findall(chunk))
    finally:
        writer.close()


def _client(port: int, token: str, count: int, offset: int, conn, commands) -> None:  # type: ignore[no-untyped-def]
    raise_file_limit()

    async def main() -> None:
        stats = {"connected": 0, "delivered": 0, "latencies": []}
        stop = asyncio.Event()
        tasks = []
        for n in range(count):
            sample = (offset + n) % 10 == 0  # one subscriber in ten records latencies
            tasks.append(asyncio.create_task(_subscribe(port, token, sample, stats, stop)))
            if n % 200 == 199:
                await asyncio.sleep(0.05)
        loop = asyncio.get_running_loop()
        while True:
            command = await loop.run_in_executor(None, commands.get)
            if command == "stats":
                conn.send((stats["connected"], stats["delivered"], list(stats["latencies"])))
                stats["latencies"].clear()
            elif command == "reset":
                stats["delivered"] = 0
                stats["latencies"].clear()
                conn.send(True)
            else:
                stop.set()
                for task in tasks:
                    task.cancel()
                conn.send(True)
                return

    asyncio.run(main())


class Clients:
    """Subscriber processes; ask them for counts."""

    def __init__(self, port: int, token: str, total: int) -> None:
        self.pipes = []
        self.queues = []
        self.procs = []
        share = total // CLIENT_PROCESSES
        for index in range(CLIENT_PROCESSES):
            parent, child = multiprocessing.Pipe()
            commands: multiprocessing.Queue = multiprocessing.Queue()
            proc = multiprocessing.Process(
                target=_client,
                args=(port, token, share, index * share, child, commands),
                daemon=True,
            )
            proc.start()
            self.pipes.append(parent)
            self.queues.append(commands)
            self.procs.append(proc)
        self.total = share * CLIENT_PROCESSES

    def ask(self, command: str) -> list:
        for queue in self.queues:
            queue.put(command)
        return [pipe.recv() for pipe in self.pipes]

    def wait_connected(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while sum(s[0] for s in self.ask("stats")) < self.total:
            if time.monotonic() > deadline:
                raise RuntimeError("subscribers did not all connect")
            time.sleep(0.5)
        time.sleep(0.5)

    def close(self) -> None:
        self.ask("stop")
        for proc in self.procs:
            proc.join(5)


def steady(base: str, token: str, rate: float, count: int) -> None:
    """Post ``count`` single events at ``rate`` per second, each stamped with its send time."""
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60
    ) as http:
        began = time.perf_counter()
        for n in range(count):
            delay = began + n / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            http.post("/v1/events", json=[{"type": "tick", "title": f"t{time.time():.6f}"}])


def flat_out(base: str, token: str, seconds: float, body_size: int = 20) -> int:
    """Post batches of ``body_size`` events as fast as the server takes them (1: single
    events, one per request); return events posted."""
    posted = 0
    deadline = time.monotonic() + seconds
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60
    ) as http:
        while time.monotonic() < deadline:
            body = [{"type": "tick", "title": f"t{time.time():.6f}"} for _ in range(body_size)]
            http.post("/v1/events", json=body if body_size > 1 else body[0])
            posted += body_size
    return posted


def run_load(
    name: str, base: str, port: int, token: str, subscribers: int, rss, single: bool
) -> dict:  # type: ignore[no-untyped-def]
    """Latency at a steady rate, then delivered/s at saturation."""
    clients = Clients(port, token, subscribers)
    try:
        clients.wait_connected()
        clients.ask("reset")
        rate = 20 if subscribers <= 1000 else 10 if single else 5
        steady(base, token, rate, rate * 5)
        time.sleep(2)
        stats = clients.ask("stats")
        latencies = [x for s in stats for x in s[2]]
        clients.ask("reset")
        window = 6.0
        began = time.monotonic()
        flat_out(base, token, window, 1 if single else 20)
        time.sleep(1.0)
        delivered = sum(s[1] for s in clients.ask("stats"))
        rate_out = delivered / (time.monotonic() - began)
        memory = rss()
    finally:
        clients.close()
    print(
        f"  {name:12} {subscribers:5} subscribers: latency {percentiles(latencies)}; "
        f"saturated {rate_out:9.0f} deliveries/s; server RSS {memory:.0f} MB"
    )
    return {"latencies": latencies, "delivered": rate_out}


def bare_server() -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "bare_sse.py"), str(port)],
        preexec_fn=raise_file_limit,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return proc, port
        time.sleep(0.05)
    raise RuntimeError("bare server did not start")


def rss_of(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def hold(url: str, count: int) -> None:
    """Open ``count`` idle subscribers and report the server's memory."""
    server = Server(url)
    token = key(url, "events:read")
    try:
        before = server.rss_mb()
        clients = Clients(server.port, token, count)
        try:
            clients.wait_connected(timeout=300)
            print(
                f"holding {clients.total} subscribers: server RSS {server.rss_mb():.0f} MB "
                f"({before:.0f} MB idle)"
            )
        finally:
            clients.close()
    finally:
        server.stop()


def main() -> None:
    """Compare approvals with the bare server at each subscriber count."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", default="100,1000")
    parser.add_argument("--hold", type=int, default=0)
    parser.add_argument(
        "--single", action="store_true", help="saturate with one event per post, not 20"
    )
    args = parser.parse_args()
    raise_file_limit()
    mode = "single-event posts" if args.single else "posts of 20 events"
    print(f"fan-out on {os.cpu_count()} cores, {CLIENT_PROCESSES} client processes, {mode}")
    with sqlite_url() as url:
        if args.hold:
            hold(url, args.hold)
            return
        for count in (int(c) for c in args.subscribers.split(",")):
            server = Server(url, approvals_keepalive_seconds="30")
            token = key(url)
            try:
                ours = run_load(
                    "approvals", server.base, server.port, token, count, server.rss_mb, args.single
                )
            finally:
                server.stop()
            proc, port = bare_server()
            try:
                bare = run_load(
                    "sse-starlette",
                    f"http://127.0.0.1:{port}",
                    port,
                    token,
                    count,
                    lambda pid=proc.pid: rss_of(pid),
                    args.single,
                )
            finally:
                proc.terminate()
                proc.wait(10)
            ratio = ours["delivered"] / bare["delivered"] if bare["delivered"] else float("nan")
            print(f"  ratio at {count} subscribers: approvals / sse-starlette = {ratio:.2f}x")


if __name__ == "__main__":
    main()
