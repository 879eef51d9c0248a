"""Several processes on one database: nginx in front of instances, leases, --workers.

Real parts only: Debian's nginx run with deploy/nginx.conf as its configuration
(only the upstream servers and the listen address substituted), `approvals
serve` processes on PostgreSQL or SQLite, platform simulators for sources.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse
from sqlalchemy import make_url

from approvals.events.wakeup import wake_dir
from conftest import Database, Server, free_port, until
from receiver import Receiver
from simulators import Frame, Simulator

ROOT = Path(__file__).resolve().parent.parent
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
NGINX_SKIP = "Debian's nginx is not installed (apt-get install -y nginx; .ci/run does it)"
FAST = {"approvals_keepalive_seconds": "1", "approvals_connector_silence_seconds": "3"}


def nginx_config(template: str, upstreams: list[int], port: int) -> str:
    """deploy/nginx.conf with our instances as the upstream servers and our listen port."""
    lines = "\n".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;" for p in upstreams)
    config, count = re.subn(
        r"(?:^    server 127\.0\.0\.1:\d+[^\n]*\n)+", lines + "\n", template, flags=re.M
    )
    assert count == 1, "deploy/nginx.conf no longer has one block of upstream servers"
    config, count = re.subn(r"^    listen 80;", f"    listen 127.0.0.1:{port};", config, flags=re.M)
    assert count == 1, "deploy/nginx.conf no longer listens on port 80"
    return config


class Nginx:
    """Debian's nginx on a free port, in front of the given instance ports."""

    def __init__(self, workdir: Path, upstreams: list[int]) -> None:
        self.dir = workdir / "nginx"
        self.dir.mkdir()
        self.port = free_port()
        template = (ROOT / "deploy" / "nginx.conf").read_text()
        (self.dir / "approvals.conf").write_text(nginx_config(template, upstreams, self.port))
        (self.dir / "nginx.conf").write_text(
            f"""daemon off;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
worker_processes 1;
events {{ worker_connections 2048; }}
http {{
    access_log {self.dir}/access.log;
    client_body_temp_path {self.dir}/body;
    proxy_temp_path {self.dir}/proxy;
    fastcgi_temp_path {self.dir}/fastcgi;
    uwsgi_temp_path {self.dir}/uwsgi;
    scgi_temp_path {self.dir}/scgi;
    include {self.dir}/approvals.conf;
}}
"""
        )
        args = [NGINX, "-p", str(self.dir), "-e", str(self.dir / "error.log")]
        args += ["-c", str(self.dir / "nginx.conf")]
        check = subprocess.run([*args, "-t"], capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        until(self._answers, 15, "nginx answering")

    def _answers(self) -> bool:
        try:
            return httpx.get(self.base + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Follower:
    """A stream client that reconnects with Last-Event-ID, as browsers and SDKs do."""

    def __init__(self, base: str, key: str) -> None:
        self.base = base
        self.key = key
        self.ids: list[int] = []
        self.connections = 0
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._connected.wait(15), "the stream did not open"

    def _run(self) -> None:
        while not self._stop.is_set():
            last = str(self.ids[-1]) if self.ids else "0"
            headers = {"Authorization": f"Bearer {self.key}", "Last-Event-ID": last}
            try:
                with (
                    httpx.Client(base_url=self.base, timeout=httpx.Timeout(10, read=5)) as client,
                    connect_sse(client, "GET", "/v1/events", headers=headers) as source,
                ):
                    if source.response.status_code != 200:
                        raise httpx.HTTPError(f"answered {source.response.status_code}")
                    self.connections += 1
                    self._connected.set()
                    for message in source.iter_sse():
                        if self._stop.is_set():
                            return
                        # httpx-sse turns a keepalive comment into an empty message.
                        if message.event != "connected" and message.data:
                            self.ids.append(int(json.loads(message.data)["id"]))
            except (httpx.HTTPError, OSError):
                pass
            self._stop.wait(0.2)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


def post(base: str, key: str, body: Any) -> list[dict[str, Any]]:
    """POST /v1/events on a new connection; the stored events."""
    answer = httpx.post(
        base + "/v1/events", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    assert answer.status_code in (200, 201), answer.text
    stored = answer.json()
    return stored if isinstance(stored, list) else [stored]


def log_ids(base: str, key: str) -> list[int]:
    """Every position in the log, oldest first (the JSON page)."""
    page = httpx.get(
        base + "/v1/events",
        params={"tail": "1000"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    ).json()
    return [int(event["id"]) for event in page["events"]]


@pytest.fixture
def three_instances(
    postgres_database: Database, make_server: Callable[..., Server]
) -> list[Server]:
    return [make_server(postgres_database, **FAST) for _ in range(3)]


@pytest.fixture
def nginx(tmp_path: Path, three_instances: list[Server]) -> Iterator[Nginx]:
    if not Path(NGINX).exists():
        pytest.skip(NGINX_SKIP)
    proxy = Nginx(tmp_path, [server.port for server in three_instances])
    yield proxy
    proxy.stop()


@pytest.mark.postgres
def test_the_shipped_nginx_config_is_what_the_tests_run() -> None:
    template = (ROOT / "deploy" / "nginx.conf").read_text()
    config = nginx_config(template, [9001, 9002], 9000)
    for directive in (
        "proxy_buffering off;",
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
        "proxy_set_header Last-Event-ID $http_last_event_id;",
        "proxy_read_timeout 1h;",
        "keepalive 32;",
    ):
        assert directive in config
    assert "server 127.0.0.1:9001" in config and "server 127.0.0.1:9002" in config
    assert "8001" not in config and "listen 127.0.0.1:9000;" in config


@pytest.mark.postgres
def test_subscribers_through_nginx_see_every_event_in_order_across_an_instance_restart(
    three_instances: list[Server], nginx: Nginx
) -> None:
    key = three_instances[0].db.key("events:read", "events:write")
    followers = [Follower(nginx.base, key) for _ in range(6)]  # round robin: 2 per instance
    try:
        for round_ in range(10):  # writers on every instance, and through nginx
            for server in three_instances:
                post(server.base, key, {"type": "tick", "title": f"{round_}@{server.port}"})
            post(nginx.base, key, [{"type": "tick", "title": f"{round_}-{i}"} for i in range(3)])
        written = log_ids(nginx.base, key)
        until(lambda: all(len(f.ids) >= len(written) for f in followers), what="first half")

        victim = three_instances[1]
        victim.stop(signal.SIGKILL)  # its streams break; their clients reconnect through nginx
        for round_ in range(10):  # nginx skips the dead instance, also for POSTs
            post(nginx.base, key, {"type": "tick", "title": f"while down {round_}"})
            post(three_instances[2].base, key, {"type": "tick", "title": f"direct {round_}"})
        victim.start()
        for round_ in range(5):
            for server in three_instances:
                post(server.base, key, {"type": "tick", "title": f"after {round_}"})

        expected = log_ids(nginx.base, key)
        assert len(expected) > len(written) and expected == sorted(expected)
        until(lambda: all(len(f.ids) >= len(expected) for f in followers), what="every event")
        time.sleep(0.5)  # nothing more may come: no repeats
    finally:
        for follower in followers:
            follower.close()
    for follower in followers:
        assert follower.ids == expected
    # Some subscribers were on the killed instance and resumed elsewhere through nginx.
    assert sum(f.connections for f in followers) > len(followers)


def prism_token(n: int) -> Frame:
    return Frame({"run_id": "run_lease", "delta": f"part {n}"}, "token", f"evt_{n}")


@pytest.mark.postgres
def test_the_lease_holders_death_hands_its_source_to_another_instance(
    three_instances: list[Server],
) -> None:
    sim = Simulator(frames=[prism_token(n) for n in range(1, 6)]).start()
    database = three_instances[0].db
    admin = database.key("admin")
    try:
        with three_instances[0].client(admin) as http:
            source = http.post(
                "/v1/sources",
                json={
                    "name": "prism-lease",
                    "dialect": "prism",
                    "url": sim.url(),
                    "token": "sim-token",
                },
            ).json()
            path = f"/v1/sources/{source['id']}"
            until(lambda: http.get(path).json()["eventsReceived"] == 5, what="first five")
        holder = database.scalar(
            "SELECT holder FROM leases WHERE name = :n", n=f"source:{source['id']}"
        )
        (victim,) = [s for s in three_instances if s.proc and f":{s.proc.pid}:" in holder]
        connections_before = len(sim.requests)
        victim.stop(signal.SIGKILL)
        sim.add(*(prism_token(n) for n in range(6, 11)))

        survivor = next(s for s in three_instances if s is not victim)
        with survivor.client(admin) as http:
            until(lambda: http.get(path).json()["eventsReceived"] == 10, 30, "takeover")
            events = http.get("/v1/events", params={"source": "prism-lease", "tail": "100"}).json()[
                "events"
            ]
        new_holder = database.scalar(
            "SELECT holder FROM leases WHERE name = :n", n=f"source:{source['id']}"
        )
    finally:
        sim.stop()
    assert [e["externalId"] for e in events] == [f"evt_{n}" for n in range(1, 11)]
    assert new_holder != holder
    assert any(
        f":{s.proc.pid}:" in new_holder for s in three_instances if s is not victim and s.proc
    )
    # The new holder resumed from the stored cursor: no gap, nothing fetched twice.
    assert sim.last_event_ids()[connections_before:][-1] == "evt_5"


def test_two_workers_share_one_port_with_writers_and_subscribers_on_both(
    database: Database, make_server: Callable[..., Server], receiver: Receiver
) -> None:
    server = make_server(database, args=["--workers", "2"], **FAST)
    key = database.key()
    with server.client(key) as http:  # every delivery of an expiry goes to the receiver
        answer = http.post(
            "/v1/webhooks", json={"url": receiver.url, "eventTypes": ["approval.expired"]}
        )
        assert answer.status_code == 201, answer.text
    # New connections each: the kernel hands them to either worker.
    subscribers = [Follower(server.base, key) for _ in range(6)]
    try:
        approvals = [
            httpx.post(
                server.base + "/v1/approvals",
                json={"title": f"expires {n}", "timeoutSeconds": 1},
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
            ).json()["id"]
            for n in range(4)
        ]

        def writer(n: int) -> None:
            for i in range(20):
                post(server.base, key, {"type": "tick", "title": f"w{n}-{i}"})

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        expired = receiver.wait_for(len(approvals), timeout=30)
        time.sleep(1.0)  # a second expiry or delivery would show up now
        expected = log_ids(server.base, key)
        until(lambda: all(len(s.ids) >= len(expected) for s in subscribers), what="every event")
        page = httpx.get(
            server.base + "/v1/events",
            params={"type": "approval.expired", "tail": "100"},
            headers={"Authorization": f"Bearer {key}"},
        ).json()["events"]
    finally:
        for subscriber in subscribers:
            subscriber.close()
    final = log_ids(server.base, key)  # later appends (delivery records) may follow
    for subscriber in subscribers:
        assert len(subscriber.ids) >= len(expected)
        assert subscriber.ids == final[: len(subscriber.ids)]  # in order, no gap, no repeat
    assert sorted(e["approvalId"] for e in page) == sorted(approvals)  # each timeout fired once
    assert len(receiver.received) == len(expired) == len(approvals)  # each delivered once
    delivered = {json.loads(r.body)["data"]["approvalId"] for r in receiver.received}
    assert delivered == set(approvals)
    if database.url.startswith("sqlite"):  # both workers bound their wake-up socket
        wake = wake_dir(make_url(database.url))  # beside the file, or in /tmp when too long
        assert wake is not None and len(list(wake.glob("*.sock"))) == 2
    assert server.stop(signal.SIGTERM, timeout=15) < 15  # drains with streams open
    assert server.proc is not None and server.proc.returncode == 0


def test_a_lease_has_one_holder_and_passes_on_when_it_lapses(database: Database) -> None:
    import asyncio

    from approvals.core.db import make_async_engine, parse_url
    from approvals.core.leases import Lease, LeaseLost

    async def scenario() -> None:
        engine = make_async_engine(parse_url(database.url))
        try:
            first = Lease(engine, "duty", holder="a", seconds=0.5)
            second = Lease(engine, "duty", holder="b", seconds=0.5)
            both = await asyncio.gather(first.acquire(), second.acquire())
            assert sorted(both) == [False, True]  # racing for a new lease: one wins
            holder, other = (first, second) if both[0] else (second, first)
            assert await holder.renew() and await holder.acquire()
            assert not await other.acquire() and not await other.renew()
            await asyncio.sleep(0.7)  # the holder stops renewing: the lease lapses
            assert await other.acquire()
            assert not await holder.renew()
            async with engine.begin() as conn:
                with pytest.raises(LeaseLost):
                    await holder.hold(conn)
                await other.hold(conn)
            await other.release()
            assert await holder.acquire()  # released: free at once
        finally:
            await engine.dispose()

    asyncio.run(scenario())
