"""The docs site documents every setting, command and endpoint the service has; the README
is a short front page; no link in either leaves the repository; the site builds strictly."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from approvals.core.config import Settings
from approvals.main.app import create_app

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
PAGES = sorted(DOCS.rglob("*.md"))
README_MAX_LINES = 250


def page(name: str) -> str:
    return (DOCS / name).read_text()


def test_the_site_has_its_pages() -> None:
    names = {str(p.relative_to(DOCS)) for p in PAGES}
    for name in (
        "index.md",
        "concepts.md",
        "quickstart/reviewers.md",
        "quickstart/agent-developers.md",
        "quickstart/operators.md",
        "api.md",
        "sdk.md",
        "channels.md",
        "cli.md",
        "configuration.md",
        "deploy.md",
        "security.md",
        "architecture.md",
        "development.md",
    ):
        assert name in names, name
    nav = (ROOT / "mkdocs.yml").read_text()
    unlisted = sorted(name for name in names if name not in nav)
    assert unlisted == [], "pages missing from the nav in mkdocs.yml"


def test_every_setting_is_in_the_configuration_page() -> None:
    source = (ROOT / "approvals" / "core" / "config.py").read_text()
    names = set(re.findall(r'"(APPROVALS_[A-Z_]+)"', source))
    assert len(names) >= 10
    configuration = page("configuration.md")
    table_rows = set(re.findall(r"^\| `(APPROVALS_[A-Z_]+)` \|", configuration, re.M))
    missing = sorted(name for name in names if name not in table_rows)
    assert missing == [], "settings without a row in docs/configuration.md"


def test_every_api_path_is_in_the_api_page(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}"))
    paths = {route.path for route in app.routes if route.path.startswith("/v1/")}
    documented = {re.sub(r"\{(\w+):\w+\}", r"{\1}", p) for p in paths}
    api_paths = set(re.findall(r"`(?:GET|POST|PATCH|DELETE) (/v1/[^`\s?]+)`", page("api.md")))
    normalise = lambda p: re.sub(r"\{[^}]+\}", "{}", p)  # noqa: E731
    missing = sorted(p for p in documented if normalise(p) not in {normalise(r) for r in api_paths})
    assert missing == []


def test_every_command_is_in_the_command_line_page() -> None:
    cli = page("cli.md")
    for command in (
        "serve",
        "keys create",
        "keys list",
        "keys revoke",
        "keys rotate",
        "users create",
        "users update",
        "users signout",
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
        assert f"`approvals {command}" in cli, command


def test_the_readme_is_a_front_page() -> None:
    text = README.read_text()
    lines = text.count("\n")
    assert lines < README_MAX_LINES, f"README.md has {lines} lines"
    assert "make run" in text and "make test" in text
    assert "docs/configuration.md" in text


# Markdown outside code: inline links and images, reference definitions, autolinks.
FENCE = re.compile(r"^(```|~~~).*?^\1\s*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
AUTOLINK = re.compile(r"<((?:[a-zA-Z][a-zA-Z0-9+.-]*:|www\.)[^>\s]*)>")
HTML_LINK = re.compile(r"""(?:href|src)\s*=\s*["']([^"']+)["']""")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^//")


def link_targets(text: str) -> list[str]:
    prose = CODE_SPAN.sub("", FENCE.sub("", text))
    targets = INLINE_LINK.findall(prose) + REFERENCE.findall(prose)
    return targets + AUTOLINK.findall(prose) + HTML_LINK.findall(prose)


def test_link_targets_are_found() -> None:
    sample = (
        "[a](docs/api.md) ![b](docs/inbox.png) [c](#x) <https://example.com>\n"
        '[d](../x.md "title") `[not](a-link.md)`\n```\n[nor](this.md)\n```\n[e]: ref.md\n'
    )
    assert link_targets(sample) == [
        "docs/api.md",
        "docs/inbox.png",
        "#x",
        "../x.md",
        "ref.md",
        "https://example.com",
    ]


@pytest.mark.parametrize("document", [README, *PAGES], ids=lambda p: str(p.relative_to(ROOT)))
def test_no_link_leaves_the_repository(document: Path) -> None:
    text = document.read_text()
    problems = []
    for target in link_targets(text):
        if not target:
            problems.append("an empty link")
        elif target.startswith("#"):
            continue
        elif SCHEME.match(target) or target.startswith("/"):
            problems.append(f"{target}: not a relative path inside the repository")
        else:
            path = target.split("#", 1)[0].split("?", 1)[0]
            resolved = (document.parent / path).resolve()
            if not resolved.is_relative_to(ROOT):
                problems.append(f"{target}: outside the repository")
            elif not resolved.exists():
                problems.append(f"{target}: no such file")
    assert problems == []
    # The contract lives in these pages; nothing points at a document elsewhere.
    assert "SPEC.md" not in text and "shared/" not in text


def test_the_site_builds_in_strict_mode(tmp_path: Path) -> None:
    for module in ("mkdocs", "material"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(
                f"{module} is not installed: pip install -e '.[docs]' to build the docs site"
            )
    site = tmp_path / "site"
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet"]
    result = subprocess.run(
        [*command, "-f", str(ROOT / "mkdocs.yml"), "-d", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (site / "index.html").exists()
    assert (site / "configuration.html").exists()
