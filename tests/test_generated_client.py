"""A client generated from /schema/openapi.json runs the approval flow without hand edits."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Database, Server

GENERATOR = Path(sys.executable).parent / "openapi-python-client"


@pytest.fixture
def generated(
    tmp_path: Path, sqlite_database: Database, make_server: Callable[..., Server]
) -> Iterator[tuple[Any, Server]]:
    if not GENERATOR.exists():
        pytest.skip("openapi-python-client is not installed (it is in the dev extras)")
    server = make_server(sqlite_database)
    document = tmp_path / "openapi.json"
    document.write_bytes(httpx.get(server.base + "/schema/openapi.json", timeout=30).content)
    package = tmp_path / "gen" / "approvals_api"
    result = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(document),
            "--output-path",
            str(package),
            "--meta",
            "none",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PATH": f"{GENERATOR.parent}:{os.environ.get('PATH', '')}"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stdout + result.stderr, result.stdout + result.stderr
    sys.path.insert(0, str(package.parent))
    try:
        yield importlib.import_module("approvals_api"), server
    finally:
        sys.path.remove(str(package.parent))
        for name in [name for name in sys.modules if name.startswith("approvals_api")]:
            del sys.modules[name]


def test_generated_client_runs_the_whole_flow(generated: tuple[Any, Server]) -> None:
    api, server = generated
    events = importlib.import_module("approvals_api.api.events")
    approvals = importlib.import_module("approvals_api.api.approvals")
    models = importlib.import_module("approvals_api.models")
    for name in ("append_events", "read_events"):
        importlib.import_module(f"approvals_api.api.events.{name}")
    for name in ("open_approval", "decide_approval", "list_approvals", "get_approval"):
        importlib.import_module(f"approvals_api.api.approvals.{name}")
    client = api.AuthenticatedClient(base_url=server.base, token=server.db.key())
    reviewer = api.AuthenticatedClient(
        base_url=server.base, token=server.db.key("approvals:resolve", name="reviewer")
    )

    stored = events.append_events.sync(
        client=client,
        body=models.EventIn(type_="tool_call", title="looked up the account", run_id="run_gen"),
    )
    assert isinstance(stored, models.EventOut), stored
    assert stored.type_ == "tool_call" and stored.run_id == "run_gen" and int(stored.id) >= 1

    opened = approvals.open_approval.sync(
        client=client,
        body=models.ApprovalCreate(title="Refund 40 EUR?", run_id="run_gen", timeout_seconds=600.0),
    )
    assert isinstance(opened, models.ApprovalOut), opened
    assert opened.status == models.ApprovalOutStatus.PENDING

    decided = approvals.decide_approval.sync(
        opened.id,
        client=reviewer,
        body=models.DecisionIn(decision=models.DecisionInDecision.REJECT, comment="too much"),
    )
    assert isinstance(decided, models.ApprovalOut), decided
    assert decided.status == models.ApprovalOutStatus.REJECTED
    assert decided.comment == "too much" and decided.resolved_by == "reviewer"

    again = approvals.decide_approval.sync(
        opened.id,
        client=reviewer,
        body=models.DecisionIn(decision=models.DecisionInDecision.APPROVE),
    )
    assert isinstance(again, models.ErrorBody) and again.error == "conflict"

    queue = approvals.list_approvals.sync(
        client=client, status=models.ListApprovalsStatus.REJECTED, run_id="run_gen"
    )
    assert isinstance(queue, models.ApprovalPage)
    assert [a.id for a in queue.approvals] == [opened.id]

    page = events.read_events.sync(client=client, run_id="run_gen", tail=10)
    assert isinstance(page, models.EventPage)
    assert [e.type_ for e in page.events] == ["tool_call", "steering_request", "approval.resolved"]
