"""The TypeScript client's build, shared by its tests and its examples' tests: npm,
one installer or builder at a time across pytest-xdist workers, and a current ``dist/``."""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
CLIENT = ROOT / "clients" / "typescript"
NODE = shutil.which("node")
NPM = shutil.which("npm")

needs_node = pytest.mark.skipif(
    NODE is None or NPM is None,
    reason="node and npm are not on PATH; the TypeScript SDK needs Node.js 20 or newer",
)


def npm(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run npm; the completed process (its output captured)."""
    assert NPM is not None
    return subprocess.run(
        [NPM, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def must(out: subprocess.CompletedProcess[str], what: str) -> str:
    assert out.returncode == 0, f"{what} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
    return out.stdout


def built() -> bool:
    """True when ``dist/`` (with the adapters) exists and is newer than every source file."""
    dist = CLIENT / "dist"
    if not (dist / "index.js").exists() or not (dist / "adapters").is_dir():
        return False
    newest_source = max(p.stat().st_mtime for p in (CLIENT / "src").rglob("*.ts"))
    oldest_built = min(p.stat().st_mtime for p in dist.rglob("*.js"))
    return oldest_built >= newest_source


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """One installer or builder of ``clients/typescript`` at a time (pytest-xdist workers)."""
    with open(CLIENT / ".build-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_client() -> None:
    """Install the client's packages (``make test`` does it first) and build it when stale;
    call it holding ``locked()``."""
    if not (CLIENT / "node_modules" / ".package-lock.json").exists():
        must(npm("ci", "--no-audit", "--no-fund", cwd=CLIENT), "npm ci")
    if not built():
        must(npm("run", "build", cwd=CLIENT), "npm run build")
