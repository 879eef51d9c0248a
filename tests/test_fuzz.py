"""Schemathesis against a live server, on each database: no 5xx, every answer as documented.

Bounded for CI (a fixed seed, a few examples per operation); `make fuzz` runs longer.
Excluded checks, and why: `positive_data_acceptance` expects every schema-valid body to
be accepted, but some rules span fields or the whole body (an answer needs `answer`,
NUL characters and whole numbers beyond 64 bits are refused anywhere) and answer 4xx by
design; `allow_header_conformance` reads Litestar's automatic OPTIONS answers, which list
one handler's methods.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Database, Server

ST = Path(sys.executable).parent / "st"
HERE = Path(__file__).resolve().parent
EXAMPLES = int(os.environ.get("APPROVALS_FUZZ_EXAMPLES", "8"))
EXCLUDED = "positive_data_acceptance,allow_header_conformance"


def _run(server: Server, key: str, *options: str) -> subprocess.CompletedProcess[str]:
    if not ST.exists():
        pytest.skip("schemathesis is not installed (it is in the dev extras)")
    return subprocess.run(
        [
            str(ST),
            "run",
            server.base + "/schema/openapi.json",
            "-H",
            f"Authorization: Bearer {key}",
            "--seed",
            "1",
            "--workers",
            "1",
            "--request-timeout",
            "5",
            "--exclude-checks",
            EXCLUDED,
            *options,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=HERE,
        env={**os.environ, "SCHEMATHESIS_HOOKS": "fuzz_hooks", "PYTHONPATH": str(HERE)},
    )


@pytest.fixture
def server(database: Database, make_server: Callable[..., Server]) -> Server:
    """A server whose outbound calls all go to a closed loopback port (a proxy nobody runs)."""
    closed = "http://127.0.0.1:9"
    return make_server(database, http_proxy=closed, https_proxy=closed, all_proxy=closed)


def test_fuzzing_finds_no_server_error_and_no_undocumented_answer(server: Server) -> None:
    admin = server.db.key("admin", name="fuzz-admin")
    result = _run(server, admin, "--checks", "all", "--max-examples", str(EXAMPLES))
    assert result.returncode == 0, result.stdout[-20_000:] + result.stderr[-5_000:]
    selected = re.search(r"Selected: (\d+)/(\d+)", result.stdout)
    tested = re.search(r"Tested: (\d+)", result.stdout)
    assert selected and tested, result.stdout[-3_000:]
    assert int(tested.group(1)) == int(selected.group(2)) >= 26  # every operation ran
    # Keys without the scopes get documented 403s, never a 5xx.
    reader = server.db.key("events:read", name="fuzz-reader")
    limited = _run(
        server,
        reader,
        "--phases",
        "fuzzing",
        "--max-examples",
        "2",
        "--checks",
        "not_a_server_error,status_code_conformance,"
        "response_schema_conformance,content_type_conformance",
    )
    assert limited.returncode == 0, limited.stdout[-20_000:] + limited.stderr[-5_000:]
    assert "Traceback" not in server.log_text(), server.log_text()[-5_000:]
