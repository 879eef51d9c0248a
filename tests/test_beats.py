"""Background loops never die of one step, and ``/readyz`` names a loop that stalled."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

from litestar.testing import TestClient
from sqlalchemy import text

from approvals.auth.keys import create_key
from approvals.core.beats import Beats
from approvals.core.config import Settings
from approvals.core.db import make_sync_engine, migrate, parse_url
from approvals.main.app import create_app
from approvals.queue import service as queue_service
from conftest import Database


def test_a_loop_is_stalled_when_it_stops_beating_or_ends() -> None:
    now = [100.0]
    beats = Beats(clock=lambda: now[0])

    async def main() -> None:
        forever = asyncio.create_task(asyncio.sleep(3600))
        ended = asyncio.create_task(asyncio.sleep(0))
        beats.watch("deliveries", forever)
        beats.watch("expiry", forever)
        beats.watch("connectors", ended)
        await asyncio.sleep(0.01)
        assert beats.stalled() == ["connectors"]  # its task ended: at once
        now[0] += 29
        beats.beat("expiry")
        assert beats.stalled() == ["connectors"]
        now[0] += 2  # deliveries last beat 31 s ago; expiry 2 s ago
        assert beats.stalled() == ["connectors", "deliveries"]
        forever.cancel()

    asyncio.run(main())


def until(check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_each_loop_survives_a_step_that_raises_and_readyz_names_a_stalled_one(
    tmp_path: Path, monkeypatch: Any
) -> None:
    url = f"sqlite:///{tmp_path / 'approvals.db'}"
    migrate(parse_url(url))
    engine = make_sync_engine(parse_url(url))
    with engine.begin() as conn:
        key = create_key(conn, "agent", ["events:write", "approvals:read", "approvals:resolve"])
    app = create_app(Settings(database_url=url))
    calls = {"deliveries": 0, "expiry": 0, "connectors": 0}

    def broken(name: str) -> Any:
        async def step(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            raise RuntimeError(f"the {name} step broke")

        return step

    with TestClient(app) as client:
        services = app.state.services
        headers = {"Authorization": f"Bearer {key}"}
        assert client.get("/readyz").json() == {"status": "ready"}
        real_expire = queue_service.expire_due
        services.webhooks.claim = broken("deliveries")
        services.connectors._reconcile = broken("connectors")
        monkeypatch.setattr(queue_service, "expire_due", broken("expiry"))
        opened = client.post(
            "/v1/approvals", json={"title": "t", "timeoutSeconds": 0.2}, headers=headers
        ).json()
        until(lambda: min(calls.values()) >= 2)  # every loop came round after a failure
        assert not any(task.done() for task in services.tasks)
        assert client.get("/readyz").status_code == 200
        # Mended, the loops do their work again: the approval expires.
        monkeypatch.setattr(queue_service, "expire_due", real_expire)
        until(
            lambda: (
                client.get(f"/v1/approvals/{opened['id']}", headers=headers).json()["status"]
                == "expired"
            )
        )
        # A step that hangs stops the beats: /readyz names the loop after 30 s.
        entered = []

        async def hang(*args: Any, **kwargs: Any) -> Any:
            entered.append(True)
            await asyncio.Event().wait()

        services.webhooks.claim = hang
        until(lambda: entered)
        services.beats.last["deliveries"] -= 31
        answer = client.get("/readyz")
        assert answer.status_code == 503, answer.text
        assert "deliveries" in answer.json()["message"]
        assert "expiry" not in answer.json()["message"]
        metrics = client.get("/metrics").text
        for loop in ("deliveries", "expiry", "connectors"):
            assert f'approvals_loop_last_beat_seconds{{loop="{loop}"}}' in metrics
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM approvals")).scalar() == 1
    engine.dispose()


def test_an_approval_that_cannot_expire_is_held_back_while_the_others_expire(
    tmp_path: Path, monkeypatch: Any
) -> None:
    url = f"sqlite:///{tmp_path / 'approvals.db'}"
    migrate(parse_url(url))
    key = Database(url).key("events:write", "approvals:read", name="agent")
    monkeypatch.setattr(queue_service, "EXPIRY_RETRY", 0.5)
    real_expire_one = queue_service._expire_one
    broken: set[str] = set()
    tries: list[float] = []  # monotonic time of each failed try

    async def flaky(log: Any, approval_id: str, on_timeout: str) -> int:
        if approval_id in broken:
            tries.append(time.monotonic())
            raise RuntimeError("this one cannot be resolved")
        return await real_expire_one(log, approval_id, on_timeout)

    monkeypatch.setattr(queue_service, "_expire_one", flaky)
    app = create_app(Settings(database_url=url))
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {key}"}

        def status(approval_id: str) -> str:
            got = client.get(f"/v1/approvals/{approval_id}", headers=headers)
            return str(got.json()["status"])

        opened = [
            client.post(
                "/v1/approvals", json={"title": f"t{i}", "timeoutSeconds": 0.2}, headers=headers
            ).json()["id"]
            for i in range(3)
        ]
        broken.add(opened[0])
        # The two others expire although the first fails each time it is tried.
        until(lambda: all(status(a) == "expired" for a in opened[1:]))
        assert status(opened[0]) == "pending"
        # It is tried again after the hold (0.5 s here), not on every turn of the loop.
        # (The times are taken when each try happens, so a slow test never reads a
        # late observation as a short gap.)
        until(lambda: len(tries) >= 3)
        gaps = [later - earlier for earlier, later in itertools.pairwise(tries)]
        assert min(gaps) >= 0.45, gaps
        # Mended, it expires on its next try.
        broken.clear()
        until(lambda: status(opened[0]) == "expired")
