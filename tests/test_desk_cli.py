"""Rough edges a new user meets: which database the CLI opened, help text, Ctrl-C, log head."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import httpx

from conftest import Database, Server


def cli(*args: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "120"}
    env.pop("APPROVALS_DATABASE_URL", None)
    if url:
        env["APPROVALS_DATABASE_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "approvals", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_cli_names_the_database_it_opened_and_warns_when_it_is_new(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    first = cli("keys", "list", url=url)
    assert first.returncode == 0, first.stderr
    assert f"approvals: database {url}" in first.stderr
    assert "created a new, empty database" in first.stderr
    second = cli("keys", "list", url=url)
    assert f"approvals: database {url}" in second.stderr
    assert "created a new" not in second.stderr


def test_key_help_shows_a_repeatable_scope() -> None:
    shown = cli("keys", "create", "--help").stdout
    assert "--scope" in shown and "SCOPE (repeatable)" in shown


def test_connected_carries_the_log_head_and_flags_an_id_beyond_it(server: Server) -> None:
    key = server.db.key("events:read", "events:write", name="reader")
    with server.client(key) as http:
        http.post("/v1/events", json={"type": "note", "title": "one"}).raise_for_status()

    def hello(**headers: str) -> dict[str, object]:
        with (
            httpx.Client(base_url=server.base, timeout=10) as http,
            http.stream(
                "GET",
                "/v1/events",
                headers={
                    "Authorization": f"Bearer {key}",
                    "Accept": "text/event-stream",
                    **headers,
                },
            ) as answer,
        ):
            for line in answer.iter_lines():
                if line.startswith("data:"):
                    return dict(json.loads(line[5:])["subscription"])
        raise AssertionError("no connected message")

    live = hello()
    assert live["head"] == "1" and live["beyondHead"] is False
    stale = hello(**{"Last-Event-ID": "999999"})
    assert stale["from"] == "999999" and stale["head"] == "1" and stale["beyondHead"] is True


def test_ctrl_c_with_an_open_stream_exits_quietly(
    sqlite_database: Database, make_server: Callable[..., Server]
) -> None:
    server = make_server(sqlite_database)
    key = server.db.key("events:read", name="reader")
    opened = threading.Event()

    def follow() -> None:
        try:
            with (
                httpx.Client(base_url=server.base, timeout=30) as http,
                http.stream(
                    "GET",
                    "/v1/events",
                    headers={"Authorization": f"Bearer {key}", "Accept": "text/event-stream"},
                ) as answer,
            ):
                for _ in answer.iter_lines():
                    opened.set()
        except httpx.HTTPError:
            pass

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    assert opened.wait(10)
    assert server.stop(signal.SIGINT) < 9
    assert server.proc is not None and server.proc.returncode == 0
    printed = server.log_text()
    assert "Traceback" not in printed and "ERROR" not in printed, printed
    reader.join(10)
