"""Slack over HTTP: the service against a Slack Web API stand-in, clicks signed as Slack does."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import httpx

from conftest import Database, Server, until
from slack_standin import SIGNING_SECRET, TOKEN, Call, SlackStandIn, click, form, sign, submission

PASSWORD = "correct horse battery"
CHANNEL = "C0APPROVALS"
PUBLIC = "https://approvals.example.com"


def cli(db: Database, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "approvals", *args],
        input=stdin,
        text=True,
        capture_output=True,
        env={**os.environ, "APPROVALS_DATABASE_URL": db.url},
        timeout=60,
    )


def reviewer(db: Database, name: str, slack_user: str | None = None) -> None:
    extra = ["--slack-user", slack_user] if slack_user else []
    done = cli(db, "users", "create", name, *extra, "--password-stdin", stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr


def start(
    make_server: Callable[..., Server], db: Database, slack: SlackStandIn, **env: str
) -> Server:
    settings = {
        "approvals_slack_bot_token": TOKEN,
        "approvals_slack_signing_secret": SIGNING_SECRET,
        "approvals_slack_api_url": slack.url,
        "approvals_public_url": PUBLIC,
        "approvals_webhook_allowed_destinations": "127.0.0.1/32",
        "approvals_webhook_schedule": "0.3,0.3,0.3,0.3,0.3",
    }
    return make_server(db, **{**settings, **env})


def route(http: httpx.Client, **fields: Any) -> dict[str, Any]:
    answer = http.post("/v1/notifications", json={"channel": "slack", "target": CHANNEL, **fields})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def open_request(http: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"title": "Deploy to production?", "agentId": "deployer", "runId": "run_7", **fields}
    answer = http.post("/v1/approvals", json=body)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def interact(server: Server, payload: dict[str, Any], **sign_args: Any) -> httpx.Response:
    body = form(payload)
    return httpx.post(
        server.base + "/slack/interactions", content=body, headers=sign(body, **sign_args)
    )


def approval(http: httpx.Client, approval_id: str) -> dict[str, Any]:
    return dict(http.get(f"/v1/approvals/{approval_id}").json())


def posted_for(slack: SlackStandIn, approval_id: str, count: int = 1) -> list[Call]:
    return slack.wait_for(
        "chat.postMessage", count, where=lambda c: approval_id in json.dumps(c.body)
    )


def has_buttons(call: Call) -> bool:
    return any(block.get("type") == "actions" for block in call.body["blocks"])


def text_of(call: Call) -> str:
    return json.dumps(call.body["blocks"], ensure_ascii=False)


def test_routes_are_typed_listed_and_deleted(
    database: Database, make_server: Callable[..., Server], slack: SlackStandIn
) -> None:
    server = start(make_server, database, slack)
    with server.client(server.db.key("admin")) as http:
        made = route(http, agentId="deployer", remindAfterSeconds=600)
        assert made["id"].startswith("ntf_") and made["remindAfterSeconds"] == 600
        for bad, field in (
            ({"channel": "sms", "target": CHANNEL}, "channel"),
            ({"channel": "slack", "target": "#general"}, "body.target"),
            ({"channel": "email", "target": "not-an-address"}, "body.target"),
            ({"channel": "slack", "target": CHANNEL, "extra": 1}, "extra"),
            ({"channel": "slack", "target": CHANNEL, "remindAfterSeconds": 0}, "remind"),
        ):
            answer = http.post("/v1/notifications", json=bad)
            assert answer.status_code in (400, 422), answer.text
            assert field in answer.text
        listed = http.get("/v1/notifications").json()["notifications"]
        assert [r["id"] for r in listed] == [made["id"]]
        assert http.delete(f"/v1/notifications/{made['id']}").status_code == 204
        assert http.delete(f"/v1/notifications/{made['id']}").status_code == 404
        assert http.get("/v1/notifications").json()["notifications"] == []
    with server.client(server.db.key("approvals:read")) as http:
        assert http.get("/v1/notifications").status_code == 403


def test_message_content_is_escaped_and_carries_buttons(
    database: Database, make_server: Callable[..., Server], slack: SlackStandIn
) -> None:
    server = start(make_server, database, slack)
    with server.client(server.db.key("admin")) as http:
        route(http, tool="shell")
        route(http, tool="other_tool", target="C0ELSEWHERE")
        opened = open_request(
            http,
            title="<!channel> run *rm* & <http://evil.example|click> now",
            detail={"tool": "shell", "arguments": {"cmd": "x" * 4000, "a_note": "<@U0BOSS>"}},
            timeoutSeconds=3600,
        )
    [call] = posted_for(slack, opened["id"])
    assert call.headers["authorization"] == f"Bearer {TOKEN}"
    assert call.body["channel"] == CHANNEL
    text = text_of(call)
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "<http://evil.example|click>" not in text and "&amp;" in text
    assert "<@U0BOSS>" not in text and "&lt;@U0BOSS&gt;" in text
    assert "deployer" in text and "shell" in text and "run_7" in text
    assert "left" in text  # the time left
    assert f"{PUBLIC}/approvals/{opened['id']}" in text
    assert "truncated" in text and "x" * 4000 not in text
    actions = next(b for b in call.body["blocks"] if b["type"] == "actions")
    # Approve carries the digest of the arguments the message shows (stale if changed).
    assert [(e["action_id"], e["value"]) for e in actions["elements"]] == [
        ("approve", f"{opened['id']}|{opened['argumentsDigest']}"),
        ("reject", opened["id"]),
    ]
    assert slack.of("chat.postMessage", where=lambda c: c.body["channel"] == "C0ELSEWHERE") == []


def test_approve_and_reject_from_slack_update_the_message(
    database: Database, make_server: Callable[..., Server], slack: SlackStandIn
) -> None:
    reviewer(database, "alice", "U0ALICE")
    server = start(make_server, database, slack)
    with server.client(server.db.key("admin", name="agent")) as http:
        route(http)
        first = open_request(http)
        second = open_request(http, title="Delete the staging database?")
        [post1] = posted_for(slack, first["id"])
        [post2] = posted_for(slack, second["id"])

        answer = interact(server, click("U0ALICE", "approve", first["id"]))
        assert answer.status_code == 200, answer.text
        done = approval(http, first["id"])
        assert done["status"] == "approved" and done["resolvedBy"] == "alice"
        [update] = slack.wait_for("chat.update", where=lambda c: c.body["ts"] == post1.answer["ts"])
        assert update.body["channel"] == CHANNEL
        assert not has_buttons(update) and "*Approved* by alice" in text_of(update)

        # Reject opens a modal; its submission decides with the reason.
        assert interact(server, click("U0ALICE", "reject", second["id"])).status_code == 200
        [modal] = slack.wait_for("views.open")
        assert modal.body["trigger_id"] == f"trigger-U0ALICE-{second['id']}"
        assert modal.body["view"]["private_metadata"] == second["id"]
        assert approval(http, second["id"])["status"] == "pending"  # not yet
        answer = interact(server, submission("U0ALICE", second["id"], "Not on a Friday"))
        assert answer.status_code == 200 and answer.content in (b"", b"null")
        done = approval(http, second["id"])
        assert done["status"] == "rejected" and done["comment"] == "Not on a Friday"
        assert done["resolvedBy"] == "alice"
        [update] = slack.wait_for("chat.update", where=lambda c: c.body["ts"] == post2.answer["ts"])
        assert "*Rejected* by alice" in text_of(update) and "Not on a Friday" in text_of(update)
        assert not has_buttons(update)


def test_refusals_decide_nothing(
    database: Database, make_server: Callable[..., Server], slack: SlackStandIn
) -> None:
    reviewer(database, "alice", "U0ALICE")
    reviewer(database, "agentbob", "U0BOB")
    server = start(make_server, database, slack)
    with server.client(server.db.key("admin")) as http:
        route(http)
    with server.client(server.db.key("events:write", "approvals:read", name="agentbob")) as http:
        opened = open_request(http)
        posted_for(slack, opened["id"])
        # Not linked to any reviewer.
        assert interact(server, click("U0STRANGER", "approve", opened["id"])).status_code == 200
        [eph] = slack.wait_for("chat.postEphemeral", where=lambda c: c.body["user"] == "U0STRANGER")
        assert eph.body["channel"] == CHANNEL and "not linked" in eph.body["text"]
        # The requester may not decide their own request (no self-approval).
        assert interact(server, click("U0BOB", "approve", opened["id"])).status_code == 200
        [eph] = slack.wait_for("chat.postEphemeral", where=lambda c: c.body["user"] == "U0BOB")
        assert "opened this request" in eph.body["text"]
        assert interact(server, click("U0BOB", "reject", opened["id"])).status_code == 200
        slack.wait_for("chat.postEphemeral", 2, where=lambda c: c.body["user"] == "U0BOB")
        assert slack.of("views.open") == []
        refused = interact(server, submission("U0BOB", opened["id"], "mine"))
        assert refused.json()["response_action"] == "errors"
        # Bad signature, stale and future timestamps, no signature: 401.
        payload = click("U0ALICE", "approve", opened["id"])
        body = form(payload)
        wrong = sign(body, secret="not-the-secret")
        stale = sign(body, timestamp=int(time.time()) - 6 * 60)
        future = sign(body, timestamp=int(time.time()) + 6 * 60)
        tampered = sign(body)
        for headers, content in (
            (wrong, body),
            (stale, body),
            (future, body),
            (tampered, body.replace("approve", "reject")),
            ({"content-type": "application/x-www-form-urlencoded"}, body),
            ({**sign(body), "x-slack-request-timestamp": "soon"}, body),
        ):
            answer = httpx.post(
                server.base + "/slack/interactions", content=content, headers=headers
            )
            assert answer.status_code == 401, answer.text
        assert approval(http, opened["id"])["status"] == "pending"
        assert server.db.scalar("SELECT count(*) FROM approval_votes") == 0
        # A disabled reviewer is refused too.
        assert cli(database, "users", "disable", "alice").returncode == 0
        assert interact(server, click("U0ALICE", "approve", opened["id"])).status_code == 200
        slack.wait_for("chat.postEphemeral", where=lambda c: c.body["user"] == "U0ALICE")
        assert approval(http, opened["id"])["status"] == "pending"


def sign_in(server: Server, name: str) -> tuple[httpx.Client, str]:
    http = server.client(follow_redirects=False)
    token = csrf_of(http.get("/login").text)
    answer = http.post("/login", data={"csrf_token": token, "username": name, "password": PASSWORD})
    assert answer.status_code == 303, answer.text
    return http, csrf_of(http.get("/").text)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def dashboard_decide(http: httpx.Client, csrf: str, approval_id: str, decision: str) -> None:
    answer = http.post(
        f"/approvals/{approval_id}/decide", data={"csrf_token": csrf, "decision": decision}
    )
    assert answer.status_code == 303, answer.text


def test_quorum_votes_from_slack_and_dashboard_count_alike(
    database: Database, make_server: Callable[..., Server], slack: SlackStandIn
) -> None:
    reviewer(database, "alice", "U0ALICE")
    reviewer(database, "bob", "U0BOB")
    server = start(make_server, database, slack)
    with server.client(server.db.key("admin")) as http:
        route(http)
        policy = {"tool": "delete_data", "action": "require", "minApprovals": 2}
        assert http.post("/v1/policies", json=policy).status_code == 201
        opened = open_request(http, detail={"tool": "delete_data", "arguments": {"table": "t"}})
        [post] = posted_for(slack, opened["id"])
        assert "needs 2 approvals" in text_of(post)

        assert interact(server, click("U0ALICE", "approve", opened["id"])).status_code == 200
        [eph] = slack.wait_for("chat.postEphemeral", where=lambda c: c.body["user"] == "U0ALICE")
        assert "1 of 2" in eph.body["text"]
        assert approval(http, opened["id"])["status"] == "pending"
        # The same reviewer again: a vote counts once.
        assert interact(server, click("U0ALICE", "approve", opened["id"])).status_code == 200
        slack.wait_for("chat.postEphemeral", 2, where=lambda c: c.body["user"] == "U0ALICE")
        assert "already approved" in slack.of("chat.postEphemeral")[-1].body["text"]
        assert slack.of("chat.update") == []

        browser, csrf = sign_in(server, "bob")
        with contextlib.closing(browser):
            dashboard_decide(browser, csrf, opened["id"], "approve")
        done = approval(http, opened["id"])
        assert done["status"] == "approved" and done["resolvedBy"] == "bob"
        assert [v["by"] for v in done["votes"]] == ["alice", "bob"]
        [update] = slack.wait_for("chat.update")
        assert update.body["ts"] == post.answer["ts"] and "*Approved* by bob" in text_of(update)


def test_message_updated_after_dashboard_api_and_timeout(
    database: Database, make_server: Callable[..., Server], slack: SlackStandIn
) -> None:
    reviewer(database, "carol", "U0CAROL")
    server = start(make_server, database, slack)
    with server.client(server.db.key("admin")) as http:
        route(http)
        route(http, target="reviewers")  # a direct message to each allowed reviewer too
        by_page = open_request(http, title="decided on the dashboard")
        by_api = open_request(http, title="decided through the API")
        by_clock = open_request(http, title="left to time out", timeoutSeconds=2)
        for item in (by_page, by_api, by_clock):
            posts = posted_for(slack, item["id"], 2)
            assert sorted(p.body["channel"] for p in posts) == sorted([CHANNEL, "U0CAROL"])
        browser, csrf = sign_in(server, "carol")
        with contextlib.closing(browser):
            dashboard_decide(browser, csrf, by_page["id"], "reject")
        with server.client(server.db.key("approvals:resolve", name="ops")) as ops:
            decided = ops.post(
                f"/v1/approvals/{by_api['id']}/decision", json={"decision": "approve"}
            )
        assert decided.status_code == 200, decided.text

        def updates(item: dict[str, Any]) -> list[Call]:
            stamps = {p.answer["ts"] for p in posted_for(slack, item["id"], 2)}
            return slack.of("chat.update", where=lambda c: c.body["ts"] in stamps)

        page_updates = until(lambda: len(updates(by_page)) == 2 and updates(by_page))
        assert all("*Rejected* by carol" in text_of(u) for u in page_updates)
        api_updates = until(lambda: len(updates(by_api)) == 2 and updates(by_api))
        assert all("*Approved* by ops" in text_of(u) for u in api_updates)
        clock_updates = until(lambda: len(updates(by_clock)) == 2 and updates(by_clock))
        assert all("*Expired* by system:timeout" in text_of(u) for u in clock_updates)
        assert not any(has_buttons(u) for u in page_updates + api_updates + clock_updates)


def test_a_policy_decision_sends_no_buttons(
    database: Database, make_server: Callable[..., Server], slack: SlackStandIn
) -> None:
    server = start(make_server, database, slack)
    with server.client(server.db.key("admin")) as http:
        route(http)
        assert http.post("/v1/policies", json={"tool": "rm", "action": "deny"}).status_code == 201
        denied = open_request(http, title="denied by policy", detail={"tool": "rm"})
        assert approval(http, denied["id"])["resolvedBy"] == "system:policy"
        pending = open_request(http, title="asks a human")
        posted_for(slack, pending["id"])
        # Delivered in order of opening: the denied request, settled at once, got nothing.
        assert (
            slack.of("chat.postMessage", where=lambda c: denied["id"] in json.dumps(c.body)) == []
        )
        notices = server.db.scalar(
            "SELECT count(*) FROM webhook_deliveries WHERE approval_id = :a", a=denied["id"]
        )
        assert notices == 0


def test_slack_down_then_up_loses_nothing(
    database: Database, make_server: Callable[..., Server], slack: SlackStandIn
) -> None:
    reviewer(database, "dave", "U0DAVE")
    port = slack.port
    server = start(make_server, database, slack, approvals_webhook_schedule="0.5,1,1,1,1,1,1,1")
    with server.client(server.db.key("admin")) as http:
        route(http)
        slack.stop()
        decided = open_request(http, title="decided while Slack was down")
        waiting = open_request(http, title="still waiting")

        def failures() -> int:
            return int(
                server.db.scalar(
                    "SELECT count(*) FROM webhook_attempts a JOIN webhook_deliveries d"
                    " ON d.id = a.delivery_id WHERE d.kind = 'notify' AND a.error IS NOT NULL"
                )
            )

        until(lambda: failures() >= 2)
        browser, csrf = sign_in(server, "dave")
        with contextlib.closing(browser):
            dashboard_decide(browser, csrf, decided["id"], "approve")
            page = browser.get("/webhooks").text
            assert "Notifications" in page and "Slack unreachable" in page
        slack.start(port)
        [late] = posted_for(slack, decided["id"])
        if has_buttons(late):  # an attempt that began before the decision: then updated
            [late] = slack.wait_for(
                "chat.update", where=lambda c: c.body["ts"] == late.answer["ts"]
            )
        assert not has_buttons(late) and "*Approved* by dave" in text_of(late)
        [live] = posted_for(slack, waiting["id"])
        assert has_buttons(live)
        until(
            lambda: (
                server.db.scalar(
                    "SELECT count(*) FROM webhook_deliveries WHERE kind = 'notify'"
                    " AND status != 'succeeded'"
                )
                == 0
            )
        )
        with server.client(server.db.key("admin")) as again:
            assert approval(again, waiting["id"])["status"] == "pending"


def test_rate_limit_and_errors_are_handled_and_logged(
    database: Database, make_server: Callable[..., Server], slack: SlackStandIn
) -> None:
    reviewer(database, "erin", "U0ERIN")
    slack.answers["chat.postMessage"] = [
        (429, {"Retry-After": "1"}, {"ok": False, "error": "ratelimited"}),
    ]
    server = start(make_server, database, slack)
    with server.client(server.db.key("admin")) as http:
        route(http)
        opened = open_request(http)
        first, second = slack.wait_for("chat.postMessage", 2)
        assert second.at - first.at >= 0.9  # Retry-After (1 s) beat the 0.3 s schedule
        history = server.db.scalar(
            "SELECT a.error FROM webhook_attempts a JOIN webhook_deliveries d"
            " ON d.id = a.delivery_id WHERE d.approval_id = :a ORDER BY a.id LIMIT 1",
            a=opened["id"],
        )
        assert "429" in history and "ratelimited" in history and "Retry-After" in history
        # ok: false with an error a retry cannot fix fails the delivery at once, logged.
        slack.answers["chat.postMessage"] = [
            (200, {}, {"ok": False, "error": "channel_not_found"}),
        ]
        missing = open_request(http, title="to a channel that went away")
        until(
            lambda: (
                server.db.scalar(
                    "SELECT status FROM webhook_deliveries WHERE approval_id = :a", a=missing["id"]
                )
                == "failed"
            )
        )
        assert "channel_not_found" in server.db.scalar(
            "SELECT last_error FROM webhook_deliveries WHERE approval_id = :a", a=missing["id"]
        )
        browser, _ = sign_in(server, "erin")
        with contextlib.closing(browser):
            page = browser.get(f"/approvals/{missing['id']}").text
            assert "channel_not_found" in page and "failed" in page
        assert "channel_not_found" in server.log_text()  # logged with the delivery


def test_a_reminder_follows_once_while_pending(
    database: Database, make_server: Callable[..., Server], slack: SlackStandIn
) -> None:
    server = start(make_server, database, slack)
    with server.client(server.db.key("admin")) as http:
        route(http, remindAfterSeconds=1)
        waiting = open_request(http, title="nobody looks")
        decided = open_request(http, title="decided in time")
        posted_for(slack, decided["id"])
        with server.client(server.db.key("approvals:resolve", name="ops")) as ops:
            answer = ops.post(
                f"/v1/approvals/{decided['id']}/decision", json={"decision": "reject"}
            )
        assert answer.status_code == 200, answer.text
        first, reminder = posted_for(slack, waiting["id"], 2)
        assert "Reminder" in text_of(reminder) and has_buttons(reminder)
        assert "Reminder" not in text_of(first)
        until(
            lambda: (
                server.db.scalar(
                    "SELECT count(*) FROM webhook_deliveries WHERE event_type ="
                    " 'notification.slack.remind' AND status = 'succeeded'"
                )
                == 2
            )
        )
        assert len(posted_for(slack, decided["id"])) == 1  # no reminder once decided
        assert len(posted_for(slack, waiting["id"])) == 2  # and only one reminder


def nothing_decided(server: Server, slack: SlackStandIn, approval_id: str) -> None:
    """No vote, no decision, no modal and no ephemeral answer for ``approval_id``."""
    with server.client(server.db.key("approvals:read")) as http:
        assert approval(http, approval_id)["status"] == "pending"
    assert server.db.scalar("SELECT count(*) FROM approval_votes") == 0
    assert slack.of("views.open") == [] and slack.of("chat.postEphemeral") == []


def signed_as_sent(body: bytes, timestamp: str, signature: bytes | None = None) -> dict[str, bytes]:
    """Headers carrying ``timestamp`` as UTF-8 bytes, signed over the text a server reads."""
    seen = timestamp.encode().decode("latin-1")  # header bytes read as Latin-1
    base = f"v0:{seen}:".encode() + body
    digest = hmac.new(SIGNING_SECRET.encode(), base, hashlib.sha256).hexdigest()
    return {
        "x-slack-request-timestamp": timestamp.encode(),
        "x-slack-signature": signature or f"v0={digest}".encode(),
        "content-type": b"application/x-www-form-urlencoded",
    }


def test_timestamps_are_ascii_digits_or_401(
    database: Database, make_server: Callable[..., Server], slack: SlackStandIn
) -> None:
    reviewer(database, "alice", "U0ALICE")
    server = start(make_server, database, slack)
    with server.client(server.db.key("admin")) as http:
        opened = open_request(http)
    body = form(click("U0ALICE", "approve", opened["id"])).encode()
    now = str(int(time.time()))
    # (Spaces around a header value never arrive: HTTP parsers strip them, as httpx refuses
    # to send them.)
    for stamp in (
        "--5",
        "+5",
        "²",
        "١٢",
        "5.0",
        "",
        str(10**30),
        "9" * 5000,
        f"--{now}",
        f"+{now}",
        f"{now}²",
        "".join(chr(0x0660 + int(d)) for d in now),  # now, in Arabic-Indic digits
        f"{now}.0",
    ):
        answer = httpx.post(
            server.base + "/slack/interactions", content=body, headers=signed_as_sent(body, stamp)
        )
        assert answer.status_code == 401, (stamp, answer.status_code, answer.text)
        assert answer.json()["error"] == "unauthorized"
    # A signature that is not ASCII is not a signature either.
    odd = signed_as_sent(body, now, signature="v0=é".encode("latin-1"))
    answer = httpx.post(server.base + "/slack/interactions", content=body, headers=odd)
    assert answer.status_code == 401, answer.text
    nothing_decided(server, slack, opened["id"])


def test_malformed_callbacks_answer_400_and_decide_nothing(
    database: Database, make_server: Callable[..., Server], slack: SlackStandIn
) -> None:
    reviewer(database, "alice", "U0ALICE")
    server = start(make_server, database, slack)
    with server.client(server.db.key("admin")) as http:
        opened = open_request(http)
    good = click("U0ALICE", "approve", opened["id"])
    act = good["actions"][0]
    sub = submission("U0ALICE", opened["id"], "no")
    view = sub["view"]
    payloads: list[Any] = [
        [good],
        "block_actions",
        5,
        None,
        {**good, "type": 5},
        {**good, "actions": "approve"},
        {**good, "actions": {"action_id": "approve"}},
        {**good, "actions": ["approve"]},
        {**good, "actions": [None]},
        {**good, "actions": [{**act, "action_id": 5}]},
        {**good, "actions": [{**act, "value": 5}]},
        {**good, "actions": [{**act, "value": [opened["id"]]}]},
        {**good, "actions": [{**act, "value": opened["id"] + "x" * 5000}]},
        {**good, "actions": [{**act, "value": opened["id"] + "\u0000"}]},
        {**good, "user": "U0ALICE"},
        {**good, "user": None},
        {**good, "user": {"id": 5}},
        {**good, "user": {"id": "U" * 5000}},
        {**good, "user": {"id": "U0ALICE\u0000"}},
        {k: v for k, v in good.items() if k != "user"},
        {**good, "channel": "C0APPROVALS"},
        {**good, "channel": {"id": "C" * 5000}},
        {**good, "trigger_id": 5},
        {**sub, "view": "V0TEST"},
        {**sub, "view": None},
        {**sub, "view": {**view, "state": []}},
        {**sub, "view": {**view, "state": {"values": "reason"}}},
        {**sub, "view": {**view, "state": {"values": {"reason": []}}}},
        {**sub, "view": {**view, "state": {"values": {"reason": {"reason": "no"}}}}},
        {**sub, "view": {**view, "state": {"values": {"reason": {"reason": {"value": 5}}}}}},
        {**sub, "view": {**view, "state": {"values": {"reason": {"reason": {"value": "\u0000"}}}}}},
        {**sub, "view": {**view, "private_metadata": 5}},
        {**sub, "view": {**view, "private_metadata": opened["id"] + "x" * 5000}},
        {**sub, "view": {**view, "callback_id": ["reject_reason"]}},
        {**sub, "user": {"id": ["U0ALICE"]}},
    ]
    bodies: list[bytes] = [form(p).encode() for p in payloads] + [
        b"",
        b"payload=%FF%FE",
        b"payload=not+json",
        b"payload=" + b"%7B" * 3,
        b"nothing=here",
        b"payload=%7B%7D&payload=%7B%7D",
        form(good).encode().replace(b"%22approve%22", b"%22approve%5Cud800%22"),
        urlencode(
            {"payload": json.dumps(good)[:-1] + ', "junk": ' + "[" * 5000 + "]" * 5000 + "}"}
        ).encode(),
    ]
    # Slack signs UTF-8 form bodies only, and slack_sdk's verifier reads them so: a signed
    # body that is not UTF-8 is refused as unverified.
    binary = b"\xff\xfe\x00not form data"
    answer = httpx.post(server.base + "/slack/interactions", content=binary, headers=sign(binary))
    assert answer.status_code == 401, answer.text
    for body in bodies:
        answer = httpx.post(server.base + "/slack/interactions", content=body, headers=sign(body))
        assert answer.status_code == 400, (body[:200], answer.status_code, answer.text)
        assert answer.json()["error"] == "invalid" and answer.json()["message"]
        unsigned = httpx.post(
            server.base + "/slack/interactions",
            content=body,
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert unsigned.status_code == 401, (body[:200], unsigned.text)
    nothing_decided(server, slack, opened["id"])
    # Other interaction kinds are acknowledged and ignored; the well-formed click still works.
    for ignored in ({"type": "view_closed", "user": {"id": "U0ALICE"}}, {"type": "shortcut"}):
        assert interact(server, ignored).status_code == 200
    assert interact(server, good).status_code == 200
    with server.client(server.db.key("approvals:read")) as http:
        assert approval(http, opened["id"])["status"] == "approved"


def test_a_replayed_interaction_is_acknowledged_and_does_nothing(
    database: Database, make_server: Callable[..., Server], slack: SlackStandIn
) -> None:
    reviewer(database, "alice", "U0ALICE")
    reviewer(database, "bob", "U0BOB")
    server = start(make_server, database, slack)
    other = start(make_server, database, slack)  # another instance on the same database
    with server.client(server.db.key("admin")) as http:
        policy = {"tool": "delete_data", "action": "require", "minApprovals": 2}
        assert http.post("/v1/policies", json=policy).status_code == 201
        quorum = open_request(http, detail={"tool": "delete_data"})
        single = open_request(http, title="reject me")

    def replay(payload: dict[str, Any]) -> list[httpx.Response]:
        body = form(payload)
        headers = sign(body)
        return [
            httpx.post(target.base + "/slack/interactions", content=body, headers=headers)
            for target in (server, server, other)
        ]

    # A vote counts once, and the replays send no "already approved" answer.
    answers = replay(click("U0ALICE", "approve", quorum["id"]))
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert "1 of 2" in slack.wait_for("chat.postEphemeral")[0].body["text"]
    # Reject opens one form, however often the click is replayed.
    answers = replay(click("U0BOB", "reject", single["id"]))
    assert [a.status_code for a in answers] == [200, 200, 200]
    slack.wait_for("views.open")
    # The form's submission decides once; replays answer no error to show.
    answers = replay(submission("U0BOB", single["id"], "replayed"))
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert all(a.content in (b"", b"null") for a in answers), [a.text for a in answers]
    time.sleep(1)  # anything a replay would send has had time to arrive
    assert [c.body["text"] for c in slack.of("chat.postEphemeral")] == [
        "Your approval counts: 1 of 2 so far."
    ]
    assert len(slack.of("views.open")) == 1
    with server.client(server.db.key("approvals:read")) as http:
        assert approval(http, quorum["id"])["status"] == "pending"
        assert [v["by"] for v in approval(http, quorum["id"])["votes"]] == ["alice"]
        done = approval(http, single["id"])
        assert done["status"] == "rejected" and done["comment"] == "replayed"
    assert server.db.scalar("SELECT count(*) FROM interaction_receipts") == 3
    # Receipts older than Slack's window are forgotten as new ones arrive.
    database.execute("UPDATE interaction_receipts SET seen_at = :old", old=time.time() - 3600)
    assert interact(other, click("U0ALICE", "approve", quorum["id"])).status_code == 200
    assert server.db.scalar("SELECT count(*) FROM interaction_receipts") == 1


def test_text_sent_to_slack_is_escaped_everywhere(
    database: Database, make_server: Callable[..., Server], slack: SlackStandIn
) -> None:
    reviewer(database, "alice", "U0ALICE")
    server = start(make_server, database, slack)
    # Answers that quote an id from the click: the ephemeral texts and the form's error.
    for action in ("approve", "reject"):
        assert interact(server, click("U0ALICE", action, "apr_<!channel>")).status_code == 200
    for eph in slack.wait_for("chat.postEphemeral", 2):
        assert "<!channel>" not in eph.body["text"]
        assert "apr_&lt;!channel&gt; does not exist" in eph.body["text"]
    refused = interact(server, submission("U0ALICE", "apr_<!here>&" + "<" * 40, "no")).json()
    error = refused["errors"]["reason"]
    assert "<" not in error and "apr_&lt;!here&gt;&amp;" in error and len(error) <= 150
    assert not error.rstrip("…").endswith(("&", "&l", "&lt"))
    with server.client(server.db.key("admin")) as http:
        route(http)
        opened = open_request(http, title="<!channel> <!here> <@U0BOSS> & <https://evil|click>")
        [call] = posted_for(slack, opened["id"])
        text = call.body["text"]
        for raw in ("<!channel>", "<!here>", "<@U0BOSS>", "<https://evil|click>"):
            assert raw not in text
        assert (
            "&lt;!channel&gt; &lt;!here&gt; &lt;@U0BOSS&gt; &amp; &lt;https://evil|click&gt;"
            in text
        )
    with server.client(server.db.key("approvals:resolve", name="<!here> ops")) as ops:
        answer = ops.post(f"/v1/approvals/{opened['id']}/decision", json={"decision": "approve"})
        assert answer.status_code == 200, answer.text
    [update] = slack.wait_for("chat.update", where=lambda c: c.body["ts"] == call.answer["ts"])
    assert "<!here>" not in update.body["text"] and "<!channel>" not in update.body["text"]
    assert update.body["text"].startswith("Approved by &lt;!here&gt; ops: &lt;!channel&gt;")
    assert "<!here>" not in text_of(update) and "&lt;!here&gt; ops" in text_of(update)
