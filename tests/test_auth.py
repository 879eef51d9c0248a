"""API keys: bearer authentication, scopes and revocation."""

from __future__ import annotations

import subprocess
import sys

from conftest import Server


def test_missing_and_unknown_keys_answer_401(server: Server) -> None:
    with server.client() as http:
        missing = http.get("/v1/events/1")
        wrong = http.get("/v1/events/1", headers={"Authorization": "Bearer apk_nope"})
        basic = http.get("/v1/events/1", headers={"Authorization": "Basic dXNlcjpwdw=="})
    for answer in (missing, wrong, basic):
        assert answer.status_code == 401
        assert answer.json()["error"] == "unauthorized"


def test_missing_scope_answers_403_naming_it(server: Server) -> None:
    reader = server.db.key("events:read")
    with server.client(reader) as http:
        answer = http.post("/v1/events", json={"type": "token"})
    assert answer.status_code == 403
    assert answer.json()["error"] == "forbidden"
    assert "events:write" in answer.json()["message"]
    assert server.db.scalar("SELECT count(*) FROM events") == 0


def test_admin_scope_holds_every_scope(server: Server) -> None:
    admin = server.db.key("admin")
    with server.client(admin) as http:
        assert http.post("/v1/events", json={"type": "token"}).status_code == 201


def test_keys_are_stored_as_hashes_and_revocation_takes_effect(server: Server) -> None:
    env = {"APPROVALS_DATABASE_URL": server.db.url}
    created = subprocess.run(
        [sys.executable, "-m", "approvals", "keys", "create", "ci-bot", "--scope", "events:read"],
        capture_output=True,
        text=True,
        env={**_env(), **env},
        check=True,
    )
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("apk_")
    stored = server.db.scalar("SELECT key_hash FROM api_keys WHERE name = 'ci-bot'")
    assert stored and key not in stored and len(stored) == 64
    with server.client(key) as http:
        assert http.get("/v1/events?tail=1").status_code == 200
        listed = subprocess.run(
            [sys.executable, "-m", "approvals", "keys", "list"],
            capture_output=True,
            text=True,
            env={**_env(), **env},
            check=True,
        ).stdout
        assert "ci-bot" in listed and key not in listed
        subprocess.run(
            [sys.executable, "-m", "approvals", "keys", "revoke", "ci-bot"],
            capture_output=True,
            text=True,
            env={**_env(), **env},
            check=True,
        )
        assert http.get("/v1/events?tail=1").status_code == 401


def test_key_create_refuses_unknown_scope(server: Server) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "approvals", "keys", "create", "x", "--scope", "everything"],
        capture_output=True,
        text=True,
        env={**_env(), "APPROVALS_DATABASE_URL": server.db.url},
    )
    assert result.returncode == 2
    assert "unknown scope 'everything'" in result.stderr
    assert server.db.scalar("SELECT count(*) FROM api_keys WHERE name = 'x'") == 0


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)
