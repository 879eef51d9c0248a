"""The README documents every setting, command and endpoint the service has."""

from __future__ import annotations

import re
from pathlib import Path

from approvals.app import create_app
from approvals.config import Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_every_setting_is_in_the_readme() -> None:
    source = (ROOT / "approvals" / "config.py").read_text()
    names = set(re.findall(r'"(APPROVALS_[A-Z_]+)"', source))
    assert len(names) >= 10
    missing = sorted(name for name in names if f"`{name}`" not in README)
    assert missing == []


def test_every_api_path_is_in_the_readme(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}"))
    paths = {route.path for route in app.routes if route.path.startswith("/v1/")}
    documented = {re.sub(r"\{(\w+):\w+\}", r"{\1}", p) for p in paths}
    readme_paths = set(re.findall(r"`(?:GET|POST|PATCH|DELETE) (/v1/[^`\s?]+)`", README))
    normalise = lambda p: re.sub(r"\{[^}]+\}", "{}", p)  # noqa: E731
    missing = sorted(
        p for p in documented if normalise(p) not in {normalise(r) for r in readme_paths}
    )
    assert missing == []


def test_every_command_is_in_the_readme() -> None:
    for command in (
        "serve",
        "keys create",
        "keys list",
        "keys revoke",
        "users create",
        "users update",
        "users list",
        "users disable",
        "users password",
        "demo",
        "webhooks callback-secret",
        "sources add",
        "sources list",
        "sources remove",
        "pending",
        "show",
        "approve",
        "reject",
        "answer",
    ):
        assert f"approvals {command}" in README, command
