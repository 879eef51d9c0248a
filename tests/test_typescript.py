"""The TypeScript SDK (``clients/typescript``, the npm package ``approvals-client``) against
a real service: its own ``node --test`` suite, the packed tarball installed in a fresh
project, and the check that its generated types match the OpenAPI document.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from typescript_build import CLIENT, NODE, ensure_client, locked, must, needs_node, npm

from approvals.digest import arguments_digest
from conftest import Database, Server
from reviewers import WAIT, make_agent

DRIFTED = "types drifted from the OpenAPI document; run npm run generate"

pytestmark = needs_node

# Inputs whose canonical JSON is easy to get wrong: the SDK must digest them as the
# service does (approvals.digest.arguments_digest).
DIGEST_CASES: list[object] = [
    None,
    {},
    {"a": 1, "b": [1, 2, 3]},
    {"\u20ac": 1, "a": 2, "\U0001f600": 3, "\ufb33": 4, "\u00e9": 5, "Z": 6, "\r": 7, "1": 8},
    {"big": 1e21, "small": 1e-7, "negzero": -0.0, "sum": 0.1 + 0.2, "max": 9007199254740991},
    {"nested": [[1, [2, [3, {"b": 1, "a": [True, False, None]}]]], []], "empty": {}},
    {"s": 'line\nbreak\t"quoted" \\ \u0001 \u001f \u007f \u2028 \u00e9 \U0001f600'},
    {"floats": [1.0, 1.5, -1.5e-10, 1.2345678901234568e20, 5e-324, 1.7976931348623157e308]},
    {"digits": [100.0, 0.000001, 1e-6, 123e-20, 4.35, 0.5e-323]},
]


@pytest.fixture(scope="module")
def client_built() -> Path:
    """``clients/typescript`` with its packages installed and a current build in ``dist/``."""
    with locked():
        ensure_client()
    return CLIENT


def node_env(**values: str) -> dict[str, str]:
    """The environment without the caller's ``APPROVALS_*`` settings, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPROVALS_")}
    env.update(values)
    return env


def test_the_sdk_suite_passes_against_a_live_service(
    client_built: Path,
    sqlite_database: Database,
    make_server: Callable[..., Server],
    tmp_path: Path,
) -> None:
    server = make_server(sqlite_database)
    digests = tmp_path / "digests.json"
    cases = [{"arguments": case, "digest": arguments_digest(case)} for case in DIGEST_CASES]
    digests.write_text(json.dumps(cases, ensure_ascii=False), encoding="utf-8")
    env = node_env(
        APPROVALS_URL=server.base,
        APPROVALS_KEY=sqlite_database.key("events:write", "approvals:read", name="agent"),
        APPROVALS_REVIEWER_KEY=sqlite_database.key(name="reviewer"),
        APPROVALS_TEST_DIGESTS=str(digests),
    )
    out = npm("test", cwd=client_built, env=env, timeout=300)
    assert out.returncode == 0, f"npm test failed:\n{out.stdout[-20000:]}\n{out.stderr[-5000:]}"
    assert "# fail 0" in out.stdout
    assert "# skipped 0" in out.stdout, out.stdout[-3000:]


SCRIPT = """
import { Approvals, Rejected } from "approvals-client";

const client = new Approvals(); // APPROVALS_URL, APPROVALS_KEY
const postAds = client.requireApproval(
  async function postAds({ count, platform }) {
    return `posted ${count} ads to ${platform}`;
  },
  { title: "Post {count} ads to {platform}?", timeoutSeconds: 120 },
);
console.log(await postAds({ count: 5, platform: "meta" }));
console.log(typeof Rejected);
"""


def test_the_packed_tarball_installs_and_gates_a_tool(
    client_built: Path,
    sqlite_database: Database,
    make_server: Callable[..., Server],
    tmp_path: Path,
) -> None:
    packed = tmp_path / "packed"
    packed.mkdir()
    # Built above; --ignore-scripts keeps prepack from rebuilding dist/ under other readers.
    listing = must(
        npm("pack", "--ignore-scripts", "--json", "--pack-destination", str(packed), cwd=CLIENT),
        "npm pack",
    )
    (info,) = json.loads(listing)
    files = {entry["path"] for entry in info["files"]}
    assert {"package.json", "README.md", "dist/index.js", "dist/index.d.ts"} <= files
    assert not any(path.startswith(("src/", "test/", "node_modules/")) for path in files)
    tarball = packed / info["filename"]

    project = tmp_path / "project"
    project.mkdir()
    must(npm("init", "-y", cwd=project), "npm init")
    must(npm("install", "--no-audit", "--no-fund", str(tarball), cwd=project), "npm install")
    manifest = json.loads((project / "node_modules/approvals-client/package.json").read_text())
    assert set(manifest["dependencies"]) == {"standardwebhooks", "eventsource-parser"}
    (project / "agent.mjs").write_text(SCRIPT, encoding="utf-8")

    agent = make_agent(make_server(sqlite_database))
    agent_key = sqlite_database.key("events:write", "approvals:read", name="tarball")
    reviewer = agent.decide_later(decision="approve", arguments={"count": 2})
    assert NODE is not None
    out = subprocess.run(
        [NODE, "agent.mjs"],
        cwd=project,
        env=node_env(APPROVALS_URL=agent.url, APPROVALS_KEY=agent_key),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    reviewer.join(WAIT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["posted 2 ads to meta", "function"]
    (approval,) = reviewer.seen  # type: ignore[attr-defined]
    assert approval["tool"] == "postAds"
    assert approval["title"] == "Post 5 ads to meta?"
    assert approval["arguments"] == {"count": 5, "platform": "meta"}
    with agent.server.client(agent.reviewer) as http:
        done = http.get(f"/v1/approvals/{approval['id']}").json()
    expected = arguments_digest({"count": 2, "platform": "meta"})
    assert done["execution"]["argumentsDigest"] == expected


def test_the_drift_check_fails_when_the_document_changes(
    client_built: Path,
    sqlite_database: Database,
    make_server: Callable[..., Server],
    tmp_path: Path,
) -> None:
    server = make_server(sqlite_database)
    document = httpx.get(f"{server.base}/schema/openapi.json", timeout=WAIT).json()
    live = tmp_path / "openapi.json"
    live.write_text(json.dumps(document), encoding="utf-8")
    out = npm("run", "check-types", "--", str(live), cwd=client_built, timeout=120)
    assert out.returncode == 0, (
        "clients/typescript/src/generated/openapi.ts does not match the service's document; "
        f"run `npm run generate -- <url-or-file>` there:\n{out.stdout}\n{out.stderr}"
    )

    schema = document["components"]["schemas"]["ApprovalCreate"]
    schema["properties"]["priority"] = {"type": "integer"}
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(document), encoding="utf-8")
    out = npm("run", "check-types", "--", str(changed), cwd=client_built, timeout=120)
    assert out.returncode != 0
    assert DRIFTED in out.stderr
    assert "priority" in out.stderr
