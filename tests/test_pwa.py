"""The installable app: manifest, icons, the service worker (shell only, never data), offline,
Web Push notifications, and the request page laid out for a 375 px phone first."""

from __future__ import annotations

import json
import re
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import test_browser
from test_browser import PASSWORD, request

from approvals.dashboard import shell
from conftest import Database, Server, until

browser = test_browser.browser  # the module's Chromium and the two-reviewer site
site = test_browser.site
ROOT = Path(__file__).resolve().parent.parent
PHONE = {"width": 375, "height": 667}
# Resolves once the worker is active and has finished activating; its scope and script.
READY = """async () => {
  const registration = await navigator.serviceWorker.ready;
  const worker = registration.active;
  if (worker.state !== "activated") {
    await new Promise((done) => worker.addEventListener("statechange", () => {
      if (worker.state === "activated") done();
    }));
  }
  return {scope: registration.scope, script: worker.scriptURL, state: worker.state};
}"""
# Every URL in the Cache Storage, whatever the cache.
CACHED = """async () => {
  const urls = [];
  for (const name of await caches.keys()) {
    for (const kept of await (await caches.open(name)).keys()) urls.push(kept.url);
  }
  return urls;
}"""
NOTIFICATIONS = """async () => (await (await navigator.serviceWorker.ready).getNotifications())
  .map((n) => ({title: n.title, body: n.body, tag: n.tag, data: n.data,
                renotify: n.renotify, silent: n.silent, actions: n.actions.map((a) => a.title)}))"""


def needs_chromium(test: Callable[..., None]) -> Callable[..., None]:
    """A browser test: skipped, saying why, when APPROVALS_TEST_CHROMIUM names no Chromium."""
    for mark in reversed(test_browser.pytestmark):
        test = mark(test)
    return test


def png_size(data: bytes) -> tuple[int, int]:
    """The width and height a PNG's header declares."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def css_colour(name: str, dark: bool = False) -> str:
    """A colour variable as static/app.css sets it (the light theme, or the dark one)."""
    css = (ROOT / "static" / "app.css").read_text()
    if dark:
        css = css[css.index("@media (prefers-color-scheme: dark)") :]
    found = re.search(rf"{re.escape(name)}:\s*(#[0-9a-fA-F]{{6}})", css)
    assert found, name
    return found.group(1).lower()


@pytest.fixture
def served(sqlite_database: Database, make_server: Callable[..., Server]) -> Server:
    return make_server(sqlite_database)


def test_the_manifest_describes_an_installable_app(served: Server) -> None:
    with served.client() as http:
        answer = http.get("/manifest.webmanifest")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("application/manifest+json")
        manifest = answer.json()
        assert manifest["name"] == "Approvals" and manifest["short_name"] == "Approvals"
        assert manifest["start_url"] == "/" and manifest["scope"] == "/"
        assert manifest["display"] == "standalone"
        # The colours are the stylesheet's: the top bar and the page's background.
        assert manifest["theme_color"] == css_colour("--top-bg")
        assert manifest["background_color"] == css_colour("--bg")
        purposes: dict[str, set[str]] = {}
        for icon in manifest["icons"]:
            got = http.get(icon["src"])
            assert got.status_code == 200, icon["src"]
            assert got.headers["content-type"].startswith(icon["type"]), icon["src"]
            purposes.setdefault(icon["sizes"], set()).add(icon["purpose"])
            if icon["type"] == "image/png":
                width, height = png_size(got.content)
                assert f"{width}x{height}" == icon["sizes"], icon["src"]
        assert "any" in purposes["192x192"] and "any" in purposes["512x512"]
        assert "maskable" in purposes["512x512"]
        # The page names the manifest, both theme colours and an icon for iOS.
        login = http.get("/login").text
    assert '<link rel="manifest" href="/manifest.webmanifest">' in login
    for scheme, colour in (
        ("light", css_colour("--top-bg")),
        ("dark", css_colour("--top-bg", True)),
    ):
        meta = (
            f'<meta name="theme-color" content="{colour}" media="(prefers-color-scheme: {scheme})">'
        )
        assert meta in login, scheme
    touch = re.search(r'<link rel="apple-touch-icon" href="([^"]+)">', login)
    assert touch
    with served.client() as http:
        assert png_size(http.get(touch.group(1)).content) == (180, 180)


def test_the_worker_is_served_at_the_root_with_its_shell(served: Server) -> None:
    with served.client() as http:
        answer = http.get("/sw.js")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/javascript")
        assert answer.headers["cache-control"] == "no-cache"
        csp = answer.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe" not in csp  # as strict as everywhere
        source = answer.text
        assert "__VERSION__" not in source and "__SHELL__" not in source
        version = re.search(r'const VERSION = "([0-9a-f]{16})";', source)
        assert version and version.group(1) == shell.version()
        listed = re.search(r"const SHELL = (\[.*?\]);", source)
        assert listed and json.loads(listed.group(1)) == list(shell.SHELL)
        # Every file of the shell answers without a session (the worker fetches them at install).
        for url in shell.SHELL:
            assert http.get(url).status_code == 200, url
        offline = http.get("/offline").text
        login = http.get("/login").text
    # The offline page is the same for everyone: no reviewer, no CSRF token, no request.
    assert "You are offline" in offline and "Sign out" not in offline
    assert '"X-CSRF-Token": ""' in offline
    # Whatever a page loads from /static/ is in the shell (so it works offline).
    loaded = set(re.findall(r'(?:src|href)="(/static/[^"]+)"', login))
    approval = (ROOT / "templates" / "approval.html").read_text()
    loaded |= set(re.findall(r'src="(/static/[^"]+)"', approval))
    assert loaded and loaded <= set(shell.SHELL)


def test_the_worker_version_changes_with_any_static_file(tmp_path: Path) -> None:
    (tmp_path / "vendor").mkdir()
    (tmp_path / "app.css").write_text("body {}")
    (tmp_path / "vendor" / "lib.js").write_text("1")
    (tmp_path / "sw.js").write_text(
        'const VERSION = "__VERSION__";\nconst SHELL = ["__SHELL__"];\n'
    )
    first = shell.version(tmp_path)
    assert shell.version(tmp_path) == first
    (tmp_path / "vendor" / "lib.js").write_text("2")
    second = shell.version(tmp_path)
    assert second != first
    assert f'const VERSION = "{second}";' in shell.worker_source(tmp_path)
    (tmp_path / "sw.js").write_text("const VERSION = 1;")
    with pytest.raises(RuntimeError, match="marker"):
        shell.worker_source(tmp_path)


def sign_in(browser: Any, server: Server, name: str, **options: Any) -> Any:
    """A page signed in as ``name`` (the worker installed and controlling it)."""
    context = browser.new_context(**{"viewport": {"width": 1200, "height": 800}, **options})
    page = context.new_page()
    page.goto(server.base + "/login")
    ready = page.evaluate(READY)
    assert ready["scope"] == server.base + "/" and ready["state"] == "activated"
    assert ready["script"] == server.base + "/sw.js"
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(server.base + "/")
    page.wait_for_function("Boolean(navigator.serviceWorker.controller)")
    return page


def decide(server: Server, approval_id: str, decision: str = "approve") -> None:
    """Decide through the API, as carol."""
    key = server.db.key("approvals:resolve", name=f"carol-{time.monotonic_ns()}")
    with server.client(key) as http:
        http.post(
            f"/v1/approvals/{approval_id}/decision", json={"decision": decision}
        ).raise_for_status()


@needs_chromium
def test_the_worker_never_keeps_or_serves_a_page_with_data_or_an_api_answer(
    browser: Any, site: Server
) -> None:
    made = request(site, title="Refund $129?", detail={"tool": "refund", "arguments": {"usd": 129}})
    page = sign_in(browser, site, "alice")
    try:
        page.goto(f"{site.base}/approvals/{made['id']}")
        assert page.evaluate("Boolean(navigator.serviceWorker.controller)")
        assert page.get_by_role("button", name="Approve").is_enabled()
        page.goto(site.base + "/")
        page.locator(f"#approval-{made['id']}").wait_for(timeout=10_000)
        for path in ("/history", "/events", "/grants"):
            page.goto(site.base + path)
        # The API from the page, through the worker.
        reader = site.db.key("approvals:read", "events:read", name="reader")
        statuses = page.evaluate(
            """async ([id, key]) => Promise.all(
                [`/v1/approvals/${id}`, "/v1/approvals?status=pending", "/v1/events?limit=5"]
                .map(async (url) => (await fetch(url, {headers: {Authorization: "Bearer " + key}}))
                .status))""",
            [made["id"], reader],
        )
        assert statuses == [200, 200, 200]
        page.goto(site.base + "/")
        page.locator(f"#approval-{made['id']}").wait_for(timeout=10_000)
        decide(site, made["id"])  # decided elsewhere while the inbox is open

        # A data page visited online and asked again is the state now, not a kept copy (the
        # document as it arrived, before the live stream could change anything).
        again = page.reload()
        assert again is not None and again.status == 200
        assert f'id="approval-{made["id"]}"' not in again.text()
        assert page.locator(f"#approval-{made['id']}").count() == 0
        again = page.goto(f"{site.base}/approvals/{made['id']}")
        assert again is not None and "Approved by <strong>carol" in again.text()
        assert page.evaluate("Boolean(navigator.serviceWorker.controller)")
        assert page.get_by_role("button", name="Approve").is_disabled()

        cached = page.evaluate(CACHED)
        paths = {urlsplit(url).path for url in cached}
        assert set(shell.SHELL) <= paths  # the shell, all of it
        assert all(p.startswith("/static/") or p == shell.OFFLINE for p in paths), paths
        for never in ("/v1/", "/approvals/", "/history", "/events", "/grants", "/dashboard/"):
            assert not any(never in url for url in cached), never
        assert "/" not in paths and "/login" not in paths
    finally:
        page.context.close()


@needs_chromium
def test_offline_a_page_shows_the_offline_page_then_comes_back(browser: Any, site: Server) -> None:
    made = request(site, title="Rotate the API keys", detail={"tool": "rotate_keys"})
    page = sign_in(browser, site, "alice")
    context = page.context
    try:
        page.goto(f"{site.base}/approvals/{made['id']}")
        page.get_by_role("heading", name="Rotate the API keys").wait_for()
        context.set_offline(True)
        page.goto(f"{site.base}/approvals/{made['id']}")
        page.get_by_role("heading", name="You are offline").wait_for()
        assert page.url == f"{site.base}/approvals/{made['id']}"  # the page asked for
        assert "Rotate the API keys" not in page.content()  # no copy of it was kept
        assert page.get_by_role("link", name="Try again").is_visible()
        # Styled from the cache: the top bar has the stylesheet's colour.
        top = page.evaluate("getComputedStyle(document.querySelector('.top')).backgroundColor")
        assert top == "rgb(23, 32, 42)"
        context.set_offline(False)  # the page tries again by itself
        page.get_by_role("heading", name="Rotate the API keys").wait_for(timeout=10_000)
    finally:
        context.close()


@needs_chromium
def test_pushes_show_notifications_and_a_decision_elsewhere_replaces_them(
    browser: Any, site: Server
) -> None:
    context = browser.new_context()
    context.grant_permissions(["notifications"], origin=site.base)
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    registrations: dict[str, str] = {}
    cdp.on(
        "ServiceWorker.workerRegistrationUpdated",
        lambda event: registrations.update(
            {r["scopeURL"]: r["registrationId"] for r in event["registrations"]}
        ),
    )
    cdp.send("ServiceWorker.enable")
    try:
        page.goto(site.base + "/login")
        page.evaluate(READY)
        registration = until(lambda: registrations.get(site.base + "/"), what="registration")

        def push(payload: dict[str, Any]) -> None:
            cdp.send(
                "ServiceWorker.deliverPushMessage",
                {"origin": site.base, "registrationId": registration, "data": json.dumps(payload)},
            )

        url = f"{site.base}/approvals/apr_1"
        push(
            {
                "title": "Refund 129 USD to cus_81f3",
                "body": "billing-bot · 15m left",
                "url": url,
                "tag": "apr_1",
                "actions": [
                    {"action": "approve", "title": "Approve", "url": url + "/confirm?d=approve"},
                    {"action": "reject", "title": "Reject", "url": url + "/confirm?d=reject"},
                ],
                "decided": False,
            }
        )
        shown = until(lambda: page.evaluate(NOTIFICATIONS), what="a notification")
        assert shown == [
            {
                "title": "Refund 129 USD to cus_81f3",
                "body": "billing-bot · 15m left",
                "tag": "apr_1",
                "data": {
                    "url": url,
                    "actions": {
                        "approve": url + "/confirm?d=approve",
                        "reject": url + "/confirm?d=reject",
                    },
                },
                "renotify": True,
                "silent": False,
                "actions": ["Approve", "Reject"],
            }
        ]
        push(
            {"title": "Refund 129 USD", "body": "Approved by bob", "tag": "apr_1", "decided": True}
        )
        until(
            lambda: [n["title"] for n in page.evaluate(NOTIFICATIONS)] == ["Decided elsewhere"],
            what="the decided note",
        )
        (note,) = page.evaluate(NOTIFICATIONS)
        assert note["body"] == "Approved by bob" and note["tag"] == "apr_1"
        assert note["renotify"] is False and note["silent"] is True and note["actions"] == []

        # Where a click goes: the action's url, else the push's; an open window is reused.
        worker = context.service_workers[0]
        data = {"url": url, "actions": {"approve": url + "/confirm?d=approve"}}
        goes = "([data, action]) => target({data}, action)"
        assert worker.evaluate(goes, [data, "approve"]) == url + "/confirm?d=approve"
        assert worker.evaluate(goes, [data, ""]) == url
        assert worker.evaluate(goes, [data, "unknown"]) == url
        assert worker.evaluate(goes, [{"url": "javascript:alert(1)"}, ""]) == site.base + "/"
        found = worker.evaluate("async (href) => (await windowAt(href))?.url ?? null", page.url)
        assert found == page.url
        assert worker.evaluate("async (href) => windowAt(href)", url) is None
    finally:
        context.close()


@needs_chromium
def test_a_request_fits_a_phone_screen_and_keeps_two_columns_on_a_desktop(
    browser: Any, site: Server
) -> None:
    admin = site.db.key("admin", name="ops")
    with site.client(admin) as http:
        http.post(
            "/v1/policies",
            json={
                "tool": "issue_refund",
                "action": "require",
                "display": "Refund {{ arguments.amount }} USD to {{ arguments.customer }}",
                "redact": ["card.number"],
            },
        ).raise_for_status()
    made = request(
        site,
        title="Refund a customer?",
        agentId="billing-bot",
        timeoutSeconds=900,
        detail={
            "tool": "issue_refund",
            "arguments": {
                "amount": 129,
                "customer": "cus_81f3",
                "reason": "duplicate charge",
                "card": {"number": "4242424242424242", "exp": "12/29"},
            },
            "description": "The customer was **charged twice** for order 5521.",
        },
    )
    page = sign_in(browser, site, "alice", viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        page.goto(f"{site.base}/approvals/{made['id']}")
        headline = page.get_by_role("heading", level=1)
        arguments = page.locator("pre.arguments")
        approve = page.get_by_role("button", name="Approve", exact=True)
        reject = page.get_by_role("button", name="Reject", exact=True)
        left = page.locator(".request .due")
        requester = page.locator(".request .byline")
        assert headline.inner_text() == "Refund 129 USD to cus_81f3"  # the policy's display
        assert '"[redacted]"' in arguments.inner_text() and "4242424242424242" not in page.content()
        assert "agent-" in requester.inner_text() and "billing-bot" in requester.inner_text()
        assert re.fullmatch(r"1[45]m left", left.inner_text())
        assert page.evaluate("window.scrollY") == 0
        for name, part in [
            ("headline", headline),
            ("requester", requester),
            ("arguments", arguments),
            ("time left", left),
            ("Approve", approve),
            ("Reject", reject),
        ]:
            box = part.bounding_box()
            assert box is not None, name
            assert box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"], (name, box)
            assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (name, box)
        # The buttons are not hidden behind anything: a tap there reaches them.
        for button in (approve, reject):
            box = button.bounding_box()
            assert box is not None
            hit = page.evaluate(
                "([x, y]) => document.elementFromPoint(x, y).textContent.trim()",
                [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2],
            )
            assert hit == button.inner_text()
        # The rest comes after the first screen: the claim and assign box, the details.
        for secondary in ("Claim", "Assign"):
            box = page.get_by_role("button", name=secondary, exact=True).bounding_box()
            assert box is not None and box["y"] >= PHONE["height"], secondary
        for later in (".about .facts", ".timeline"):
            box = page.locator(later).bounding_box()
            assert box is not None and box["y"] >= PHONE["height"], later
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        # The answer box opens when asked for.
        opener = page.get_by_role("button", name="Answer…")
        answer = page.get_by_label("Answer the agent")
        assert answer.is_hidden() and opener.get_attribute("aria-expanded") == "false"
        opener.click()
        assert answer.is_visible() and opener.get_attribute("aria-expanded") == "true"
        assert page.evaluate("document.activeElement.name") == "answer"

        page.set_viewport_size({"width": 1280, "height": 800})
        page.reload()
        request_box = page.locator(".card.request").bounding_box()
        decision_box = page.locator(f"#decision-{made['id']}").bounding_box()
        about_box = page.locator(".card.about").bounding_box()
        assert request_box and decision_box and about_box
        assert decision_box["x"] >= request_box["x"] + request_box["width"]  # side by side
        assert abs(decision_box["y"] - request_box["y"]) < 1
        assert about_box["x"] == request_box["x"]  # under the request, left of the decision
        assert about_box["y"] - (request_box["y"] + request_box["height"]) < 40
        box = page.get_by_role("button", name="Approve", exact=True).bounding_box()
        assert box is not None and box["y"] + box["height"] <= 800
    finally:
        page.context.close()


@needs_chromium
def test_on_a_phone_the_first_request_comes_before_the_inbox_tools(
    browser: Any, site: Server
) -> None:
    for n in range(3):
        request(site, title=f"Rotate key {n}?", detail={"tool": "rotate_key"})
    page = sign_in(browser, site, "alice", viewport={"width": 375, "height": 667})
    try:
        page.goto(site.base + "/")
        first = page.locator("article.row").first
        first.get_by_role("button", name="Approve").wait_for(timeout=10_000)
        box = first.get_by_role("button", name="Approve").bounding_box()
        assert box is not None and box["y"] + box["height"] <= 667, box
        assert not page.locator("form.filters").is_visible()
        assert not page.get_by_role("button", name="Approve selected").is_visible()
        toggle = page.get_by_role("button", name="Filters and batch")
        toggle.click()
        assert toggle.get_attribute("aria-expanded") == "true"
        page.get_by_role("button", name="Approve selected").wait_for(timeout=5_000)
        assert page.locator("form.filters").is_visible()
    finally:
        page.context.close()
    desk = sign_in(browser, site, "alice")
    try:  # on a desktop the tools are simply there, and the toggle is not
        desk.goto(site.base + "/")
        assert desk.locator("form.filters").is_visible()
        assert not desk.get_by_role("button", name="Filters and batch").is_visible()
    finally:
        desk.context.close()


@needs_chromium
def test_a_request_that_only_asks_for_an_answer_shows_the_box_at_once(
    browser: Any, site: Server
) -> None:
    key = site.db.key("events:write", name="lg")
    with site.client(key) as http:
        answer = http.post(
            "/v1/events",
            json=[
                {
                    "action_request": {"action": "ask_user", "args": {"q": "which table?"}},
                    "config": {
                        "allow_accept": False,
                        "allow_ignore": False,
                        "allow_respond": True,
                    },
                    "description": "Which table should I clean?",
                    "runId": "run_1",
                }
            ],
        )
    assert answer.status_code == 201, answer.text
    ask = answer.json()[0]["approvalId"]
    page = sign_in(browser, site, "alice", viewport=PHONE)
    try:
        page.goto(f"{site.base}/approvals/{ask}")
        assert page.get_by_role("button", name="Answer…").count() == 0
        field = page.get_by_label("Answer the agent")
        assert field.is_visible()
        box = field.bounding_box()
        assert box is not None and box["y"] + box["height"] <= PHONE["height"]
    finally:
        page.context.close()


def test_no_route_of_the_shell_needs_a_session(served: Server) -> None:
    with httpx.Client(base_url=served.base, follow_redirects=False) as http:
        for path in ("/sw.js", "/manifest.webmanifest", "/offline"):
            assert http.get(path).status_code == 200, path
        assert http.get("/").status_code == 303  # a page with data still asks to sign in
