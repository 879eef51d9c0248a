"""The reviewer's desk in Debian's Chromium: decisions that fit, quorum, edits, claims, queue."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import test_browser
from test_browser import PASSWORD, request, signed_in

from conftest import Database, Server
from receiver import Receiver

pytestmark = test_browser.pytestmark
browser = test_browser.browser  # the module's Chromium and the two-reviewer site
site = test_browser.site


def policy(server: Server, **body: Any) -> dict[str, Any]:
    admin = server.db.key("admin", name=f"ops-{time.monotonic_ns()}")
    with server.client(admin) as http:
        answer = http.post("/v1/policies", json=body)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def fetch(server: Server, approval_id: str) -> dict[str, Any]:
    reader = server.db.key("approvals:read", name=f"reader-{time.monotonic_ns()}")
    with server.client(reader) as http:
        return dict(http.get(f"/v1/approvals/{approval_id}").json())


def interrupt(server: Server, **raw: Any) -> str:
    key = server.db.key("events:write", name=f"lg-{time.monotonic_ns()}")
    with server.client(key) as http:
        answer = http.post("/v1/events", json=[raw])
    assert answer.status_code == 201, answer.text
    return str(answer.json()[0]["approvalId"])


def test_keyboard_never_skips_a_confirmation_or_a_reason(browser: Any, site: Server) -> None:
    policy(site, tool="delete_rows", action="require", requireReason=True, confirm=True)
    risky = request(
        site,
        title="Delete 1.2M session rows",
        detail={"tool": "delete_rows", "arguments": {"table": "sessions", "rows": 1200000}},
    )
    page = signed_in(browser, site, "alice")
    row = page.locator(f"#approval-{risky['id']}")
    try:
        row.wait_for(timeout=10_000)
        page.keyboard.press("j")
        page.keyboard.press("a")
        confirm = row.get_by_role("button", name="Confirm approval")
        confirm.wait_for(timeout=10_000)
        assert "delete_rows" in row.inner_text() and "1200000" in row.inner_text()
        page.keyboard.press("a")  # a second key press is not the explicit step
        page.wait_for_timeout(500)
        assert fetch(site, risky["id"])["status"] == "pending"
        row.get_by_role("button", name="Cancel").click()
        row.get_by_role("button", name="Reject").wait_for(timeout=10_000)
        page.locator("body").click(position={"x": 5, "y": 5})
        page.keyboard.press("k")
        page.keyboard.press("r")
        reason = row.get_by_label("Reason to reject (the policy requires one)")
        reason.wait_for(timeout=10_000)
        assert fetch(site, risky["id"])["status"] == "pending"
        reason.fill("Sessions table is shared with billing")
        row.get_by_role("button", name="Reject with this reason").click()
        row.get_by_text("Rejecting…").wait_for(timeout=5000)  # held 5 s with an Undo, then sent
        row.wait_for(state="detached", timeout=15_000)  # resolved: it leaves the inbox
    finally:
        page.context.close()
    resolved = fetch(site, risky["id"])
    assert resolved["status"] == "rejected"
    assert resolved["comment"] == "Sessions table is shared with billing"


def test_confirmation_on_the_request_page_shows_what_will_run(
    browser: Any,
    site: Server,
) -> None:
    policy(site, tool="delete_rows", action="require", confirm=True)
    risky = request(
        site, title="Delete old rows", detail={"tool": "delete_rows", "arguments": {"days": 90}}
    )
    page = signed_in(browser, site, "alice")
    try:
        page.goto(f"{site.base}/approvals/{risky['id']}")
        page.get_by_role("button", name="Approve").click()
        page.get_by_role("button", name="Confirm approval").wait_for(timeout=10_000)
        step = page.locator(f"#decision-{risky['id']}").inner_text()
        assert "delete_rows" in step and '"days": 90' in step
        assert fetch(site, risky["id"])["status"] == "pending"
        page.get_by_role("button", name="Confirm approval").click()
        page.locator(".outcome").wait_for(timeout=10_000)
        assert "Approved by alice" in page.locator(".outcome").inner_text()
    finally:
        page.context.close()
    assert fetch(site, risky["id"])["status"] == "approved"


def test_only_the_allowed_decisions_are_offered(browser: Any, site: Server) -> None:
    ask = interrupt(
        site,
        action_request={"action": "ask_user", "args": {"q": "which table?"}},
        config={"allow_accept": False, "allow_ignore": False, "allow_respond": True},
        description="Which table should I clean?",
        runId="run_1",
    )
    page = signed_in(browser, site, "alice")
    row = page.locator(f"#approval-{ask}")
    try:
        row.wait_for(timeout=10_000)
        assert row.get_by_role("button", name="Approve").count() == 0
        assert row.get_by_role("button", name="Reject").count() == 0
        assert row.get_by_role("button", name="Answer").count() == 1
        page.keyboard.press("j")
        page.keyboard.press("a")
        page.keyboard.press("r")
        page.wait_for_timeout(500)
        assert fetch(site, ask)["status"] == "pending"
        page.goto(f"{site.base}/approvals/{ask}")
        decision = page.locator(f"#decision-{ask}")
        assert decision.get_by_role("button", name="Approve").count() == 0
        assert decision.get_by_role("button", name="Reject").count() == 0
        decision.get_by_label("Answer the agent").fill("sessions")
        decision.get_by_role("button", name="Answer").click()
        page.locator(".outcome").wait_for(timeout=10_000)
    finally:
        page.context.close()
    assert fetch(site, ask)["status"] == "answered"


def test_quorum_progress_policy_and_refusals_for_two_reviewers(browser: Any, site: Server) -> None:
    two = policy(
        site, tool="wire_money", action="require", minApprovals=2, reviewers=["alice", "bob"]
    )
    policy(site, tool="drop_db", action="require", reviewers=["bob"])
    wire = request(
        site, title="Wire $40,000", detail={"tool": "wire_money", "arguments": {"usd": 40000}}
    )
    drop = request(site, title="Drop the staging DB", detail={"tool": "drop_db"})
    alice = signed_in(browser, site, "alice")
    bob = signed_in(browser, site, "bob")
    try:
        refused = alice.locator(f"#approval-{drop['id']}")
        assert "not among this request's reviewers" in refused.locator(".refusal").inner_text()
        assert refused.get_by_role("button").count() == 0
        assert (
            bob.locator(f"#approval-{drop['id']}").get_by_role("button", name="Approve").count()
            == 1
        )
        alice.goto(f"{site.base}/approvals/{wire['id']}")
        decision = alice.locator(f"#decision-{wire['id']}")
        assert "0 of 2 approvals" in decision.locator(".quorum").inner_text()
        assert "alice, bob" in decision.locator(".still").inner_text()
        why = alice.locator(".why").inner_text()
        assert two["id"] in why and "tool wire_money" in why and "2 distinct approvals" in why
        decision.get_by_role("button", name="Approve").click()
        alice.get_by_text("1 of 2 approvals: alice ✓").wait_for(timeout=10_000)
        assert decision.get_by_role("button", name="Approve").count() == 0
        assert "May still decide: bob" in decision.locator(".still").inner_text()
        row = bob.locator(f"#approval-{wire['id']}")
        row.get_by_text("1 of 2 approvals: alice ✓").wait_for(timeout=10_000)  # live, no reload
        row.get_by_role("button", name="Approve").click()
        row.get_by_text("Approving…").wait_for(timeout=5000)  # held 5 s with an Undo, then sent
        row.wait_for(state="detached", timeout=15_000)
        alice.locator(f"#decision-{wire['id']} .outcome").wait_for(timeout=10_000)
        assert "Approved by bob" in alice.locator(".outcome").inner_text()
    finally:
        alice.context.close()
        bob.context.close()
    done = fetch(site, wire["id"])
    assert done["status"] == "approved" and [v["by"] for v in done["votes"]] == ["alice", "bob"]


def test_edited_arguments_keep_the_edit_show_a_diff_and_are_recorded(
    browser: Any, site: Server
) -> None:
    original = {
        "table": "sessions",
        "limit": 100,
        "dry_run": True,
        "filter": {"older_than_days": 30},
    }
    made = request(site, title="Purge sessions", detail={"tool": "purge", "arguments": original})
    page = signed_in(browser, site, "alice")
    try:
        page.goto(f"{site.base}/approvals/{made['id']}")
        page.get_by_label("limit").fill("lots")
        page.get_by_label("filter (JSON)").fill('{"older_than_days": 90,\n "tables": [1,]}')
        page.get_by_role("button", name="Approve").click()
        page.get_by_role("alert").wait_for(timeout=10_000)
        errors = page.locator(f"#decision-{made['id']}").inner_text()
        assert "limit: must be a number" in errors
        assert "line 2, column" in errors
        assert (
            page.get_by_label("filter (JSON)").input_value()
            == '{"older_than_days": 90,\n "tables": [1,]}'
        )
        assert page.get_by_label("limit").input_value() == "lots"
        assert fetch(site, made["id"])["status"] == "pending"
        page.get_by_label("limit").fill("50")
        page.get_by_label("filter (JSON)").fill('{"older_than_days": 90}')
        page.get_by_label("dry_run").uncheck()
        page.get_by_role("button", name="Approve").click()
        diff = page.locator("table.diff")
        diff.wait_for(timeout=10_000)
        text = diff.inner_text()
        assert "limit" in text and "100" in text and "50" in text and "dry_run" in text
        assert "table" not in [c.strip() for c in diff.locator("tbody th").all_inner_texts()]
        assert fetch(site, made["id"])["status"] == "pending"
        page.get_by_role("button", name="Confirm approval").click()
        page.locator(".outcome").wait_for(timeout=10_000)
        assert page.locator(f"#decision-{made['id']} .edited").is_visible()
        page.goto(f"{site.base}/history")
        assert page.locator(f"#history-{made['id']} .edited").inner_text() == "edited"
    finally:
        page.context.close()
    edited = {"table": "sessions", "limit": 50, "dry_run": False, "filter": {"older_than_days": 90}}
    done = fetch(site, made["id"])
    assert done["status"] == "approved" and done["editedArguments"] == edited
    reader = site.db.key("events:read", name="events-reader")
    with site.client(reader) as http:
        event = http.get(f"/v1/events/{done['resolutionEventId']}").json()
    assert event["detail"]["edited"] is True
    assert (
        event["detail"]["arguments"] == edited and event["detail"]["originalArguments"] == original
    )


def test_presence_and_claims_are_live_and_never_block(browser: Any, site: Server) -> None:
    made = request(site, title="Rotate the prod API key", detail={"tool": "rotate_key"})
    other = request(site, title="Restart the queue", detail={"tool": "restart"})
    alice = signed_in(browser, site, "alice")
    bob = signed_in(browser, site, "bob")
    inbox = alice.context.new_page()
    try:
        inbox.goto(site.base + "/")
        alice.goto(f"{site.base}/approvals/{made['id']}")
        presence = alice.locator(f"#presence-{made['id']}")
        presence.get_by_text("No one else is viewing this request.").wait_for(timeout=10_000)
        bob.goto(f"{site.base}/approvals/{made['id']}")
        presence.get_by_text("Also viewing: bob").wait_for(timeout=10_000)
        bob.locator(f"#presence-{made['id']}").get_by_text("Also viewing: alice").wait_for(
            timeout=10_000
        )
        bob.get_by_role("button", name="Claim").click()
        bob.get_by_text("You are on it").wait_for(timeout=10_000)
        alice.get_by_text("bob is on it").wait_for(timeout=10_000)  # the page, live
        inbox.locator(f"#approval-{made['id']} .claim").get_by_text("bob is on it").wait_for(
            timeout=10_000
        )  # and every inbox
        bob.goto(f"{site.base}/approvals/{other['id']}")
        presence.get_by_text("No one else is viewing this request.").wait_for(timeout=5000)
        bob.get_by_role("button", name="Claim").click()
        inbox.locator(f"#approval-{other['id']} .claim").wait_for(timeout=10_000)
        bob.get_by_role("button", name="Release").click()
        inbox.locator(f"#approval-{other['id']} .claim").wait_for(state="detached", timeout=10_000)
        alice.get_by_role("button", name="Approve").click()  # a claim warns, never blocks
        alice.locator(".outcome").wait_for(timeout=10_000)
        assert "Approved by alice" in alice.locator(".outcome").inner_text()
    finally:
        alice.context.close()
        bob.context.close()
    reader = site.db.key("events:read", name="claims-reader")
    with site.client(reader) as http:
        types = [e["type"] for e in http.get("/v1/events", params={"tail": 50}).json()["events"]]
    assert types.count("approval.claimed") == 2 and types.count("approval.released") == 1
    assert fetch(site, made["id"])["claimedBy"] is None  # a decision ends the claim


def test_inbox_count_filters_sort_and_batch_with_refusals(browser: Any, site: Server) -> None:
    policy(site, tool="delete_rows", action="require", requireReason=True)
    refund = request(
        site, title="Refund $30", agentId="billing", detail={"tool": "refund"}, timeoutSeconds=3600
    )
    delete = request(
        site, title="Delete rows", agentId="ops", detail={"tool": "delete_rows"}, timeoutSeconds=60
    )
    restart = request(site, title="Restart the queue", agentId="ops", detail={"tool": "restart"})
    page = signed_in(browser, site, "alice")
    try:
        assert page.title() == "(3) Approvals"
        page.get_by_label("Agent").select_option("ops")
        page.get_by_role("button", name="Filter").click()
        page.wait_for_url("**/?agent=ops**")
        page.wait_for_timeout(300)  # let the filtered stream connect
        assert page.locator("article.row").count() == 2 and page.title() == "(2) Approvals"
        request(site, title="Another refund", agentId="billing", detail={"tool": "refund"})
        late = request(site, title="Late ops job", agentId="ops", detail={"tool": "restart"})
        page.locator(f"#approval-{late['id']}").wait_for(timeout=10_000)
        assert page.title() == "(3) Approvals"
        assert page.locator("article.row").count() == 3  # the billing one stayed out
        page.reload()
        assert page.get_by_label("Agent").input_value() == "ops"  # the URL keeps the filter
        page.goto(site.base + "/?q=queue")
        ids = [r.get_attribute("id") for r in page.locator("article.row").all()]
        assert ids == [f"approval-{restart['id']}"]
        assert page.get_by_label("Search").input_value() == "queue"
        page.goto(site.base + "/?sort=due")
        ids = [r.get_attribute("id") for r in page.locator("article.row").all()]
        assert ids[:2] == [f"approval-{delete['id']}", f"approval-{refund['id']}"]
        page.goto(site.base + "/")
        page.wait_for_timeout(300)
        for made in (delete, restart):
            page.locator(f"#approval-{made['id']} input.pick").check()
        assert page.locator("#picked").inner_text() == "2 selected"
        page.get_by_role("button", name="Reject selected").click()
        step = page.locator(".batch-step")
        step.wait_for(timeout=10_000)
        assert "Reject 2 requests?" in step.inner_text() and "needs a reason" in step.inner_text()
        assert fetch(site, restart["id"])["status"] == "pending"
        step.get_by_role("button", name="Confirm: reject 2").click()
        page.get_by_text("1 of 2 rejected").wait_for(timeout=10_000)
        page.locator(f"#approval-{restart['id']}").wait_for(state="detached", timeout=10_000)
        refusal = page.locator(f"#approval-{delete['id']} .refused-{delete['id']}")
        assert "requires a reason" in refusal.inner_text()
    finally:
        page.context.close()
    assert fetch(site, restart["id"])["status"] == "rejected"
    assert fetch(site, delete["id"])["status"] == "pending"


NOTIFY_STUB = """
window.__notes = []; window.__cues = 0; window.__hidden = false;
class FakeNotification {
  constructor(title, options) { window.__notes.push([title, options.body]); }
  static requestPermission() { return Promise.resolve("granted"); }
}
FakeNotification.permission = "granted";
window.Notification = FakeNotification;
Object.defineProperty(Document.prototype, "hidden", { get() { return window.__hidden; } });
document.addEventListener("approvals:cue", () => { window.__cues += 1; });
"""


def test_opt_in_notification_and_cue_while_hidden(browser: Any, site: Server) -> None:
    page = signed_in(browser, site, "alice")
    try:
        page.context.add_init_script(NOTIFY_STUB)
        page.reload()
        page.wait_for_timeout(300)
        first = request(site, title="Seen while visible")
        page.locator(f"#approval-{first['id']}").wait_for(timeout=10_000)
        page.get_by_role("button", name="Notify me of new requests").click()
        assert (
            page.get_by_role("button", name="Notifications on").get_attribute("aria-pressed")
            == "true"
        )
        page.evaluate("window.__hidden = true")
        second = request(site, title="Arrived while hidden")
        page.locator(f"#approval-{second['id']}").wait_for(timeout=10_000)
        page.wait_for_function("window.__cues === 1", timeout=10_000)
        assert page.evaluate("window.__notes") == [["Approval requested", "Arrived while hidden"]]
    finally:
        page.context.close()


def test_context_markdown_run_link_tokens_and_deliveries(
    browser: Any, sqlite_database: Database, make_server: Callable[..., Server]
) -> None:
    server = make_server(
        sqlite_database, approvals_keepalive_seconds="2", approvals_webhook_schedule="0.2,0.2"
    )
    add_users(sqlite_database)
    ok, broken = Receiver().start(), Receiver(default=(500, {})).start()
    admin = server.db.key("admin", name="ops")
    agent = server.db.key("events:write", name="agent")
    try:
        with server.client(admin) as http:
            hook = http.post(
                "/v1/webhooks", json={"url": broken.url, "eventTypes": ["approval.resolved"]}
            ).json()
        with server.client(agent) as http:
            http.post(
                "/v1/events",
                json=[
                    {"type": "token", "runId": "run_c", "detail": {"delta": "Checking the "}},
                    {"type": "token", "runId": "run_c", "detail": {"delta": "backups first."}},
                ],
            ).raise_for_status()
        made = request(
            server,
            runId="run_c",
            title="Purge old sessions",
            callbackUrl=ok.url,
            detail={
                "tool": "purge",
                "description": "**Why:** rows older than 30 days. <b>raw</b> "
                "[runbook](https://example.com/runbook)",
                "runUrl": "https://example.com/runs/run_c",
            },
        )
        page = signed_in(browser, server, "alice")
        try:
            page.goto(f"{server.base}/approvals/{made['id']}")
            description = page.locator(".description")
            assert description.locator("strong").inner_text() == "Why:"
            assert "<b>raw</b>" in description.inner_text()
            link = description.get_by_role("link", name="runbook")
            assert "noopener" in (link.get_attribute("rel") or "")
            run = page.get_by_role("link", name="open the run")
            assert run.get_attribute("href") == "https://example.com/runs/run_c"
            assert "Checking the backups first." in page.locator(".timeline").inner_text()
            page.get_by_role("button", name="Approve").click()
            page.locator(".outcome").wait_for(timeout=10_000)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                with server.client(admin) as http:
                    sent = http.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["deliveries"]
                if sent and sent[0]["status"] == "failed":
                    break
                time.sleep(0.2)
            page.reload()
            table = page.locator(".deliveries")
            rows = table.locator("tbody tr")
            assert rows.count() == 2
            text = {r.inner_text().split(":")[0]: r for r in rows.all()}
            assert "succeeded" in text["callback"].inner_text()
            assert text["callback"].get_by_role("button", name="Retry").count() == 0
            assert "failed" in text["endpoint"].inner_text()
            assert text["endpoint"].get_by_role("button", name="Retry").count() == 1
            page.goto(server.base + "/webhooks")
            endpoint = page.locator(f"#endpoint-{hook['id']}")
            assert endpoint.locator("h2 .status").inner_text() == "failing"
            assert endpoint.get_by_role("button", name="Retry").count() == 1
            page.goto(server.base + "/events?run_id=run_c")
            assert page.get_by_label("Run").input_value() == "run_c"
            assert "backups first." in page.locator(".token-text").first.inner_text()
        finally:
            page.context.close()
    finally:
        ok.stop()
        broken.stop()


def add_users(db: Database) -> None:
    """Create the reviewers alice and bob."""
    for name in ("alice", "bob"):
        subprocess.run(
            [sys.executable, "-m", "approvals", "users", "create", name, "--password-stdin"],
            input=PASSWORD + "\n",
            text=True,
            check=True,
            capture_output=True,
            env={**os.environ, "APPROVALS_DATABASE_URL": db.url},
        )


AXE = (Path(__file__).resolve().parent / "vendor" / "axe.min.js").read_text()


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """Every axe-core violation on the page as it is now, whatever its impact."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.add_script_tag(content=AXE)
    found = page.evaluate(
        """async () => (await axe.run(document)).violations.map(v => ({
            id: v.id, impact: v.impact,
            nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ') + ' ' + n.failureSummary)}))"""
    )
    return list(found)


@pytest.mark.parametrize(
    ("width", "scheme"),
    [
        (1280, "light"),
        (1280, "dark"),
        (375, "light"),
        (375, "dark"),
    ],
)
def test_every_page_passes_axe_in_both_themes_and_at_375px(
    browser: Any, site: Server, width: int, scheme: str
) -> None:
    subprocess.run(  # an admin, so /audit shows the trail (key created, signed in)
        [sys.executable, "-m", "approvals", "users", "update", "alice", "--admin"],
        check=True,
        capture_output=True,
        env={**os.environ, "APPROVALS_DATABASE_URL": site.db.url},
    )
    policy(site, tool="delete_rows", action="require", requireReason=True, confirm=True)
    policy(site, tool="wire", action="require", minApprovals=2, reviewers=["alice", "bob"])
    policy(site, tool="drop_db", action="require", reviewers=["bob"])
    risky = request(
        site,
        title="Delete 1.2M session rows",
        agentId="ops",
        timeoutSeconds=600,
        detail={
            "tool": "delete_rows",
            "arguments": {"table": "sessions", "rows": 1200000, "dry": False, "f": {"d": 30}},
            "description": "Rows **older than 30 days**; see [runbook](https://example.com/rb).",
            "runUrl": "https://example.com/runs/1",
        },
    )
    request(site, title="Wire $40,000", detail={"tool": "wire", "arguments": {"usd": 40000}})
    request(site, title="Drop the staging DB", detail={"tool": "drop_db"})
    done = request(site, title="Edited and approved", detail={"tool": "t", "arguments": {"n": 1}})
    resolver = site.db.key("approvals:resolve", name="carol")
    with site.client(resolver) as http:
        http.post(
            f"/v1/approvals/{done['id']}/decision",
            json={"decision": "approve", "arguments": {"n": 2}, "comment": "halved"},
        ).raise_for_status()
    context = browser.new_context(
        viewport={"width": width, "height": 800}, color_scheme=scheme, bypass_csp=True
    )
    page = context.new_page()
    problems: dict[str, Any] = {}
    try:
        page.goto(site.base + "/login")
        problems["login"] = axe_violations(page)
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(site.base + "/")
        page.locator(f"#approval-{risky['id']}").wait_for(timeout=10_000)
        problems["inbox"] = axe_violations(page)
        row = page.locator(f"#approval-{risky['id']}")
        row.get_by_role("button", name="Approve").click()
        row.get_by_role("button", name="Confirm approval").wait_for(timeout=10_000)
        problems["inbox confirm step"] = axe_violations(page)
        row.get_by_role("button", name="Cancel").click()
        row.get_by_role("button", name="Reject").click()
        row.get_by_role("button", name="Reject with this reason").wait_for(timeout=10_000)
        problems["inbox reason step"] = axe_violations(page)
        page.locator(f"#approval-{risky['id']} input.pick").check()
        tools = page.get_by_role("button", name="Filters and batch")
        if width <= 600:  # a phone folds the batch tools away: open them
            tools.click()
            problems["inbox tools open"] = axe_violations(page)
        else:
            assert not tools.is_visible()
        page.get_by_role("button", name="Approve selected").click()
        page.locator(".batch-step").wait_for(timeout=10_000)
        problems["inbox batch step"] = axe_violations(page)
        page.goto(f"{site.base}/approvals/{risky['id']}")
        page.get_by_role("button", name="Claim").click()
        page.get_by_text("You are on it").wait_for(timeout=10_000)
        problems["request"] = axe_violations(page)
        page.get_by_label("rows", exact=True).fill("10")
        page.get_by_label("f (JSON)").fill("{oops")
        page.get_by_role("button", name="Approve").click()
        page.get_by_role("alert").wait_for(timeout=10_000)
        problems["request with errors"] = axe_violations(page)
        page.goto(f"{site.base}/approvals/{done['id']}")
        problems["resolved request"] = axe_violations(page)
        pages = ("/history", "/events", "/webhooks", "/audit", "/approvals/apr_missing")
        pages += ("/settings", "/insights", "/grants", "/offline")
        for path in pages:
            page.goto(site.base + path)
            problems[path] = axe_violations(page)
        if width <= 375:
            for path in ("/", f"/approvals/{risky['id']}", "/history", "/events", "/settings"):
                page.goto(site.base + path)
                wide = page.evaluate("document.documentElement.scrollWidth")
                assert wide <= width, f"{path} scrolls sideways at {width}px ({wide}px)"
    finally:
        context.close()
    assert {k: v for k, v in problems.items() if v} == {}
