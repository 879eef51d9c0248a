"""The API reference at /docs renders in Debian's Chromium under the service's CSP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import test_browser

from conftest import Database, Server

pytestmark = test_browser.pytestmark  # skipped, saying why, without APPROVALS_TEST_CHROMIUM
browser = test_browser.browser  # the same Debian Chromium, launched once per module


def test_docs_render_every_operation_without_csp_violations(
    browser: Any, sqlite_database: Database, make_server: Callable[..., Server]
) -> None:
    server = make_server(sqlite_database)
    page = browser.new_page()
    try:
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
        requested: list[str] = []
        page.on("request", lambda r: requested.append(r.url))
        page.goto(server.base + "/docs", wait_until="load")
        page.wait_for_selector(".opblock", timeout=30_000)
        blocks = page.locator(".opblock")
        assert blocks.count() >= 26
        text = page.locator("#reference").inner_text()
        for operation in ("/v1/events", "/v1/approvals/{approval_id}/decision", "/v1/sources"):
            assert operation in text
        page.locator(
            ".opblock-summary", has_text="/v1/approvals/{approval_id}/decision"
        ).first.click()
        page.wait_for_selector("text=DecisionIn", timeout=10_000)
        assert page.get_by_role("button", name="Authorize").count() == 1
        assert not [p for p in problems if "Content Security Policy" in p], problems
        assert not problems, problems
        assert all(url.startswith(server.base) for url in requested), requested
    finally:
        page.close()
