"""Discord over HTTP: the service against a Discord REST API stand-in, interactions signed
with Ed25519 as Discord signs them."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from nacl.signing import SigningKey

from conftest import Database, Server, until
from discord_standin import (
    PUBLIC_KEY,
    TOKEN,
    Call,
    DiscordStandIn,
    click,
    ping,
    sign,
    submission,
)

PASSWORD = "correct horse battery"
CHANNEL = "1000000000000000002"
PUBLIC = "https://approvals.example.com"
ALICE = "111111111111111111"
BOB = "222222222222222222"
CAROL = "333333333333333333"
STRANGER = "999999999999999999"
EPHEMERAL = 64
ZWSP = "\u200b"


@pytest.fixture
def discord() -> Iterator[DiscordStandIn]:
    """A stand-in of Discord's REST API on a loopback port, stopped after the test."""
    standin = DiscordStandIn().start()
    yield standin
    standin.stop()


def cli(db: Database, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "approvals", *args],
        input=stdin,
        text=True,
        capture_output=True,
        env={**os.environ, "APPROVALS_DATABASE_URL": db.url},
        timeout=60,
    )


def reviewer(db: Database, name: str, discord_user: str | None = None) -> None:
    done = cli(db, "users", "create", name, "--password-stdin", stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    if discord_user:
        done = cli(db, "users", "update", name, "--discord-user", discord_user)
        assert done.returncode == 0, done.stderr


def start(
    make_server: Callable[..., Server], db: Database, discord: DiscordStandIn, **env: str
) -> Server:
    settings = {
        "approvals_discord_bot_token": TOKEN,
        "approvals_discord_public_key": PUBLIC_KEY,
        "approvals_discord_api_url": discord.url,
        "approvals_public_url": PUBLIC,
        "approvals_webhook_allowed_destinations": "127.0.0.1/32",
        "approvals_webhook_schedule": "0.3,0.3,0.3,0.3,0.3",
    }
    return make_server(db, **{**settings, **env})


def route(http: httpx.Client, target: str = CHANNEL, **fields: Any) -> dict[str, Any]:
    answer = http.post("/v1/notifications", json={"channel": "discord", "target": target, **fields})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def open_request(http: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"title": "Deploy to production?", "agentId": "deployer", "runId": "run_7", **fields}
    answer = http.post("/v1/approvals", json=body)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def approval(http: httpx.Client, approval_id: str) -> dict[str, Any]:
    return dict(http.get(f"/v1/approvals/{approval_id}").json())


def interact(server: Server, payload: dict[str, Any], **sign_args: Any) -> httpx.Response:
    body = json.dumps(payload)
    return httpx.post(
        server.base + "/discord/interactions", content=body, headers=sign(body, **sign_args)
    )


def posted_for(discord: DiscordStandIn, approval_id: str, count: int = 1) -> list[Call]:
    return discord.wait_for(
        "post", count, where=lambda c: approval_id in json.dumps(c.body) and c.status == 200
    )


def edits_of(discord: DiscordStandIn, post: Call) -> list[Call]:
    return discord.of(
        "edit", where=lambda c: c.path == f"{post.path}/{post.answer['id']}" and c.status == 200
    )


def ephemeral_text(answer: httpx.Response) -> str:
    """The text of an answer only the clicker sees (and that it mentions nobody)."""
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["type"] == 4 and body["data"]["flags"] == EPHEMERAL, body
    assert body["data"]["allowed_mentions"] == {"parse": []}
    return str(body["data"]["content"])


def nothing_decided(server: Server, approval_id: str) -> None:
    with server.client(server.db.key("approvals:read")) as http:
        assert approval(http, approval_id)["status"] == "pending"
    assert server.db.scalar("SELECT count(*) FROM approval_votes") == 0


def test_ping_and_a_request_posts_a_message_with_both_buttons(
    database: Database, make_server: Callable[..., Server], discord: DiscordStandIn
) -> None:
    server = start(make_server, database, discord)
    answer = interact(server, ping())
    assert answer.status_code == 200 and answer.json() == {"type": 1}
    unsigned = httpx.post(server.base + "/discord/interactions", json=ping())
    assert unsigned.status_code == 401  # Discord sends such a request when the URL is saved
    with server.client(server.db.key("admin")) as http:
        made = route(http, tool="shell")
        assert made["channel"] == "discord" and made["target"] == CHANNEL
        route(http, target="1000000000000000009", tool="other_tool")
        opened = open_request(
            http,
            detail={"tool": "shell", "arguments": {"cmd": "ls /srv"}},
            timeoutSeconds=3600,
        )
    [post] = posted_for(discord, opened["id"])
    assert post.headers["authorization"] == f"Bot {TOKEN}"
    assert post.channel == CHANNEL
    assert post.body["allowed_mentions"] == {"parse": []}
    [embed] = post.body["embeds"]
    assert embed["title"] == "Deploy to production?"
    assert embed["url"] == f"{PUBLIC}/approvals/{opened['id']}"
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Agent"] == "deployer" and fields["Tool"] == "shell"
    assert fields["Run"] == "run\\_7" and "left" in fields["Time left"]
    assert '```json\n{\n  "cmd": "ls /srv"\n}\n```' in embed["description"]
    approve, reject = post.buttons()
    assert (approve["label"], approve["style"]) == ("Approve", 3)
    assert (reject["label"], reject["style"]) == ("Reject", 4)
    # Approve carries the digest of the arguments shown (a change since is refused).
    assert approve["custom_id"] == f"approve:{opened['id']}:{opened['argumentsDigest']}"
    assert reject["custom_id"] == f"reject:{opened['id']}"
    assert len(approve["custom_id"]) <= 100
    assert discord.of("post", where=lambda c: c.channel == "1000000000000000009") == []


def test_approve_from_discord_decides_as_the_linked_reviewer(
    database: Database, make_server: Callable[..., Server], discord: DiscordStandIn
) -> None:
    reviewer(database, "alice", ALICE)
    server = start(make_server, database, discord)
    with server.client(server.db.key("admin", name="agent")) as http:
        route(http)
        opened = open_request(http, detail={"arguments": {"table": "users"}})
        in_dm = open_request(http, title="Restart the worker?")
        [post] = posted_for(discord, opened["id"])
        [approve, _] = post.buttons()
        answer = interact(server, click(ALICE, approve["custom_id"], CHANNEL))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        # The clicked message is replaced at once by the outcome, without buttons.
        assert body["type"] == 7 and body["data"]["components"] == []
        assert "**Approved** by alice" in body["data"]["embeds"][0]["description"]
        assert body["data"]["allowed_mentions"] == {"parse": []}
        done = approval(http, opened["id"])
        assert done["status"] == "approved" and done["resolvedBy"] == "alice"
        # The update delivery edits the message too (as it would any other).
        [edit] = until(lambda: edits_of(discord, post))
        assert edit.body["components"] == [] and "**Approved** by alice" in edit.text()
        # A click in a direct message names the user outside ``member``.
        answer = interact(server, click(ALICE, f"approve:{in_dm['id']}", in_dm=True))
        assert answer.json()["type"] == 7
        assert approval(http, in_dm["id"])["resolvedBy"] == "alice"


def test_reject_opens_the_form_and_its_reason_rejects(
    database: Database, make_server: Callable[..., Server], discord: DiscordStandIn
) -> None:
    reviewer(database, "alice", ALICE)
    server = start(make_server, database, discord)
    with server.client(server.db.key("admin", name="agent")) as http:
        route(http)
        opened = open_request(http)
        other = open_request(http, title="Drop the cache?")
        [post] = posted_for(discord, opened["id"])
        [_, reject] = post.buttons()
        answer = interact(server, click(ALICE, reject["custom_id"], CHANNEL))
        form = answer.json()
        assert form["type"] == 9 and form["data"]["custom_id"] == f"reason:{opened['id']}"
        [[reason]] = [row["components"] for row in form["data"]["components"]]
        assert reason["custom_id"] == "reason" and reason["style"] == 2
        assert reason["required"] is False and reason["max_length"] == 2000
        assert approval(http, opened["id"])["status"] == "pending"  # not yet

        answer = interact(server, submission(ALICE, opened["id"], "  Not on a Friday  "))
        body = answer.json()
        assert body["type"] == 7 and body["data"]["components"] == []
        description = body["data"]["embeds"][0]["description"]
        assert "**Rejected** by alice" in description and "> Not on a Friday" in description
        done = approval(http, opened["id"])
        assert done["status"] == "rejected" and done["comment"] == "Not on a Friday"
        assert done["resolvedBy"] == "alice"
        # A form that no message opened cannot replace one: a line to the clicker instead.
        answer = interact(server, submission(ALICE, other["id"], "", from_message=False))
        assert ephemeral_text(answer) == "Rejected."
        done = approval(http, other["id"])
        assert done["status"] == "rejected" and done["comment"] is None


def test_refusals_are_ephemeral_and_decide_nothing(
    database: Database, make_server: Callable[..., Server], discord: DiscordStandIn
) -> None:
    reviewer(database, "alice", ALICE)
    reviewer(database, "agentbob", BOB)
    server = start(make_server, database, discord)
    with server.client(server.db.key("events:write", "approvals:read", name="agentbob")) as http:
        opened = open_request(http)
    approve, reject = f"approve:{opened['id']}", f"reject:{opened['id']}"
    # Not linked to any reviewer: told how to be linked, with their id.
    text = ephemeral_text(interact(server, click(STRANGER, approve)))
    assert "not linked" in text and STRANGER in text and "discord\\-user" in text
    text = ephemeral_text(interact(server, submission(STRANGER, opened["id"], "no")))
    assert "not linked" in text
    # The requester may not decide their own request: no vote, no form.
    assert "opened this request" in ephemeral_text(interact(server, click(BOB, approve)))
    assert "opened this request" in ephemeral_text(interact(server, click(BOB, reject)))
    refused = ephemeral_text(interact(server, submission(BOB, opened["id"], "mine")))
    assert "Nothing was decided" in refused
    nothing_decided(server, opened["id"])
    # A disabled reviewer is no reviewer.
    assert cli(database, "users", "disable", "alice").returncode == 0
    assert "not linked" in ephemeral_text(interact(server, click(ALICE, approve)))
    nothing_decided(server, opened["id"])


def test_bad_signatures_and_malformed_bodies_decide_nothing(
    database: Database, make_server: Callable[..., Server], discord: DiscordStandIn
) -> None:
    reviewer(database, "alice", ALICE)
    server = start(make_server, database, discord)
    with server.client(server.db.key("admin")) as http:
        opened = open_request(http)
    body = json.dumps(click(ALICE, f"approve:{opened['id']}"))
    now = int(time.time())
    good = sign(body)
    forged = {**good, "x-signature-ed25519": "ab" * 64}
    for headers, content in (
        (forged, body),
        (sign(body, key=SigningKey.generate()), body),  # another application's key
        (sign(body, timestamp=now - 6 * 60), body),  # stale
        (sign(body, timestamp=now + 6 * 60), body),  # from the future
        (good, body.replace("approve", "reject")),  # tampered
        ({"content-type": "application/json"}, body),  # unsigned
        ({**good, "x-signature-timestamp": "soon"}, body),
        ({**good, "x-signature-timestamp": f"+{now}"}, body),
        ({**good, "x-signature-ed25519": good["x-signature-ed25519"][:-2]}, body),
        ({**good, "x-signature-ed25519": "zz" * 64}, body),
    ):
        answer = httpx.post(server.base + "/discord/interactions", content=content, headers=headers)
        assert answer.status_code == 401, (headers, answer.text)
        assert answer.json()["error"] == "unauthorized"
    # Signed, but not what Discord sends: 400.
    good_click = click(ALICE, f"approve:{opened['id']}")
    for payload in (
        [good_click],
        {**good_click, "id": "not-a-snowflake"},
        {**good_click, "type": "3"},
        {k: v for k, v in good_click.items() if k != "member"},  # nobody clicked
        {**good_click, "member": {"user": {"id": 5}}},
        {**good_click, "data": {"custom_id": "approve:" + "x" * 200}},
        {**good_click, "data": {"custom_id": f"approve:{opened['id']}\u0000"}},
        {**good_click, "data": None},
        {
            **submission(ALICE, opened["id"], "no"),
            "data": {"custom_id": "reason:x", "components": 5},
        },
    ):
        answer = interact(server, payload)
        assert answer.status_code == 400, (payload, answer.text)
        assert answer.json()["error"] == "invalid"
    for raw in (b"", b"not json", b"\xff\xfe", b"[" * 5000):
        answer = httpx.post(server.base + "/discord/interactions", content=raw, headers=sign(raw))
        assert answer.status_code == 400, (raw[:20], answer.text)
    nothing_decided(server, opened["id"])
    # Without a public key (or with one that is not 64 hex digits) nothing is verified.
    for key in ("", "not-hex"):
        keyless = start(make_server, database, discord, approvals_discord_public_key=key)
        answer = interact(keyless, click(ALICE, f"approve:{opened['id']}"))
        assert answer.status_code == 401, answer.text
    nothing_decided(server, opened["id"])
    # The well-formed, signed click still works.
    assert interact(server, good_click).json()["type"] == 7


def test_a_replayed_interaction_does_nothing_twice(
    database: Database, make_server: Callable[..., Server], discord: DiscordStandIn
) -> None:
    reviewer(database, "alice", ALICE)
    reviewer(database, "bob", BOB)
    server = start(make_server, database, discord)
    other = start(make_server, database, discord)  # another instance on the same database
    with server.client(server.db.key("admin")) as http:
        policy = {"tool": "delete_data", "action": "require", "minApprovals": 2}
        assert http.post("/v1/policies", json=policy).status_code == 201
        quorum = open_request(http, detail={"tool": "delete_data"})
        single = open_request(http, title="reject me")

    def replay(payload: dict[str, Any]) -> list[dict[str, Any]]:
        body = json.dumps(payload)
        headers = sign(body)
        answers = [
            httpx.post(target.base + "/discord/interactions", content=body, headers=headers)
            for target in (server, server, other)
        ]
        assert [a.status_code for a in answers] == [200, 200, 200]
        return [a.json() for a in answers]

    # A vote counts once; the replays are acknowledged (type 6) and change nothing.
    first, *again = replay(click(ALICE, f"approve:{quorum['id']}"))
    assert first["type"] == 4 and "1 of 2" in first["data"]["content"]
    assert again == [{"type": 6}, {"type": 6}]
    # Reject opens one form, however often the click is replayed.
    first, *again = replay(click(BOB, f"reject:{single['id']}"))
    assert first["type"] == 9 and again == [{"type": 6}, {"type": 6}]
    first, *again = replay(submission(BOB, single["id"], "replayed"))
    assert first["type"] == 7 and again == [{"type": 6}, {"type": 6}]
    with server.client(server.db.key("approvals:read")) as http:
        assert approval(http, quorum["id"])["status"] == "pending"
        assert [v["by"] for v in approval(http, quorum["id"])["votes"]] == ["alice"]
        done = approval(http, single["id"])
        assert done["status"] == "rejected" and done["comment"] == "replayed"
    assert server.db.scalar("SELECT count(*) FROM interaction_receipts") == 3
    # A new click by the same reviewer is a new interaction: answered, not ignored.
    again_click = interact(other, click(ALICE, f"approve:{quorum['id']}"))
    assert "already approved" in ephemeral_text(again_click)


def test_decisions_elsewhere_edit_the_discord_messages(
    database: Database, make_server: Callable[..., Server], discord: DiscordStandIn
) -> None:
    reviewer(database, "carol", CAROL)
    server = start(make_server, database, discord)
    with server.client(server.db.key("admin")) as http:
        route(http)
        route(http, target="reviewers")  # a direct message to carol too
        by_api = open_request(http, title="decided through the API")
        by_page = open_request(http, title="decided on the dashboard")
        posts = {item["id"]: posted_for(discord, item["id"], 2) for item in (by_api, by_page)}
    # One message has been deleted in Discord: its edit answers 404 and the others go on.
    discord.answers["edit"] = [(404, {}, {"message": "Unknown Message", "code": 10008})]
    with server.client(server.db.key("approvals:resolve", name="ops")) as ops:
        decided = ops.post(f"/v1/approvals/{by_api['id']}/decision", json={"decision": "approve"})
    assert decided.status_code == 200, decided.text
    api_edits = until(lambda: len(discord.of("edit")) == 2 and discord.of("edit"))
    assert [e.status for e in api_edits] == [404, 200]
    assert "**Approved** by ops" in api_edits[1].text() and api_edits[1].body["components"] == []
    assert api_edits[1].body["allowed_mentions"] == {"parse": []}
    until(
        lambda: (
            server.db.scalar(
                "SELECT count(*) FROM webhook_deliveries WHERE approval_id = :a"
                " AND event_type = 'notification.discord.update' AND status = 'succeeded'",
                a=by_api["id"],
            )
            == 1
        )
    )
    browser = server.client(follow_redirects=False)
    with contextlib.closing(browser):
        token = csrf_of(browser.get("/login").text)
        form = {"csrf_token": token, "username": "carol", "password": PASSWORD}
        assert browser.post("/login", data=form).status_code == 303
        csrf = csrf_of(browser.get("/").text)
        answer = browser.post(
            f"/approvals/{by_page['id']}/decide", data={"csrf_token": csrf, "decision": "reject"}
        )
        assert answer.status_code == 303, answer.text
    until(lambda: all(edits_of(discord, p) for p in posts[by_page["id"]]))
    for post in posts[by_page["id"]]:
        [edit] = edits_of(discord, post)
        assert edit.body["components"] == [] and "**Rejected** by carol" in edit.text()


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def test_reviewers_route_sends_each_allowed_reviewer_a_direct_message(
    database: Database, make_server: Callable[..., Server], discord: DiscordStandIn
) -> None:
    reviewer(database, "alice", ALICE)
    reviewer(database, "bob", BOB)
    reviewer(database, "erin")  # no Discord account
    server = start(make_server, database, discord)
    with server.client(server.db.key("admin")) as http:
        route(http, target="reviewers")
    with server.client(server.db.key("events:write", "approvals:read", name="bob")) as http:
        opened = open_request(http)  # bob asks: only alice may decide
    [post] = posted_for(discord, opened["id"])
    [dm] = discord.of("dm")
    assert dm.body == {"recipient_id": ALICE} and dm.headers["authorization"] == f"Bot {TOKEN}"
    assert post.channel == discord.dms[ALICE] and post.buttons()
    time.sleep(0.5)
    assert len(discord.of("dm")) == 1  # none to bob, the requester
    # Alice decides in the direct message.
    answer = interact(server, click(ALICE, post.buttons()[0]["custom_id"], post.channel, True))
    assert answer.json()["type"] == 7
    [edit] = until(lambda: edits_of(discord, post))
    assert "**Approved** by alice" in edit.text()


def test_agent_text_cannot_mention_anyone_or_break_the_limits(
    database: Database, make_server: Callable[..., Server], discord: DiscordStandIn
) -> None:
    reviewer(database, "alice", ALICE)
    server = start(make_server, database, discord)
    with server.client(server.db.key("admin")) as http:
        route(http)
        opened = open_request(
            http,
            title="@everyone <@123> **bold** [click](https://evil.example) <#456> <@&789> @here",
            detail={"arguments": {"a_note": "``` @everyone <@123>", "blob": "x" * 10_000}},
        )
        long = open_request(http, title="t" * 1000, agentId="_" * 200)
    [post] = posted_for(discord, opened["id"])
    assert post.body["allowed_mentions"] == {"parse": []}
    embed = post.body["embeds"][0]
    title = embed["title"]
    for raw in ("@everyone", "@here", "<@123>", "<#456>", "<@&789>", "**bold**", "[click]("):
        assert raw not in title, raw
    assert f"@{ZWSP}everyone" in title and f"<{ZWSP}@123\\>" in title
    assert "\\*\\*bold\\*\\*" in title and "\\[click\\]\\(https://evil.example\\)" in title
    # Inside the code block only a fence could escape: it is broken.
    code = embed["description"].split("```json\n", 1)[1].rsplit("\n```", 1)[0]
    assert "```" not in code and f"`{ZWSP}``" in code
    assert "Arguments truncated" in embed["description"] and "x" * 5000 not in code
    # Past Discord's limits the stand-in answers 400: the long one was posted whole.
    [post] = posted_for(discord, long["id"])
    embed = post.body["embeds"][0]
    assert len(embed["title"]) == 256 and embed["title"].endswith("…")
    agent = next(f["value"] for f in embed["fields"] if f["name"] == "Agent")
    assert agent == "\\_" * 99 + "…"  # cut between escapes, never inside one
    # The answers quote ids from the click, and mention nobody either.
    text = ephemeral_text(interact(server, click(ALICE, "approve:apr_<@123>@everyone")))
    assert "<@123>" not in text and "@everyone" not in text and "does not exist" in text
    with server.client(server.db.key("approvals:resolve", name="@here <@&5> ops")) as ops:
        decided = ops.post(f"/v1/approvals/{opened['id']}/decision", json={"decision": "reject"})
    assert decided.status_code == 200, decided.text
    [first] = posted_for(discord, opened["id"])
    [edit] = until(lambda: edits_of(discord, first))
    assert edit.body["allowed_mentions"] == {"parse": []}
    assert "@here" not in edit.text() and "<@&5>" not in edit.text()
    assert f"**Rejected** by @{ZWSP}here <{ZWSP}@&5\\> ops" in edit.body["embeds"][0]["description"]


def test_rate_limits_are_honoured_and_errors_recorded(
    database: Database, make_server: Callable[..., Server], discord: DiscordStandIn
) -> None:
    limited = {"message": "You are being rate limited.", "retry_after": 1.2, "global": False}
    # Retry-After (whole seconds) first; the JSON body's retry_after when there is no header.
    discord.answers["post"] = [(429, {"Retry-After": "1"}, limited)]
    server = start(make_server, database, discord)
    with server.client(server.db.key("admin")) as http:
        route(http)
        opened = open_request(http)
        first, second = discord.wait_for("post", 2)
        assert first.status == 429 and second.status == 200
        assert second.at - first.at >= 0.9  # Retry-After (1 s) beat the 0.3 s schedule
        error = server.db.scalar(
            "SELECT a.error FROM webhook_attempts a JOIN webhook_deliveries d"
            " ON d.id = a.delivery_id WHERE d.approval_id = :a ORDER BY a.id LIMIT 1",
            a=opened["id"],
        )
        assert "429" in error and "Retry-After 1s" in error
        discord.answers["post"] = [(429, {}, limited)]
        body_only = open_request(http, title="limited again")
        posted_for(discord, body_only["id"])
        first, second = discord.of("post", where=lambda c: body_only["id"] in json.dumps(c.body))
        assert first.status == 429 and second.status == 200
        assert second.at - first.at >= 1.1
        # A refusal a retry cannot fix (the bot may not see the channel) fails at once.
        discord.answers["post"] = [(403, {}, {"message": "Missing Access", "code": 50001})]
        refused = open_request(http, title="to a channel the bot cannot see")
        until(
            lambda: (
                server.db.scalar(
                    "SELECT status FROM webhook_deliveries WHERE approval_id = :a", a=refused["id"]
                )
                == "failed"
            )
        )
        assert "Missing Access" in server.db.scalar(
            "SELECT last_error FROM webhook_deliveries WHERE approval_id = :a", a=refused["id"]
        )
