"""Undo, risk and density in the inbox: one-click and one-key decisions wait 5 s with an Undo,
high-risk requests never go on one key, the policy's ``risk`` over the API, ten rows and more
at 1280x900, and the time-left rule (amber only in the last fifth)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
import test_browser
from test_browser import PASSWORD, request, signed_in
from test_dashboard import add_user, sign_in
from test_desk_browser import axe_violations, fetch, policy

from approvals.core.clock import iso, parse_iso
from approvals.views.render import due
from conftest import Server, until

F = TypeVar("F", bound=Callable[..., Any])
browser = test_browser.browser  # the module's Chromium and the two-reviewer site
site = test_browser.site
UNDO = 5  # seconds a one-click or one-key decision waits before it is sent
AFTER = 7  # long enough that a decision held for UNDO would have been sent


def in_browser(test: F) -> F:
    """Mark a test that drives Chromium (skipped, saying why, without APPROVALS_TEST_CHROMIUM)."""
    for mark in reversed(test_browser.pytestmark):
        test = mark(test)
    return test


# The time-left rule (approvals/views/render.py ``due``), checked directly.

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def tone(minutes_window: float, minutes_in: float) -> str:
    created, expires = iso(T0), iso(T0 + timedelta(minutes=minutes_window))
    return due(created, expires, now=T0 + timedelta(minutes=minutes_in)).tone


def test_amber_only_in_the_last_fifth_and_red_near_or_past_the_deadline() -> None:
    # 100 minutes to decide: plain for the first 80, amber for the last 20, red for the last 2.
    assert tone(100, 0) == ""
    assert tone(100, 50) == ""
    assert tone(100, 79.9) == ""
    assert tone(100, 80) == "warn"
    assert tone(100, 97.9) == "warn"
    assert tone(100, 98) == "soon"
    assert tone(100, 100) == "soon"
    assert tone(100, 300) == "soon"  # passed
    # A day to decide: amber for its last 4.8 hours only.
    assert tone(24 * 60, 12 * 60) == ""
    assert tone(24 * 60, 24 * 60 - 289) == ""
    assert tone(24 * 60, 24 * 60 - 288) == "warn"
    # A short window: red comes before amber would, and wins.
    assert tone(5, 2.9) == ""
    assert tone(5, 3) == "soon"
    marks = due(iso(T0), iso(T0 + timedelta(minutes=100)), now=T0)
    assert parse_iso(marks.warn_at) == T0 + timedelta(minutes=80)
    assert parse_iso(marks.soon_at) == T0 + timedelta(minutes=98)


def test_a_rendered_row_is_amber_only_in_its_last_fifth(
    sqlite_database: Any, make_server: Callable[..., Server]
) -> None:
    server = make_server(sqlite_database)
    add_user(server.db, "alice")
    fresh = request(server, title="Ten minutes to decide", timeoutSeconds=600)
    late = request(server, title="Ten minutes left of an hour", timeoutSeconds=600)
    calm = request(server, title="No deadline")
    # Asked 50 minutes ago with 10 minutes left: in the last fifth of its hour, not yet red.
    server.db.execute(
        "UPDATE approvals SET created_at = :at WHERE id = :id",
        at=iso(datetime.now(UTC) - timedelta(minutes=50)),
        id=late["id"],
    )
    http, _ = sign_in(server, "alice")
    try:
        html = http.get("/").text
    finally:
        http.close()

    def classes(approval: dict[str, Any]) -> str | None:
        row = re.search(rf'<article[^>]*id="approval-{approval["id"]}".*?</article>', html, re.S)
        assert row, f"no row for {approval['id']}"
        found = re.search(r'<span class="(due[^"]*)"', row.group(0))
        return found.group(1) if found else None

    assert classes(fresh) == "due"  # 10 minutes of 10 left: not amber
    assert classes(late) == "due warn"
    assert classes(calm) is None


# The policy's ``risk`` over the API, on both databases.


def test_risk_is_accepted_stored_and_copied_onto_approvals(server: Server) -> None:
    admin = server.db.key("admin", name="ops")
    agent = server.db.key("events:write", name="agent")
    reader = server.db.key("approvals:read", name="reader")
    with server.client(admin) as http:
        created = http.post(
            "/v1/policies", json={"tool": "wire_money", "action": "require", "risk": "high"}
        )
        assert created.status_code == 201, created.text
        assert created.json()["risk"] == "high"
        plain = http.post("/v1/policies", json={"tool": "read_file", "action": "require"})
        assert plain.status_code == 201 and plain.json()["risk"] == "normal"
        listed = {p["tool"]: p["risk"] for p in http.get("/v1/policies").json()["policies"]}
        assert listed == {"wire_money": "high", "read_file": "normal"}
    with server.client(agent) as http:
        wire = http.post(
            "/v1/approvals", json={"title": "Wire $40,000", "detail": {"tool": "wire_money"}}
        ).json()
        other = http.post("/v1/approvals", json={"title": "Anything else"}).json()
    assert wire["risk"] == "high" and other["risk"] == "normal"
    with server.client(reader) as http:
        assert http.get(f"/v1/approvals/{wire['id']}").json()["risk"] == "high"
        queue = http.get("/v1/approvals").json()["approvals"]
        assert {a["id"]: a["risk"] for a in queue} == {wire["id"]: "high", other["id"]: "normal"}
        schema = http.get("/schema/openapi.json").json()["components"]["schemas"]
    for name in ("PolicyCreate", "PolicyOut", "ApprovalOut"):
        assert sorted(schema[name]["properties"]["risk"]["enum"]) == ["high", "normal"], name
    assert "risk" in schema["ApprovalOut"]["required"]


@pytest.mark.parametrize("bad", ["extreme", "HIGH", "", 1, True, None, ["high"]])
def test_a_bad_risk_is_422_naming_the_field_and_stores_nothing(server: Server, bad: Any) -> None:
    admin = server.db.key("admin")
    with server.client(admin) as http:
        answer = http.post("/v1/policies", json={"action": "require", "risk": bad})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "invalid" and answer.json()["field"] == "body.risk"
    assert server.db.scalar("SELECT count(*) FROM policies") == 0


# The inbox in Chromium.


def approving(row: Any, text: str = "Approving…") -> None:
    """The row holds the decision: what will be decided, Undo and the countdown."""
    row.get_by_text(text).wait_for(timeout=5000)
    assert row.get_by_role("button", name="Undo").is_visible()
    assert re.search(r"[1-5] s", row.locator(".undo-box .countdown").inner_text())
    assert row.get_by_role("button", name="Approve").count() == 0  # hidden meanwhile


def still_pending_after(server: Server, approval_id: str, seconds: float) -> None:
    """Nothing was sent: after ``seconds`` the approval is still pending."""
    time.sleep(seconds)
    assert fetch(server, approval_id)["status"] == "pending"


def resolved(server: Server, approval_id: str, timeout: float = 15) -> dict[str, Any]:
    return dict(
        until(
            lambda: (a := fetch(server, approval_id))["status"] != "pending" and a,
            timeout,
            "a decision",
        )
    )


@in_browser
def test_undo_by_click_sends_nothing(browser: Any, site: Server) -> None:
    made = request(site, title="Post 5 ads", detail={"tool": "post_ads"})
    page = signed_in(browser, site, "alice")
    row = page.locator(f"#approval-{made['id']}")
    try:
        row.get_by_role("button", name="Approve").click()
        approving(row)
        assert row.get_by_role("button", name="Undo").evaluate("b => b === document.activeElement")
        row.get_by_role("button", name="Undo").click()
        row.get_by_text("Undone: nothing was sent.").wait_for(timeout=2000)
        approve = row.get_by_role("button", name="Approve")
        assert approve.is_visible()  # the buttons are back, the focus on the one clicked
        assert approve.evaluate("b => b === document.activeElement")
        still_pending_after(site, made["id"], AFTER)
        assert row.is_visible()
    finally:
        page.context.close()


@in_browser
def test_a_click_left_alone_is_sent_after_five_seconds(browser: Any, site: Server) -> None:
    made = request(site, title="Refund $30", detail={"tool": "refund"})
    page = signed_in(browser, site, "alice")
    row = page.locator(f"#approval-{made['id']}")
    try:
        started = time.monotonic()
        row.get_by_role("button", name="Reject").click()
        approving(row, "Rejecting…")
        time.sleep(max(0.0, started + UNDO - 1.5 - time.monotonic()))
        assert fetch(site, made["id"])["status"] == "pending"  # not before its five seconds
        done = page.locator(".gone", has_text="Rejected: Refund $30")
        done.wait_for(timeout=10_000)
        assert done.inner_text().startswith("✓")
        row.wait_for(state="detached", timeout=5000)
        done.wait_for(state="detached", timeout=5000)  # the confirmation stays a moment only
    finally:
        page.context.close()
    decided = fetch(site, made["id"])
    assert decided["status"] == "rejected" and decided["resolvedBy"] == "alice"


@in_browser
def test_the_held_decision_carries_the_digest_it_was_shown(browser: Any, site: Server) -> None:
    policy(site, tool="wire", action="require", minApprovals=2, reviewers=["alice", "bob"])
    wire = request(site, title="Wire $500", detail={"tool": "wire", "arguments": {"usd": 500}})
    bob = site.db.key("approvals:resolve", name="bob")
    page = signed_in(browser, site, "alice")
    row = page.locator(f"#approval-{wire['id']}")
    try:
        row.get_by_role("button", name="Approve").click()
        approving(row)
        with site.client(bob) as http:  # meanwhile bob approves an edit: the arguments change
            edit = {"decision": "approve", "arguments": {"usd": 50}}
            assert http.post(f"/v1/approvals/{wire['id']}/decision", json=edit).status_code == 200
        row.get_by_text("1 of 2 approvals: bob ✓").wait_for(timeout=10_000)  # live re-render
        approving(row)  # still held
        row.get_by_text("The arguments changed while you were looking").wait_for(timeout=10_000)
    finally:
        page.context.close()
    assert fetch(site, wire["id"])["status"] == "pending"  # refused as stale: nothing decided


@in_browser
def test_a_key_decision_waits_and_u_or_z_undoes_it(browser: Any, site: Server) -> None:
    made = request(site, title="Restart the queue", detail={"tool": "restart"})
    page = signed_in(browser, site, "alice")
    row = page.locator(f"#approval-{made['id']}")
    try:
        page.keyboard.press("j")
        page.keyboard.press("a")
        approving(row)
        page.keyboard.press("u")
        row.get_by_role("button", name="Approve").wait_for(timeout=2000)
        page.keyboard.press("r")
        approving(row, "Rejecting…")
        page.keyboard.press("z")
        row.get_by_role("button", name="Reject").wait_for(timeout=2000)
        still_pending_after(site, made["id"], AFTER)
        page.keyboard.press("a")  # the row is still selected after an undo
        approving(row)
        row.wait_for(state="detached", timeout=15_000)
    finally:
        page.context.close()
    decided = resolved(site, made["id"])
    assert decided["status"] == "approved" and decided["resolvedBy"] == "alice"


@in_browser
def test_a_high_risk_request_ignores_the_key_but_its_button_works(
    browser: Any, site: Server
) -> None:
    policy(site, tool="wire_money", action="require", risk="high")
    wire = request(site, title="Wire $40,000", detail={"tool": "wire_money"})
    page = signed_in(browser, site, "alice")
    row = page.locator(f"#approval-{wire['id']}")
    try:
        assert row.locator(".tag.risk").inner_text() == "High risk"
        page.keyboard.press("j")
        page.keyboard.press("a")
        row.get_by_text("High risk: click Approve").wait_for(timeout=2000)
        approve = row.get_by_role("button", name="Approve")
        assert approve.evaluate("b => b === document.activeElement")
        assert row.locator(".undo-box").count() == 0
        page.locator("body").click(position={"x": 5, "y": 5})
        page.keyboard.press("r")  # still selected: the other key does nothing either
        row.get_by_text("High risk: click Reject").wait_for(timeout=2000)
        still_pending_after(site, wire["id"], AFTER)
        approve.click()
        approving(row)
        row.wait_for(state="detached", timeout=15_000)
        page.goto(f"{site.base}/approvals/{wire['id']}")
        assert page.locator(".tag.risk").inner_text() == "High risk"  # and on its page
    finally:
        page.context.close()
    decided = resolved(site, wire["id"])
    assert decided["status"] == "approved" and decided["resolvedBy"] == "alice"


@in_browser
def test_confirm_still_asks_first_then_waits_with_undo(browser: Any, site: Server) -> None:
    policy(site, tool="delete_rows", action="require", confirm=True)
    risky = request(
        site, title="Delete old rows", detail={"tool": "delete_rows", "arguments": {"days": 90}}
    )
    page = signed_in(browser, site, "alice")
    row = page.locator(f"#approval-{risky['id']}")
    try:
        row.get_by_role("button", name="Approve").click()
        confirm = row.get_by_role("button", name="Confirm approval")
        confirm.wait_for(timeout=10_000)  # asked first, at once
        assert '"days": 90' in row.inner_text()
        assert fetch(site, risky["id"])["status"] == "pending"
        confirm.click()
        approving(row)
        row.get_by_role("button", name="Undo").click()
        confirm.wait_for(timeout=2000)  # back to the step; nothing sent
        still_pending_after(site, risky["id"], AFTER)
        confirm.click()
        approving(row)
        row.wait_for(state="detached", timeout=15_000)
    finally:
        page.context.close()
    decided = resolved(site, risky["id"])
    assert decided["status"] == "approved" and decided["resolvedBy"] == "alice"


@in_browser
def test_the_inbox_shows_ten_rows_at_1280x900_and_answers_on_demand(
    browser: Any, site: Server
) -> None:
    made = [
        request(
            site,
            title=f"Request {n}: post {n} ads to Meta",
            agentId="dep_7xK9s2",
            detail={"tool": "post_ads", "arguments": {"count": n}},
            timeoutSeconds=900,
        )
        for n in range(15)
    ]
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = context.new_page()
    try:
        page.goto(site.base + "/login")
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(site.base + "/")
        assert page.locator("article.row").count() == 15
        visible = page.evaluate(
            """() => Array.from(document.querySelectorAll('#inbox .row')).filter((r) => {
                const box = r.getBoundingClientRect();
                return box.top >= 0 && box.bottom <= window.innerHeight &&
                       box.left >= 0 && box.right <= window.innerWidth;
            }).length"""
        )
        assert visible >= 10, f"only {visible} rows fit in 1280x900"
        row = page.locator(f"#approval-{made[-1]['id']}")
        box = row.locator("form.answer")
        assert box.is_hidden()  # no answer box until asked for
        row.get_by_role("button", name="Answer…").click()
        assert box.is_visible()
        assert row.get_by_label("Answer text").evaluate("e => e === document.activeElement")
        assert row.get_by_role("button", name="Answer…").get_attribute("aria-expanded") == "true"
        row.get_by_role("button", name="Approve").click()
        approving(row)
        problems = axe_violations(page)  # the held state is accessible too
        row.get_by_role("button", name="Undo").click()
    finally:
        context.close()
    assert problems == []
