"""Where the service is: one setting (``APPROVALS_URL``) for the service, the CLI, the demo and
the SDK, and errors that name the URL and what to set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from approvals.client import Approvals, ApprovalsError
from conftest import Database, Server, free_port, until


def run(
    *args: str, env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "approvals", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        cwd=cwd,
    )


def _up(base: str) -> bool:
    try:
        return httpx.get(base + "/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def keys(db: Database) -> int:
    return int(db.scalar("SELECT count(*) FROM api_keys"))


def test_demo_names_the_url_and_makes_no_key_when_the_service_is_away(
    sqlite_database: Database,
) -> None:
    port = free_port()  # nothing listens here
    env = {
        "APPROVALS_DATABASE_URL": sqlite_database.url,
        "APPROVALS_URL": f"http://127.0.0.1:{port}",
    }
    before = keys(sqlite_database)
    failed = run("demo", "--runs", "1", env=env)
    assert failed.returncode == 1
    assert f"127.0.0.1:{port}" in failed.stderr and "APPROVALS_URL" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert keys(sqlite_database) == before  # no key made for a service it never reached
    other = run("demo", "--url", f"http://127.0.0.1:{free_port()}", env=env)
    assert other.returncode == 1 and "--url" in other.stderr


def test_one_setting_points_serve_demo_and_the_sdk_at_the_same_place(
    sqlite_database: Database, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        "APPROVALS_DATABASE_URL": sqlite_database.url,
        "APPROVALS_URL": f"http://127.0.0.1:{port}",
        "APPROVALS_WEBHOOK_ALLOWED_DESTINATIONS": "127.0.0.1",
    }
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "approvals", "serve", "--log-level", "warning"],
        env={**os.environ, **env},
        stdout=log,
        stderr=log,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        until(lambda: _up(base) or server.poll() is not None, timeout=60, what="serve")
        assert server.poll() is None, (tmp_path / "serve.log").read_text()
        done = run("demo", "--runs", "1", "--pace", "0", env=env)
        assert done.returncode == 0, done.stderr
        assert f"{base}/" in done.stdout
        reader = Database(sqlite_database.url).key("approvals:read")
        os.environ["APPROVALS_URL"] = base
        try:
            client = Approvals(key=reader)
            assert len(client.pending()) == 1
        finally:
            del os.environ["APPROVALS_URL"]
    finally:
        server.terminate()
        server.wait(10)


def test_sdk_errors_name_the_url_and_the_setting(server: Server) -> None:
    away = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ApprovalsError) as refused:
        Approvals(away, "k").pending()
    assert away in refused.value.message and "APPROVALS_URL" in refused.value.message
    with pytest.raises(ApprovalsError) as unauthorized:
        Approvals(server.base, "not-a-key").pending()
    assert unauthorized.value.status == 401
    message = unauthorized.value.message
    assert server.base in message and "APPROVALS_KEY" in message


def test_a_taken_key_name_prints_no_key_and_says_how_to_get_one(
    sqlite_database: Database,
) -> None:
    env = {"APPROVALS_DATABASE_URL": sqlite_database.url}
    first = run("keys", "create", "agent", "--scope", "events:write", env=env)
    assert first.returncode == 0 and first.stdout.splitlines()[-1].startswith("apk_")
    again = run("keys", "create", "agent", "--scope", "events:write", env=env)
    # APPROVALS_KEY=$(approvals keys create … | tail -1) must not capture a message.
    assert again.returncode == 2 and again.stdout == ""
    assert "approvals keys rotate agent" in again.stderr
    rotated = run("keys", "rotate", "agent", env=env)
    assert rotated.returncode == 0 and rotated.stdout.splitlines()[-1].startswith("apk_")
