"""Shared plumbing for the benchmarks: a real server process, keys, databases, stats."""

from __future__ import annotations

import contextlib
import os
import resource
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from approvals.auth.keys import create_key
from approvals.core.db import make_sync_engine, migrate, parse_url

POSTGRES = os.environ.get(
    "APPROVALS_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def raise_file_limit() -> int:
    """Lift the open-file limit to the hard limit (thousands of sockets)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def free_port() -> int:
    """A TCP port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def sqlite_url() -> Iterator[str]:
    """A migrated SQLite database in a temporary folder."""
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
        migrate(parse_url(url))
        yield url


@contextlib.contextmanager
def postgres_url() -> Iterator[str | None]:
    """A new migrated PostgreSQL database (None when the server is unreachable)."""
    name = f"approvals_bench_{secrets.token_hex(4)}"
    admin = create_engine(
        make_url(POSTGRES).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # no server here: skip PostgreSQL figures
        print(f"(PostgreSQL not reachable: {type(exc).__name__}; skipping its figures)")
        yield None
        return
    url = make_url(POSTGRES).set(database=name).render_as_string(hide_password=False)
    try:
        migrate(parse_url(url))
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def key(url: str, *scopes: str) -> str:
    """A new API key (all scopes by default)."""
    engine = make_sync_engine(parse_url(url))
    try:
        with engine.begin() as conn:
            return create_key(
                conn,
                f"bench-{secrets.token_hex(3)}",
                list(
                    scopes
                    or (
                        "events:read",
                        "events:write",
                        "approvals:read",
                        "approvals:resolve",
                        "admin",
                    )
                ),
            )
    finally:
        engine.dispose()


class Server:
    """``approvals serve`` in a subprocess on a free port."""

    def __init__(self, url: str, args: tuple[str, ...] = (), **env: str) -> None:
        self.url = url
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        environment = {**os.environ, "APPROVALS_DATABASE_URL": url}
        environment.update({k.upper(): v for k, v in env.items()})
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "approvals",
                "serve",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                *args,
            ],
            env=environment,
            preexec_fn=raise_file_limit,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 90  # worker processes start slowly on a busy machine
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError("the server did not start")

    def rss_mb(self) -> float:
        """The server's resident memory in MB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        """Stop the server."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def percentiles(samples: list[float]) -> str:
    """p50, p99 and max of samples in seconds, printed in milliseconds."""
    if not samples:
        return "no samples"
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"p50 {statistics.median(ordered) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
        f"max {ordered[-1] * 1000:.1f} ms (n={len(ordered)})"
    )
