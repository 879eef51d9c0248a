"""Schemathesis against a live server, on each database: no 5xx, every answer as documented.

What is generated: every operation's path, query and header parameters (the document
declares `Last-Event-ID` on `GET /v1/events` and `GET /v1/approvals/stream`) and bodies,
with strings drawn from all of Unicode including NUL (`--generation-codec utf-8`,
`--generation-allow-x00 true`, the 4.x defaults, spelled out so a config file cannot
narrow them). The `Authorization` header is fuzzed in a run without a key
(`--generation-with-security-parameters true`: random bearer values from the document's
security scheme, and requests without one). The stateful phase chains operations: the
document declares no OpenAPI links, so it uses the links schemathesis infers from the
response schemas and path parameters (about 40).

Afterwards every reader still answers 2xx and the log is gapless (`assert_readers_answer`,
`assert_log_is_gapless`, also used by test_fuzz_surfaces.py).

Bounded for CI (a fixed seed, `APPROVALS_FUZZ_EXAMPLES` examples per operation, 8 by
default); `make fuzz` runs longer. Excluded checks, and why: `positive_data_acceptance`
expects every schema-valid body to be accepted, but some rules span fields or the whole
body (an answer needs `answer`, NUL characters and whole numbers beyond 64 bits are
refused anywhere) and answer 4xx by design; `allow_header_conformance` reads Litestar's
automatic OPTIONS answers, which list one handler's methods.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from conftest import Database, Server

ST = Path(sys.executable).parent / "st"
HERE = Path(__file__).resolve().parent
EXAMPLES = int(os.environ.get("APPROVALS_FUZZ_EXAMPLES", "8"))
EXCLUDED = "positive_data_acceptance,allow_header_conformance"
# All of Unicode (no surrogates: they cannot be sent as UTF-8), NUL included.
UNICODE = ("--generation-codec", "utf-8", "--generation-allow-x00", "true")
READERS = "events:read", "approvals:read"


def _run(server: Server, key: str | None, *options: str) -> subprocess.CompletedProcess[str]:
    if not ST.exists():
        pytest.skip("schemathesis is not installed (it is in the dev extras)")
    auth = ["-H", f"Authorization: Bearer {key}"] if key else []
    return subprocess.run(
        [
            str(ST),
            "run",
            server.base + "/schema/openapi.json",
            *auth,
            "--seed",
            "1",
            "--workers",
            "1",
            "--request-timeout",
            "5",
            "--no-color",
            *UNICODE,
            *options,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=HERE,
        env={**os.environ, "SCHEMATHESIS_HOOKS": "fuzz_hooks", "PYTHONPATH": str(HERE)},
    )


def _passed(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout[-20_000:] + result.stderr[-5_000:]
    return result.stdout


def assert_readers_answer(server: Server) -> None:
    """Every reader answers 2xx: the queue (each page, each status), each approval by id,
    the log as JSON, readiness."""
    with server.client(server.db.key(*READERS, name="fuzz-readers")) as http:
        for path in ("/v1/approvals", "/v1/events", "/v1/events?tail=1000", "/readyz"):
            answer = http.get(path)
            assert answer.status_code == 200, (path, answer.status_code, answer.text[:2_000])
        cursor: str | None = None
        while True:
            params = {"status": "all", "limit": "500", **({"cursor": cursor} if cursor else {})}
            answer = http.get("/v1/approvals", params=params)
            assert answer.status_code == 200, (params, answer.text[:2_000])
            page = answer.json()
            for approval in page["approvals"]:
                one = http.get(f"/v1/approvals/{approval['id']}")
                assert one.status_code == 200, (approval["id"], one.text[:2_000])
            cursor = page["nextCursor"]
            if not cursor:
                break


def assert_log_is_gapless(server: Server) -> list[int]:
    """Paging `GET /v1/events?after=0` returns each stored id once, in increasing order.

    SQLite takes positions from one counter row inside its single writer, so the ids are
    consecutive; on PostgreSQL the contract (README, "How ordering is kept") is that a
    reader never misses a committed row: the ids are strictly increasing and every id up
    to the head appears exactly once, compared with the table itself.
    """
    ids: list[int] = []
    with server.client(server.db.key(*READERS, name="fuzz-log")) as http:
        after = "0"
        while True:
            answer = http.get("/v1/events", params={"after": after, "limit": "1000"})
            assert answer.status_code == 200, answer.text[:2_000]
            page = answer.json()
            ids += [int(event["id"]) for event in page["events"]]
            if not page["events"]:
                break
            after = page["nextCursor"]
    assert ids, "the log is empty"
    assert all(a < b for a, b in itertools.pairwise(ids)), "ids not increasing"
    head = ids[-1]
    stored = server.db.scalar("SELECT count(*) FROM events WHERE id <= :h", h=head)
    assert len(ids) == stored, (len(ids), stored)  # every stored id up to the head, once
    if server.db.url.startswith("sqlite"):
        assert ids == list(range(ids[0], head + 1)), "a gap in the SQLite log"
    return ids


@pytest.fixture
def server(database: Database, make_server: Callable[..., Server]) -> Server:
    """A server whose outbound calls all go to a closed loopback port (a proxy nobody runs)."""
    closed = "http://127.0.0.1:9"
    return make_server(database, http_proxy=closed, https_proxy=closed, all_proxy=closed)


def test_fuzzing_finds_no_server_error_and_no_undocumented_answer(server: Server) -> None:
    admin = server.db.key("admin", name="fuzz-admin")
    # The Claude Code hook holds its request until a human decides: a policy decides at
    # once here (the coverage phase sends its `timeout` unchanged; fuzz_hooks caps it in
    # the other phases).
    with server.client(admin) as http:
        auto = {"agentId": "claude-code", "action": "auto_approve"}
        assert http.post("/v1/policies", json=auto).status_code == 201
    # Examples, coverage, fuzzing and the stateful phase, every check.
    out = _passed(
        _run(
            server,
            admin,
            "--checks",
            "all",
            "--exclude-checks",
            EXCLUDED,
            "--max-examples",
            str(EXAMPLES),
        )
    )
    selected = re.search(r"Selected: (\d+)/(\d+)", out)
    tested = re.search(r"Tested: (\d+)", out)
    assert selected and tested, out[-3_000:]
    assert int(tested.group(1)) == int(selected.group(2)) >= 26  # every operation ran
    # The stateful phase ran on inferred links (the document declares none).
    assert re.search(r"✅ Stateful", out), out[-3_000:]
    links = re.search(r"API Links:\s+(\d+) covered / (\d+) selected", out)
    assert links and int(links.group(2)) > 0, out[-3_000:]

    # The Authorization header fuzzed: no key, random bearer values, a missing header.
    # Every answer is a documented 401 (or an open route's answer), never a 5xx, and
    # `ignored_auth` checks that no operation answers as if authorised.
    _passed(
        _run(
            server,
            None,
            "--generation-with-security-parameters",
            "true",
            "--phases",
            "coverage,fuzzing",
            "--max-examples",
            str(max(2, EXAMPLES // 2)),
            "--checks",
            "not_a_server_error,status_code_conformance,response_schema_conformance,"
            "content_type_conformance,ignored_auth",
        )
    )
    # Keys without the scopes get documented 403s, never a 5xx.
    _passed(
        _run(
            server,
            server.db.key("events:read", name="fuzz-reader"),
            "--phases",
            "fuzzing",
            "--max-examples",
            "2",
            "--checks",
            "not_a_server_error,status_code_conformance,"
            "response_schema_conformance,content_type_conformance",
        )
    )
    assert_readers_answer(server)
    assert_log_is_gapless(server)
    assert "Traceback" not in server.log_text(), server.log_text()[-5_000:]
    assert httpx.get(server.base + "/readyz").status_code == 200
