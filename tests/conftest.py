"""Shared fixtures: databases (SQLite always, PostgreSQL when configured) and real servers."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from approvals.auth.keys import create_key
from approvals.core.db import make_sync_engine, migrate, parse_url
from receiver import Receiver

POSTGRES_ENV = "APPROVALS_TEST_POSTGRES_URL"
POSTGRES_SKIP = f"{POSTGRES_ENV} is not set; the PostgreSQL variant needs a server URL in it"
ALL_SCOPES = ("events:read", "events:write", "approvals:read", "approvals:resolve", "admin")
# Servers may call loopback receivers and stand-ins, and nothing else: the tests never
# reach a public or private address (a test passes its own value to override it).
SERVER_DEFAULTS = {"APPROVALS_WEBHOOK_ALLOWED_DESTINATIONS": "127.0.0.1"}


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Database:
    """A fresh, migrated database for one test."""

    url: str

    def key(self, *scopes: str, name: str | None = None) -> str:
        """Create an API key directly in the database (all scopes by default)."""
        engine = make_sync_engine(parse_url(self.url))
        try:
            with engine.begin() as conn:
                return create_key(
                    conn, name or f"key-{secrets.token_hex(3)}", list(scopes or ALL_SCOPES)
                )
        finally:
            engine.dispose()

    def execute(self, sql: str, **params: Any) -> None:
        """Run one SQL statement and commit it."""
        engine = make_sync_engine(parse_url(self.url))
        try:
            with engine.begin() as conn:
                conn.execute(text(sql), params)
        finally:
            engine.dispose()

    def scalar(self, sql: str, **params: Any) -> Any:
        """Run one SQL query and return the first column of its first row."""
        engine = make_sync_engine(parse_url(self.url))
        try:
            with engine.connect() as conn:
                return conn.execute(text(sql), params).scalar()
        finally:
            engine.dispose()


def _postgres_database() -> Iterator[str]:
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(POSTGRES_SKIP)
    name = f"approvals_test_{secrets.token_hex(6)}"
    admin = create_engine(
        make_url(base).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated database: SQLite in a temporary folder, or a new PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'approvals.db'}"
        migrate(parse_url(url))
        yield Database(url)
        return
    for url in _postgres_database():
        migrate(parse_url(url))
        yield Database(url)


@pytest.fixture
def sqlite_database(tmp_path: Path) -> Database:
    """A migrated SQLite database only."""
    url = f"sqlite:///{tmp_path / 'approvals.db'}"
    migrate(parse_url(url))
    return Database(url)


@pytest.fixture
def postgres_database() -> Iterator[Database]:
    """A migrated PostgreSQL database only (skipped without a server URL)."""
    for url in _postgres_database():
        migrate(parse_url(url))
        yield Database(url)


@dataclass
class Server:
    """An ``approvals serve`` process on a free port."""

    db: Database
    env: dict[str, str]
    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    args: list[str] = field(default_factory=list)  # more `serve` options, e.g. --workers 2
    start_timeout: float = 60.0  # processes start slowly on a busy machine

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        """Start the process and wait until it answers."""
        env = {**os.environ, **SERVER_DEFAULTS, "APPROVALS_DATABASE_URL": self.db.url, **self.env}
        log = open(self.workdir / f"server-{self.port}.log", "ab")  # noqa: SIM115
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
                *self.args,
            ],
            env=env,
            cwd=self.workdir,
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_text()}")
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not start: {self.log_text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> float:
        """Stop the process; return how long it took to exit."""
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        began = time.monotonic()
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return time.monotonic() - began

    def log_text(self) -> str:
        """What the server printed."""
        path = self.workdir / f"server-{self.port}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def client(self, key: str | None = None, **kwargs: Any) -> httpx.Client:
        """An HTTP client for this server, with a bearer key when given."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=30, **kwargs)


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """A factory of started servers on a database; all are stopped at the end."""
    started: list[Server] = []

    def make(db: Database, args: list[str] | None = None, **env: str) -> Server:
        env_ = {k.upper(): str(v) for k, v in env.items()}
        server = Server(db, env_, tmp_path, args=args or [], start_timeout=90 if args else 60)
        started.append(server.start())
        return server

    yield make
    for server in started:
        server.stop(signal.SIGKILL)


@pytest.fixture
def server(database: Database, make_server: Callable[..., Server]) -> Server:
    """A started server on the parametrised database, with a 1 s keepalive."""
    return make_server(database, approvals_keepalive_seconds="1")


def until(check: Callable[[], Any], timeout: float = 20, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy (and return that); fail after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} not met in {timeout}s (last: {value!r})"
        time.sleep(0.05)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on a loopback port, stopped after the test."""
    rec = Receiver().start()
    yield rec
    rec.stop()


@pytest.fixture
def slack() -> Iterator[Any]:
    """A stand-in of Slack's Web API on a loopback port, stopped after the test."""
    from slack_standin import SlackStandIn  # it imports this module

    standin = SlackStandIn().start()
    yield standin
    standin.stop()


@pytest.fixture
def mailbox() -> Iterator[Any]:
    """An SMTP server on a loopback port that keeps what it receives."""
    from smtp_standin import Mailbox  # it imports this module

    box = Mailbox().start()
    yield box
    box.stop()
