"""Microsoft Teams over HTTP: the service against a Bot Framework stand-in (OpenID keys,
login, connector), activities signed with the stand-in's key as the Bot Framework signs them."""

from __future__ import annotations

import base64
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

from conftest import Database, Server, until
from teams_standin import APP_ID, KID, TOKEN, Call, TeamsStandIn, installation, invoke, rsa_key

PASSWORD = "correct horse battery"
PUBLIC = "https://approvals.example.com"
CONVERSATION = "19:approvals@thread.tacv2"
CARD = "application/vnd.microsoft.card.adaptive"
MESSAGE = "application/vnd.microsoft.activity.message"
# Entra (AAD) object ids of the reviewers' Teams accounts.
ALICE = "0a1b2c3d-0000-4000-8000-00000000a11c"
BOB = "0a1b2c3d-0000-4000-8000-000000000b0b"
CAROL = "0a1b2c3d-0000-4000-8000-0000000ca201"
DAVE = "0a1b2c3d-0000-4000-8000-000000000da7"
STRANGER = "0a1b2c3d-0000-4000-8000-00000000beef"
MARKDOWN = set("\\*_~[]()#>-+`|=&")


@pytest.fixture
def teams() -> Iterator[TeamsStandIn]:
    """A Bot Framework stand-in on a loopback port, stopped after the test."""
    standin = TeamsStandIn().start()
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


def reviewer(db: Database, name: str, teams_user: str | None = None) -> None:
    done = cli(db, "users", "create", name, "--password-stdin", stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    if teams_user:
        # Given in capitals: AAD object ids are matched lower-case.
        done = cli(db, "users", "update", name, "--teams-user", teams_user.upper())
        assert done.returncode == 0, done.stderr


def start(
    make_server: Callable[..., Server], db: Database, teams: TeamsStandIn, **env: str
) -> Server:
    settings = {
        **teams.settings(),
        "approvals_public_url": PUBLIC,
        "approvals_webhook_allowed_destinations": "127.0.0.1/32",
        "approvals_webhook_schedule": "0.3,0.3,0.3,0.3,0.3",
    }
    return make_server(db, **{**settings, **env})


def send(
    server: Server,
    teams: TeamsStandIn,
    activity: dict[str, Any] | bytes,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST an activity to the bot's endpoint, signed by the stand-in unless ``headers``."""
    body = activity if isinstance(activity, bytes) else json.dumps(activity).encode()
    return httpx.post(
        server.base + "/teams/messages",
        content=body,
        headers=teams.headers() if headers is None else headers,
        timeout=30,
    )


def install(server: Server, teams: TeamsStandIn, conversation: str = CONVERSATION) -> None:
    answer = send(server, teams, installation(teams, conversation))
    assert answer.status_code == 200, answer.text


def route(http: httpx.Client, target: str = CONVERSATION, **fields: Any) -> None:
    answer = http.post("/v1/notifications", json={"channel": "teams", "target": target, **fields})
    assert answer.status_code == 201, answer.text


def open_request(http: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {
        "title": "Deploy to production?",
        "agentId": "deployer",
        "runId": "run_7",
        "detail": {"tool": "deploy", "arguments": {"env": "prod"}},
        **fields,
    }
    answer = http.post("/v1/approvals", json=body)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def approval(http: httpx.Client, approval_id: str) -> dict[str, Any]:
    return dict(http.get(f"/v1/approvals/{approval_id}").json())


def posted_for(teams: TeamsStandIn, approval_id: str, count: int = 1) -> list[Call]:
    return teams.wait_for(
        "POST", count, where=lambda c: approval_id in json.dumps(c.body) and c.answer.get("id")
    )


def blocks(card: dict[str, Any]) -> list[dict[str, Any]]:
    return list(card["body"])


def texts(card: dict[str, Any]) -> list[str]:
    """What the card shows: every TextBlock and every fact."""
    out = []
    for block in blocks(card):
        if block["type"] == "TextBlock":
            out.append(block["text"])
        elif block["type"] == "FactSet":
            out.extend(f"{fact['title']}: {fact['value']}" for fact in block["facts"])
    return out


def text_of(card: dict[str, Any]) -> str:
    return "\n".join(texts(card))


def decidable(card: dict[str, Any]) -> bool:
    """Whether the card offers buttons or inputs."""
    return bool(card.get("actions")) or any(b["type"].startswith("Input.") for b in blocks(card))


def inert(text: str) -> bool:
    """True when no Markdown character is left unescaped and no ``{{`` function can open."""
    escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in MARKDOWN:
            return False
    return "{{" not in text and not re.search(r"^\s*\d+\.", text, re.M)


def rendered(text: str) -> str:
    """The text a reader sees once the escapes are read."""
    return re.sub(r"\\(.)", r"\1", text).replace("\u200b", "")


def delivery_of(server: Server, approval_id: str, url: str) -> dict[str, Any]:
    row = until(
        lambda: server.db.scalar(
            "SELECT status || '|' || coalesce(last_error, '') FROM webhook_deliveries"
            " WHERE approval_id = :a AND url = :u AND status IN ('failed', 'succeeded')",
            a=approval_id,
            u=url,
        )
    )
    status, _, error = row.partition("|")
    return {"status": status, "error": error}


def nothing_decided(server: Server, teams: TeamsStandIn, approval_id: str) -> None:
    with server.client(server.db.key("approvals:read")) as http:
        assert approval(http, approval_id)["status"] == "pending"
    assert server.db.scalar("SELECT count(*) FROM approval_votes") == 0
    assert teams.of("PUT") == []


def test_an_installation_teaches_where_to_post_and_the_card_has_both_buttons(
    database: Database, make_server: Callable[..., Server], teams: TeamsStandIn
) -> None:
    server = start(make_server, database, teams)  # no APPROVALS_TEAMS_SERVICE_URL
    with server.client(server.db.key("admin")) as http:
        route(http)
        early = open_request(http, title="before the bot was installed")
        failed = delivery_of(server, early["id"], f"teams:{CONVERSATION}")
        assert failed["status"] == "failed"
        assert (
            "install the bot in that conversation or set APPROVALS_TEAMS_SERVICE_URL"
            in (failed["error"])
        )
        assert teams.of("POST") == []

        install(server, teams)
        learned = server.db.scalar(
            "SELECT service_url FROM channel_conversations WHERE channel = 'teams'"
            " AND conversation = :c",
            c=CONVERSATION,
        )
        assert learned == teams.service_url
        opened = open_request(http, timeoutSeconds=3600)
        again = open_request(http, title="Restart the workers?")
        [call] = posted_for(teams, opened["id"])
        posted_for(teams, again["id"])
    assert call.conversation == CONVERSATION and call.body["type"] == "message"
    assert call.headers["authorization"] == f"Bearer {TOKEN}"
    assert len(teams.logins) == 1  # one token for both posts
    card = call.card
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert [(a["type"], a["verb"], a["title"]) for a in card["actions"]] == [
        ("Action.Execute", "approve", "Approve"),
        ("Action.Execute", "reject", "Reject"),
    ]
    approve, reject = card["actions"]
    # Approve carries the digest of the arguments the card shows (stale if they change).
    assert approve["data"] == {"approvalId": opened["id"], "digest": opened["argumentsDigest"]}
    assert reject["data"] == {"approvalId": opened["id"]}
    [reason] = [b for b in blocks(card) if b["type"] == "Input.Text"]
    assert reason["id"] == "reason" and reason["isMultiline"] and not reason["isRequired"]
    text = text_of(card)
    assert "Deploy to production?" in text
    assert "Agent: deployer" in text and "Tool: deploy" in text and "Run: run\\_7" in text
    assert "left (until" in text  # the time left
    assert f"[Open in Approvals]({PUBLIC}/approvals/{opened['id']})" in text
    assert '"env": "prod"' in text


def test_approve_and_reject_from_teams_answer_and_update_the_card(
    database: Database, make_server: Callable[..., Server], teams: TeamsStandIn
) -> None:
    reviewer(database, "alice", ALICE)
    server = start(make_server, database, teams)
    install(server, teams)
    with server.client(server.db.key("admin", name="agent")) as http:
        route(http)
        first = open_request(http)
        second = open_request(http, title="Delete the staging database?")
        [post1] = posted_for(teams, first["id"])
        [post2] = posted_for(teams, second["id"])
        digest = post1.card["actions"][0]["data"]["digest"]

        answer = send(server, teams, invoke(teams, ALICE, "approve", first["id"], digest=digest))
        assert answer.status_code == 200, answer.text
        assert answer.json()["statusCode"] == 200 and answer.json()["type"] == CARD
        shown = answer.json()["value"]
        assert not decidable(shown) and "**Approved** by alice at" in text_of(shown)
        done = approval(http, first["id"])
        assert done["status"] == "approved" and done["resolvedBy"] == "alice"
        [update] = teams.wait_for("PUT", where=lambda c: c.ref == post1.answer["id"])
        assert update.conversation == CONVERSATION and update.body["id"] == post1.answer["id"]
        assert not decidable(update.card) and "**Approved** by alice" in text_of(update.card)

        # Reject: the reason box's text arrives in the action's data.
        rejected = invoke(teams, ALICE, "reject", second["id"], reason="  Not on a Friday\n")
        answer = send(server, teams, rejected)
        assert answer.status_code == 200, answer.text
        shown = answer.json()["value"]
        assert not decidable(shown)
        assert "**Rejected** by alice" in text_of(shown) and "Not on a Friday" in text_of(shown)
        done = approval(http, second["id"])
        assert done["status"] == "rejected" and done["comment"] == "Not on a Friday"
        assert done["resolvedBy"] == "alice"
        [update] = teams.wait_for("PUT", where=lambda c: c.ref == post2.answer["id"])
        assert "**Rejected** by alice" in text_of(update.card) and not decidable(update.card)


def test_unlinked_and_refused_reviewers_get_a_message_and_nothing_is_decided(
    database: Database, make_server: Callable[..., Server], teams: TeamsStandIn
) -> None:
    reviewer(database, "alice", ALICE)
    reviewer(database, "agentbob", BOB)
    server = start(make_server, database, teams)
    install(server, teams)
    with server.client(server.db.key("admin")) as http:
        route(http)
    with server.client(server.db.key("events:write", "approvals:read", name="agentbob")) as http:
        opened = open_request(http)
    posted_for(teams, opened["id"])

    def said(activity: dict[str, Any]) -> str:
        answer = send(server, teams, activity)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["statusCode"] == 200 and body["type"] == MESSAGE, body
        return str(body["value"])

    # A Teams account linked to no reviewer (and one without an AAD id at all).
    text = said(invoke(teams, STRANGER, "approve", opened["id"]))
    assert "not linked" in text and f"--teams-user {STRANGER}" in text
    assert "not linked" in said(invoke(teams, None, "reject", opened["id"], reason="no"))
    # The requester may not decide their own request (no self-approval), either way.
    assert "opened this request" in said(invoke(teams, BOB, "approve", opened["id"]))
    assert "opened this request" in said(invoke(teams, BOB, "reject", opened["id"], reason="x"))
    # A disabled reviewer is refused too.
    assert cli(database, "users", "disable", "alice").returncode == 0
    assert "not linked" in said(invoke(teams, ALICE, "approve", opened["id"]))
    nothing_decided(server, teams, opened["id"])


def unsigned(teams: TeamsStandIn) -> str:
    """A token with ``alg: none`` and no signature."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    claims = {"serviceurl": teams.service_url, "iss": "https://api.botframework.com"}
    claims |= {"aud": APP_ID, "exp": int(time.time()) + 600}
    return f"{part({'alg': 'none', 'typ': 'JWT', 'kid': KID})}.{part(claims)}."


def test_activities_without_a_valid_bot_framework_token_are_refused(
    database: Database, make_server: Callable[..., Server], teams: TeamsStandIn
) -> None:
    reviewer(database, "alice", ALICE)
    server = start(make_server, database, teams)
    install(server, teams)
    with server.client(server.db.key("admin")) as http:
        route(http)
        opened = open_request(http)
    posted_for(teams, opened["id"])
    fetched = teams.key_fetches
    now = int(time.time())
    token = teams.token()
    refused = {
        "signed by another key with the same kid": teams.token(key=rsa_key(KID)),
        "signed by a key the metadata does not list": teams.token(key=rsa_key("rotated?")),
        "for another bot": teams.token(aud="11111111-2222-3333-4444-555555555555"),
        "expired": teams.token(nbf=now - 7200, exp=now - 3600),
        "not valid yet": teams.token(nbf=now + 3600, exp=now + 7200),
        "without an expiry": teams.token(exp=None),
        "from another issuer": teams.token(iss="https://login.microsoftonline.com/x/v2.0"),
        "for another service URL": teams.token(service_url="https://smba.example.net/amer/"),
        "without a service URL": teams.token(serviceurl=None),
        "unsigned": unsigned(teams),
        "not a JWT": "not.a.jwt",
    }
    headers = {name: teams.headers(value) for name, value in refused.items()}
    headers["no Authorization header"] = {"content-type": "application/json"}
    headers["not a Bearer token"] = {"authorization": f"Basic {token}"}
    headers["an empty Bearer"] = {"authorization": "Bearer"}
    for name, sent in headers.items():
        for activity in (
            invoke(teams, ALICE, "approve", opened["id"]),
            installation(teams, "19:elsewhere@thread.tacv2"),
        ):
            answer = send(server, teams, activity, headers=sent)
            assert answer.status_code == 401, (name, answer.text)
            assert answer.json()["error"] == "unauthorized"
    nothing_decided(server, teams, opened["id"])
    assert server.db.scalar("SELECT count(*) FROM channel_conversations") == 1
    assert server.db.scalar("SELECT count(*) FROM interaction_receipts") == 0
    # The unknown kid fetched the keys once more (no more than once a minute).
    assert teams.key_fetches == fetched + 1
    # With the token valid, the same click decides.
    answer = send(server, teams, invoke(teams, ALICE, "approve", opened["id"]))
    assert answer.json()["type"] == CARD, answer.text
    # Without an app id, no activity is taken.
    bare = start(make_server, database, teams, approvals_teams_app_id="")
    answer = send(bare, teams, installation(teams, "19:other@thread.tacv2"))
    assert answer.status_code == 401 and "APPROVALS_TEAMS_APP_ID" in answer.json()["message"]
    assert server.db.scalar("SELECT count(*) FROM channel_conversations") == 1


def test_malformed_activities_answer_400_and_decide_nothing(
    database: Database, make_server: Callable[..., Server], teams: TeamsStandIn
) -> None:
    reviewer(database, "alice", ALICE)
    server = start(make_server, database, teams)
    with server.client(server.db.key("admin")) as http:
        opened = open_request(http)
    good = invoke(teams, ALICE, "approve", opened["id"])
    action = good["value"]["action"]
    bodies: list[dict[str, Any] | bytes] = [
        b"not json",
        b"[]",
        {**good, "serviceUrl": None},
        {k: v for k, v in good.items() if k != "id"},
        {**good, "type": 5},
        {**good, "value": None},
        {**good, "value": {"action": "approve"}},
        {**good, "value": {"action": {**action, "data": {"approvalId": 5}}}},
        {**good, "value": {"action": {**action, "data": {}}}},
        {**good, "value": {"action": {**action, "data": {"approvalId": "x" * 5000}}}},
        {**good, "value": {"action": {**action, "data": {**action["data"], "reason": "\u0000"}}}},
        {**good, "from": {"id": "29:x", "aadObjectId": "not-a-guid"}},
        {**good, "conversation": {"id": ""}},
        {**good, "conversation": "19:approvals@thread.tacv2"},
        {**good, "channelData": {"tenant": {"id": 5}}},
    ]
    for body in bodies:
        answer = send(server, teams, body)
        assert answer.status_code == 400, (body, answer.status_code, answer.text)
        assert answer.json()["error"] == "invalid" and answer.json()["message"]
    # A service URL that is not http(s), even when the token names it.
    odd = {**good, "serviceUrl": "ftp://smba.example.net/"}
    answer = send(server, teams, odd, headers=teams.headers(teams.token("ftp://smba.example.net/")))
    assert answer.status_code == 400, answer.text
    nothing_decided(server, teams, opened["id"])
    # Other activity types are acknowledged and do nothing; the well-formed click decides.
    for other in ({**good, "type": "message", "text": "hello"}, {**good, "name": "task/fetch"}):
        answer = send(server, teams, other)
        assert answer.status_code == 200 and answer.content == b"", answer.text
    nothing_decided(server, teams, opened["id"])
    assert send(server, teams, good).json()["type"] == CARD
    with server.client(server.db.key("approvals:read")) as http:
        assert approval(http, opened["id"])["status"] == "approved"


def test_a_replayed_invoke_does_nothing_twice(
    database: Database, make_server: Callable[..., Server], teams: TeamsStandIn
) -> None:
    reviewer(database, "alice", ALICE)
    reviewer(database, "bob", BOB)
    server = start(make_server, database, teams)
    other = start(make_server, database, teams)  # another instance on the same database
    with server.client(server.db.key("admin")) as http:
        policy = {"tool": "delete_data", "action": "require", "minApprovals": 2}
        assert http.post("/v1/policies", json=policy).status_code == 201
        quorum = open_request(http, detail={"tool": "delete_data", "arguments": {"table": "t"}})
        single = open_request(http, title="reject me")

    def replay(activity: dict[str, Any]) -> list[dict[str, Any]]:
        headers = teams.headers()
        answers = [send(target, teams, activity, headers) for target in (server, server, other)]
        assert [a.status_code for a in answers] == [200, 200, 200]
        return [a.json() for a in answers]

    # A vote counts once; the replays show the card as it is and vote nothing.
    first, *again = replay(invoke(teams, ALICE, "approve", quorum["id"]))
    assert first["type"] == MESSAGE and "1 of 2" in first["value"]
    assert all(a["type"] == CARD and decidable(a["value"]) for a in again)
    # A rejection is made once: a replay acted on would say it was already rejected.
    first, *again = replay(invoke(teams, BOB, "reject", single["id"], reason="replayed"))
    assert first["type"] == CARD and "**Rejected** by bob" in text_of(first["value"])
    assert again == [first, first]
    with server.client(server.db.key("approvals:read")) as http:
        assert [v["by"] for v in approval(http, quorum["id"])["votes"]] == ["alice"]
        assert approval(http, quorum["id"])["status"] == "pending"
        done = approval(http, single["id"])
        assert done["status"] == "rejected" and done["comment"] == "replayed"
    assert server.db.scalar("SELECT count(*) FROM interaction_receipts") == 2


def test_a_decision_elsewhere_updates_the_card_and_rate_limits_are_honoured(
    database: Database, make_server: Callable[..., Server], teams: TeamsStandIn
) -> None:
    teams.answers["POST"] = [
        (429, {"Retry-After": "1"}, {"error": {"code": "Throttled", "message": "slow down"}})
    ]
    server = start(make_server, database, teams)
    install(server, teams)
    with server.client(server.db.key("admin")) as http:
        route(http)
        opened = open_request(http)
        throttled, posted = teams.wait_for("POST", 2)
        assert posted.at - throttled.at >= 0.9  # Retry-After (1 s) beat the 0.3 s schedule
        history = server.db.scalar(
            "SELECT a.error FROM webhook_attempts a JOIN webhook_deliveries d"
            " ON d.id = a.delivery_id WHERE d.approval_id = :a ORDER BY a.id LIMIT 1",
            a=opened["id"],
        )
        assert "Teams answered HTTP 429" in history and "Retry-After" in history
    # The kept token is refused once (revoked): a new one is fetched and the edit made.
    teams.answers["PUT"] = [(401, {}, {"error": {"code": "Unauthorized", "message": "revoked"}})]
    with server.client(server.db.key("approvals:resolve", name="ops")) as ops:
        answer = ops.post(f"/v1/approvals/{opened['id']}/decision", json={"decision": "approve"})
        assert answer.status_code == 200, answer.text
    refused, update = teams.wait_for("PUT", 2)
    assert refused.ref == update.ref and len(teams.logins) == 2
    assert update.conversation == CONVERSATION and update.ref == posted.answer["id"]
    assert update.headers["authorization"] == f"Bearer {TOKEN}"
    assert "**Approved** by ops" in text_of(update.card) and not decidable(update.card)


def test_agent_text_is_escaped_in_the_card(
    database: Database, make_server: Callable[..., Server], teams: TeamsStandIn
) -> None:
    server = start(make_server, database, teams)
    install(server, teams)
    evil = "[click](https://evil.example) **x** {{DATE(2020-01-01T00:00:00Z)}}"
    lines = "1. step one\n# Heading\n===\n> quoted\n- item | cell `code` ~gone~ _it_ &amp; \\"
    requester = "**boss** [me](https://evil.example)"
    with server.client(server.db.key("admin", name=requester)) as http:
        route(http)
        opened = open_request(
            http,
            title=evil,
            agentId="agent_[x](https://evil.example)",
            runId="{{TIME(2020-01-01T00:00:00Z)}}",
            detail={"tool": "shell", "arguments": {"note": evil, "more": lines}},
        )
        listed = open_request(http, title=lines + "\u202e\x07")
        [call] = posted_for(teams, opened["id"])
        [other] = posted_for(teams, listed["id"])
    card = call.card
    title, facts, arguments = blocks(card)[:3]
    assert inert(title["text"]) and rendered(title["text"]) == evil
    assert "https://evil.example" in title["text"] and "](https" not in title["text"]
    values = {fact["title"]: fact["value"] for fact in facts["facts"]}
    for name, raw in (
        ("Agent", "agent_[x](https://evil.example)"),
        ("Run", "{{TIME(2020-01-01T00:00:00Z)}}"),
        ("Requested by", requester),
    ):
        assert inert(values[name]) and rendered(values[name]) == raw, (name, values[name])
    assert arguments["fontType"] == "Monospace" and inert(arguments["text"])
    shown = json.dumps({"more": lines, "note": evil}, indent=2, ensure_ascii=False)
    assert rendered(arguments["text"]) == shown
    # Line starts that open lists, headings and quotes; control and bidi characters dropped.
    heading = blocks(other.card)[0]["text"]
    assert inert(heading) and rendered(heading) == lines
    # The outcome quotes who decided and their reason: escaped the same way.
    with server.client(server.db.key("approvals:resolve", name="[ops](https://x.example)")) as ops:
        answer = ops.post(
            f"/v1/approvals/{opened['id']}/decision", json={"decision": "reject", "comment": evil}
        )
        assert answer.status_code == 200, answer.text
    [update] = teams.wait_for("PUT")
    outcome, reason = [t for t in texts(update.card) if t.startswith(("**Rejected**", "Reason:"))]
    assert outcome.startswith("**Rejected** by ")
    who = outcome.removeprefix("**Rejected** by ").rsplit(" at ", 1)[0]
    assert inert(who) and rendered(who) == "[ops](https://x.example)"
    assert inert(reason) and rendered(reason) == f"Reason: {evil}"


def test_a_reviewers_route_reaches_each_reviewer_in_their_personal_chat(
    database: Database, make_server: Callable[..., Server], teams: TeamsStandIn
) -> None:
    reviewer(database, "carol", CAROL)
    reviewer(database, "dave", DAVE)  # never installs the bot
    server = start(make_server, database, teams)
    personal = "a:1carolPersonalChatWithTheBot"
    answer = send(server, teams, installation(teams, personal, "personal", user=CAROL.upper()))
    assert answer.status_code == 200, answer.text
    owner = server.db.scalar(
        "SELECT user_ref FROM channel_conversations WHERE conversation = :c", c=personal
    )
    assert owner == CAROL
    with server.client(server.db.key("admin")) as http:
        route(http, target="reviewers")
        opened = open_request(http)
        [call] = posted_for(teams, opened["id"])
        assert call.conversation == personal and decidable(call.card)
        failed = delivery_of(server, opened["id"], f"teams:{DAVE}")
        assert failed["status"] == "failed"
        assert "dave has not installed the bot in a personal chat" in failed["error"]
        # Carol decides from her chat.
        clicked = invoke(teams, CAROL, "approve", opened["id"], conversation=personal)
        assert send(server, teams, clicked).json()["type"] == CARD
        assert approval(http, opened["id"])["resolvedBy"] == "carol"
        # Removing the bot forgets the chat.
        removed = installation(teams, personal, "personal", user=CAROL, action="remove")
        assert send(server, teams, removed).status_code == 200
        assert server.db.scalar("SELECT count(*) FROM channel_conversations") == 0
