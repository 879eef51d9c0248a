"""The dashboard in a real headless Chromium (Debian's), driven by Playwright."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Database, Server

CHROMIUM = os.environ.get("APPROVALS_TEST_CHROMIUM", "")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM or not Path(CHROMIUM).exists(),
        reason="APPROVALS_TEST_CHROMIUM does not name a Chromium binary (apt-get install chromium)",
    ),
]
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
PASSWORD = "correct horse battery"
DOCS = Path(__file__).resolve().parent.parent / "docs"
# The docs' screenshots are refreshed only when asked (APPROVALS_UPDATE_SCREENSHOTS=1), so a
# test run leaves the tree as it found it.
SHOTS = DOCS if os.environ.get("APPROVALS_UPDATE_SCREENSHOTS") == "1" else None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def site(sqlite_database: Database, make_server: Callable[..., Server]) -> Server:
    server = make_server(sqlite_database, approvals_keepalive_seconds="2")
    for name in ("alice", "bob"):
        subprocess.run(
            [sys.executable, "-m", "approvals", "users", "create", name, "--password-stdin"],
            input=PASSWORD + "\n",
            text=True,
            check=True,
            capture_output=True,
            env={**os.environ, "APPROVALS_DATABASE_URL": sqlite_database.url},
        )
    return server


def signed_in(browser: Any, server: Server, name: str) -> Any:
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    page.goto(server.base + "/login")
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(server.base + "/")
    page.wait_for_timeout(300)  # let the inbox stream connect
    return page


def request(server: Server, **body: Any) -> dict[str, Any]:
    key = server.db.key("events:write", name=f"agent-{time.monotonic_ns()}")
    with server.client(key) as http:
        answer = http.post("/v1/approvals", json={"runId": "run_1", **body})
    assert answer.status_code == 201
    return dict(answer.json())


def test_sign_in_with_a_wrong_then_the_right_password(browser: Any, site: Server) -> None:
    page = browser.new_page()
    page.goto(site.base + "/")
    assert page.url.startswith(site.base + "/login")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text() == "Wrong username or password."
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(site.base + "/")
    assert page.get_by_role("heading", name="Pending approvals").is_visible()
    page.close()


def test_two_reviewers_see_requests_and_decisions_live(browser: Any, site: Server) -> None:
    alice = signed_in(browser, site, "alice")
    bob = signed_in(browser, site, "bob")
    bob_detail = None
    try:
        approval = request(
            site,
            title="About to post 5 ads to Meta. Approve?",
            detail={"tool": "post_ads", "arguments": {"count": 5}},
        )
        row = f"#approval-{approval['id']}"
        for page in (alice, bob):
            page.wait_for_selector(row, timeout=10_000)  # no reload
        bob_detail = bob.context.new_page()
        bob_detail.goto(f"{site.base}/approvals/{approval['id']}")
        bob_detail.wait_for_timeout(1000)  # let its stream connect
        assert bob_detail.get_by_role("button", name="Approve").is_enabled()
        alice.locator(row).get_by_role("button", name="Approve").click()
        # A one-click decision waits 5 s with an Undo (tests/test_undo.py), then is sent.
        alice.locator(row).get_by_text("Approving…").wait_for(timeout=5000)
        assert bob.locator(row).is_visible()
        bob.wait_for_selector(row, state="detached", timeout=15_000)
        outcome = bob_detail.locator(f"#decision-{approval['id']} .outcome")
        outcome.wait_for(timeout=10_000)
        assert "Approved by alice" in outcome.inner_text()
        assert bob_detail.get_by_role("button", name="Approve").is_disabled()
        alice.wait_for_selector(row, state="detached", timeout=10_000)
    finally:
        for page in (alice, bob, bob_detail):
            if page is not None:
                page.context.close() if page in (alice, bob) else page.close()


def test_the_inbox_is_live_when_the_sse_extension_arrives_late(browser: Any, site: Server) -> None:
    # On a slow network the extension's script can arrive after htmx is ready to start; the
    # page must still open its live stream (it once lost the race and stayed static). No
    # service worker: it would serve the script from its cache, ahead of the delay.
    context = browser.new_context(viewport={"width": 1200, "height": 800}, service_workers="block")

    def late(route: Any) -> None:
        time.sleep(0.4)
        route.continue_()

    context.route("**/static/vendor/hx-sse-*.js", late)
    page = context.new_page()
    try:
        page.goto(site.base + "/login")
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(site.base + "/")
        made = request(site, title="Arrives while the page is open", detail={"tool": "late"})
        page.locator(f"#approval-{made['id']}").wait_for(timeout=10_000)  # no reload
    finally:
        context.close()


def test_reject_with_a_reason_reaches_the_resolution_event(browser: Any, site: Server) -> None:
    approval = request(
        site, title="Refund $129?", detail={"tool": "issue_refund", "arguments": {"usd": 129}}
    )
    page = signed_in(browser, site, "alice")
    try:
        page.goto(f"{site.base}/approvals/{approval['id']}")
        page.get_by_label("Comment or reason (sent to the agent)").fill(
            "Refunds over $100 need finance"
        )
        page.get_by_role("button", name="Reject").click()
        page.locator(".outcome").wait_for(timeout=10_000)
        assert "Rejected by alice" in page.locator(".outcome").inner_text()
    finally:
        page.context.close()
    reader = site.db.key("approvals:read", "events:read", name="reader")
    with site.client(reader) as http:
        resolved = http.get(f"/v1/approvals/{approval['id']}").json()
    assert resolved["resolvedBy"] == "alice"
    assert resolved["resolution"]["type"] == "approval.resolved"
    assert resolved["resolution"]["detail"]["comment"] == "Refunds over $100 need finance"


def test_agent_payloads_render_as_text(browser: Any, site: Server) -> None:
    script, image = "<script>alert(1)</script>", "<img src=x onerror=alert(1)>"
    page = signed_in(browser, site, "alice")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    try:
        approval = request(
            site,
            title=f"{script} live",
            agentId=image,
            detail={"tool": image, "arguments": {"html": script}},
        )
        page.wait_for_selector(f"#approval-{approval['id']}", timeout=10_000)
        assert script in page.locator(f"#approval-{approval['id']} .title").inner_text()
        page.goto(f"{site.base}/approvals/{approval['id']}")
        assert script in page.locator("h1").inner_text()
        assert image in page.locator(".facts").inner_text()
        page.wait_for_timeout(300)
        assert dialogs == []
        assert page.locator("img[src=x]").count() == 0
    finally:
        page.context.close()


def test_keyboard_approves_only_the_selected_row(browser: Any, site: Server) -> None:
    first = request(site, title="First request")
    second = request(site, title="Second request")
    page = signed_in(browser, site, "alice")
    try:
        page.keyboard.press("a")  # nothing selected: nothing happens
        page.wait_for_timeout(300)
        page.keyboard.press("j")  # the newest (second) row
        page.keyboard.press("j")  # then the first
        page.keyboard.press("a")
        page.locator(f"#approval-{first['id']}").get_by_text("Approving…").wait_for(timeout=5000)
        # sent after its 5 s undo window
        page.wait_for_selector(f"#approval-{first['id']}", state="detached", timeout=15_000)
        assert page.locator(f"#approval-{second['id']}").is_visible()
        assert page.get_by_text("approve", exact=False).first.is_visible()  # the visible hint
    finally:
        page.context.close()
    reader = site.db.key("approvals:read", name="reader2")
    with site.client(reader) as http:
        assert http.get(f"/v1/approvals/{first['id']}").json()["status"] == "approved"
        assert http.get(f"/v1/approvals/{second['id']}").json()["status"] == "pending"


def test_reconnect_after_a_restart_shows_requests_made_while_down(
    browser: Any, site: Server, make_server: Callable[..., Server]
) -> None:
    page = signed_in(browser, site, "alice")
    try:
        site.stop()
        other = make_server(site.db)  # another process on the same database
        made = request(other, title="Made while the first server was down")
        other.stop()
        site.start()  # same port: the page's stream reconnects with Last-Event-ID
        page.wait_for_selector(f"#approval-{made['id']}", timeout=30000)
    finally:
        page.context.close()


def test_demo_fills_the_inbox_and_a_screenshot_is_saved(
    browser: Any, site: Server, tmp_path: Path
) -> None:
    key = site.db.key("events:write", name="demo")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "approvals",
            "demo",
            "--url",
            site.base,
            "--key",
            key,
            "--runs",
            "4",
            "--pace",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    page = signed_in(browser, site, "alice")
    try:
        assert page.locator("article.row").count() == 4
        assert "post_ads" in page.locator("#inbox").inner_text()
        shots = SHOTS or tmp_path
        page.screenshot(path=str(shots / "inbox.png"))
        page.locator("article.row a.title").first.click()
        page.get_by_role("heading", name="Decision").wait_for(timeout=5000)
        page.screenshot(path=str(shots / "request.png"), full_page=True)
        request_url = page.url
    finally:
        page.context.close()
    phone = signed_in(browser, site, "alice")
    try:  # the same request on a phone: what is asked and the buttons on the first screen
        phone.set_viewport_size({"width": 375, "height": 667})
        phone.goto(request_url)
        phone.get_by_role("button", name="Approve").first.wait_for(timeout=5000)
        phone.screenshot(path=str(shots / "phone.png"))
    finally:
        phone.context.close()
    with httpx.Client() as http:
        assert http.get(site.base + "/static/vendor/htmx-4.0.1.min.js").status_code == 200
