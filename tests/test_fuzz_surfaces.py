"""Property tests for what the OpenAPI document does not describe, on each database: Slack
callbacks, email link pages, dashboard forms with a signed-in session, CLI arguments.

Each test starts one real server and runs a Hypothesis property against it (an inner
function under ``@given``: Hypothesis does not take function-scoped fixtures). The
properties: never a 5xx (and for Slack: unsigned is 401, signed is 400 or 200, nothing is
decided unless by a well-formed click of a linked reviewer); afterwards every reader
answers 2xx, the log is gapless and the server printed no traceback.

Bounded for CI: ``APPROVALS_FUZZ_EXAMPLES`` (8 by default, as for schemathesis) sets the
examples, ``max(40, 5 * n)`` per HTTP surface and ``max(15, n)`` for the CLI, whose every
example is a process; ``make fuzz`` runs 200. Derandomised: the same examples every run.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from itsdangerous import URLSafeTimedSerializer

from approvals.delivery.channels import email
from conftest import Database, Server
from slack_standin import SlackStandIn, click, form, submission
from test_fuzz import assert_log_is_gapless, assert_readers_answer
from test_notify_slack import PASSWORD, cli, reviewer, sign_in, signed_as_sent
from test_notify_slack import start as start_with_slack

BASE = int(os.environ.get("APPROVALS_FUZZ_EXAMPLES", "8"))
EXAMPLES = max(40, 5 * BASE)
CLI_EXAMPLES = max(15, BASE)
SECRET_KEY = "fuzz-secret-key-for-signed-links"


def bounded(examples: int = EXAMPLES) -> Callable[[Any], Any]:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# -- strategies ----------------------------------------------------------------------------

# All of Unicode that can be sent as UTF-8 (no lone surrogates), NUL included.
TEXT = st.text(st.characters(codec="utf-8"), max_size=40)
HOSTILE = st.sampled_from(
    [
        "",
        "\x00",
        "a\x00b",
        "²",
        "١٢",
        "-1",
        "9" * 30,
        "x" * 5000,
        "[" * 3000,
        '{"a":' * 3000,
        "\ufffd",
        "\u202e",
        "<script>alert(1)</script>",
        "../../etc/passwd",
        "%00",
        " ",
    ]
)
STRINGS = st.one_of(TEXT, HOSTILE)
JUNK = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | STRINGS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)


def either(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the right shape, sometimes anything at all."""
    return st.one_of(good, good, JUNK)


def fields(names: list[str]) -> st.SearchStrategy[dict[str, str]]:
    """Form fields: known names with hostile values, and random names."""
    return st.dictionaries(st.sampled_from(names) | TEXT, STRINGS, max_size=6)


def no_5xx(answer: httpx.Response, what: Any, seen: Counter[int] | None = None) -> None:
    assert answer.status_code < 500, (what, answer.status_code, answer.text[:2_000])
    if seen is not None:
        seen[answer.status_code] += 1


@contextlib.contextmanager
def clean_afterwards(server: Server) -> Iterator[None]:
    yield
    assert_readers_answer(server)
    assert_log_is_gapless(server)
    assert "Traceback" not in server.log_text(), server.log_text()[-8_000:]


def open_approvals(server: Server, count: int, **fields_: Any) -> list[str]:
    """Open ``count`` approvals as an agent (not a reviewer, so reviewers may decide)."""
    ids = []
    with server.client(server.db.key("events:write", name="fuzz-agent")) as http:
        for n in range(count):
            body = {
                "title": f"Deploy #{n}?",
                "agentId": "deployer",
                "detail": {"tool": "deploy", "arguments": {"env": "prod", "replicas": 3}},
                **fields_,
            }
            answer = http.post("/v1/approvals", json=body)
            assert answer.status_code == 201, answer.text
            ids.append(answer.json()["id"])
    return ids


def statuses(server: Server, key: str) -> dict[str, str]:
    with server.client(key) as http:
        page = http.get("/v1/approvals", params={"status": "all", "limit": "500"}).json()
    return {a["id"]: a["status"] for a in page["approvals"]}


# -- a. Slack interactions -----------------------------------------------------------------


def slack_payloads(approvals: list[str]) -> st.SearchStrategy[Any]:
    """Payloads shaped like Slack's ``block_actions`` and ``view_submission``, wrong types
    mixed in, and well-formed clicks and submissions now and then."""
    users = st.sampled_from(["U0ALICE", "U0STRANGER", "U0ALICE\x00", "u0alice"]) | STRINGS
    targets = st.sampled_from(approvals) | STRINGS
    action = st.fixed_dictionaries(
        {},
        optional={
            "action_id": either(st.sampled_from(["approve", "reject", "other"])),
            "value": either(targets),
            "type": either(st.just("button")),
            "block_id": either(st.just("decision")),
            "action_ts": either(st.just("1.0")),
        },
    )
    block_actions = st.fixed_dictionaries(
        {"type": either(st.just("block_actions"))},
        optional={
            "user": either(st.fixed_dictionaries({"id": either(users)})),
            "actions": either(st.lists(either(action), max_size=3)),
            "channel": either(st.fixed_dictionaries({"id": either(st.just("C0APPROVALS"))})),
            "container": either(st.fixed_dictionaries({"channel_id": either(TEXT)})),
            "trigger_id": either(TEXT),
            "response_url": either(st.just("http://127.0.0.1:9/unused")),
            "team": JUNK,
        },
    )
    value = st.fixed_dictionaries({"value": either(STRINGS | st.none())})
    values = st.fixed_dictionaries({"reason": either(st.fixed_dictionaries({"reason": value}))})
    view = st.fixed_dictionaries(
        {},
        optional={
            "id": either(TEXT),
            "callback_id": either(st.just("reject_reason")),
            "private_metadata": either(targets),
            "state": either(st.fixed_dictionaries({"values": either(values)})),
        },
    )
    view_submission = st.fixed_dictionaries(
        {"type": either(st.just("view_submission"))},
        optional={"user": either(st.fixed_dictionaries({"id": either(users)})), "view": view},
    )
    wellformed = st.one_of(
        st.builds(click, st.sampled_from(["U0ALICE", "U0STRANGER"]),
                  st.sampled_from(["approve", "reject"]), targets),
        st.builds(submission, st.sampled_from(["U0ALICE", "U0STRANGER"]), targets, STRINGS),
    )  # fmt: skip
    return st.one_of(block_actions, view_submission, wellformed, wellformed, JUNK)


def slack_bodies(approvals: list[str]) -> st.SearchStrategy[bytes]:
    as_form = slack_payloads(approvals).map(lambda p: form(p).encode())
    raw_json = slack_payloads(approvals).map(
        lambda p: urlencode({"payload": json.dumps(p, ensure_ascii=False)}).encode()
    )
    return st.one_of(
        as_form,
        as_form,
        raw_json,
        st.binary(max_size=300),
        st.dictionaries(st.sampled_from(["payload"]) | TEXT, STRINGS, max_size=3).map(
            lambda d: urlencode(d).encode()
        ),
        st.builds(lambda p, tail: form(p).encode() + tail, slack_payloads(approvals),
                  st.binary(max_size=20)),
    )  # fmt: skip


# What a header value can carry (sent as UTF-8): no control characters; spaces around a
# value never arrive (HTTP parsers strip them).
HEADER_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cc"]), max_size=30)
STAMPS = st.one_of(
    st.none(),  # now, most of the time
    st.none(),
    st.none(),
    st.none(),
    HEADER_TEXT.filter(lambda s: s == s.strip(" \t")),
    HOSTILE.filter(lambda s: "\x00" not in s and s == s.strip()),
    st.integers(min_value=-(10**12), max_value=10**12).map(str),
    st.integers(min_value=-400, max_value=400).map(lambda d: str(int(time.time()) + d)),
)


def _may_decide(payload: Any, approval_id: str) -> bool:
    """A well-formed click (approve) or reject-reason submission by the linked reviewer."""
    if not isinstance(payload, dict) or not isinstance(payload.get("user"), dict):
        return False
    if payload["user"].get("id") != "U0ALICE":
        return False
    if payload.get("type") == "block_actions":
        actions = payload.get("actions")
        return isinstance(actions, list) and any(
            isinstance(a, dict)
            and a.get("action_id") == "approve"
            and isinstance(a.get("value"), str)
            and a["value"].partition("|")[0] == approval_id
            for a in actions
        )
    view = payload.get("view")
    return (
        payload.get("type") == "view_submission"
        and isinstance(view, dict)
        and view.get("callback_id") == "reject_reason"
        and view.get("private_metadata") == approval_id
    )


def _utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _payload_of(body: bytes) -> Any:
    from urllib.parse import parse_qs

    try:
        values = parse_qs(body.decode("utf-8"), strict_parsing=False).get("payload")
        return json.loads(values[0]) if values and len(values) == 1 else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None


def test_slack_callbacks_never_fail_and_decide_only_on_a_linked_click(
    database: Database, make_server: Callable[..., Server], slack: SlackStandIn
) -> None:
    reviewer(database, "alice", "U0ALICE")
    server = start_with_slack(make_server, database, slack)
    pool = open_approvals(server, 6)
    url = server.base + "/slack/interactions"
    key = server.db.key("approvals:read", name="fuzz-statuses")
    seen: Counter[int] = Counter()
    decided: list[str] = []

    @bounded()
    @given(body=slack_bodies(pool), stamp=STAMPS, signed=st.sampled_from([True, True, True, False]))
    def property_(body: bytes, stamp: str | None, signed: bool) -> None:
        before = statuses(server, key)
        now = int(time.time())
        headers = signed_as_sent(body, stamp if stamp is not None else str(now))
        if not signed:
            del headers["x-slack-signature"]
            if stamp is None:
                del headers["x-slack-request-timestamp"]
        answer = httpx.post(url, content=body, headers=headers, timeout=30)
        no_5xx(answer, (body[:300], stamp, signed), seen)
        skew = abs(int(stamp) - now) if stamp and stamp.isascii() and stamp.isdigit() else None
        in_window = stamp is None or (skew is not None and skew <= 300)
        if not signed or not in_window or not _utf8(body):
            # Slack signs UTF-8 form bodies only: anything else is refused as unverified.
            assert answer.status_code == 401, (body[:300], stamp, answer.text)
        elif skew is None or skew < 295:  # (at the edge of the window, either answer)
            assert answer.status_code in (200, 400), (body[:300], answer.status_code, answer.text)
        after = statuses(server, key)
        changed = [a for a in before if before[a] != after.get(a)]
        if changed:
            payload = _payload_of(body)
            assert signed and in_window and answer.status_code == 200, (changed, body[:300])
            assert all(_may_decide(payload, a) for a in changed), (changed, payload)
            decided.extend(changed)

    with clean_afterwards(server):
        property_()
    print("slack answers", dict(seen), "decided", len(decided))
    assert {200, 400, 401} <= set(seen), seen  # the fuzzer reached each kind of answer


# -- b. email links ------------------------------------------------------------------------


def _token(signer: URLSafeTimedSerializer, data: Any) -> str:
    return str(signer.dumps(data))


def email_tokens(pool: list[str]) -> st.SearchStrategy[str]:
    """Random path segments, mangled tokens, and tokens signed with the service's key that
    carry hostile contents (an insider's or a future bug's link must not crash it either)."""
    signer = email.signer(SECRET_KEY)
    link = st.fixed_dictionaries(
        {
            "a": either(st.sampled_from(pool) | STRINGS),
            "u": either(st.sampled_from(["alice", "nobody"]) | STRINGS),
            "d": either(st.sampled_from(["approve", "reject"])),
            "n": either(TEXT),
        }
    )
    signed = st.one_of(link, JUNK).map(lambda data: _token(signer, data))
    genuine = st.builds(
        lambda a, d: email.make_links(signer, a, "alice")[d],
        st.sampled_from(pool),
        st.sampled_from(["approve", "reject"]),
    )
    mangled = st.builds(lambda t, cut, tail: t[:cut] + tail, signed, st.integers(0, 80), TEXT)
    return st.one_of(STRINGS.filter(bool), signed, signed, genuine, genuine, mangled)


def test_email_link_pages_never_fail(
    database: Database, make_server: Callable[..., Server]
) -> None:
    reviewer(database, "alice")
    server = make_server(database, approvals_secret_key=SECRET_KEY)
    pool = open_approvals(server, 6)
    seen: Counter[int] = Counter()

    @bounded()
    @given(
        token=email_tokens(pool),
        method=st.sampled_from(["GET", "POST"]),
        data=fields(["comment", "csrf_token", "decision"]),
        query=st.just({}) | st.just({}) | st.dictionaries(TEXT, STRINGS, max_size=2),
    )
    def property_(token: str, method: str, data: dict[str, str], query: dict[str, str]) -> None:
        url = f"{server.base}/email/{quote(token, safe='')}"
        answer = httpx.request(
            method, url, data=data if method == "POST" else None, params=query, timeout=30
        )
        no_5xx(answer, (method, token[:200], data), seen)

    with clean_afterwards(server):
        property_()
    print("email answers", dict(seen))
    assert 200 in seen and 400 in seen, seen


# -- c. dashboard forms with a live session ------------------------------------------------

POST_ROUTES = [
    "/approvals/{id}/decide",
    "/approvals/{id}/claim",
    "/approvals/batch",
    "/webhooks/deliveries/{delivery}/retry",
    "/grants/{delivery}/revoke",
    "/approvals/{id}/assign",
    "/settings/away",
    "/dashboard/push/subscribe",
    "/dashboard/push/unsubscribe",
]
GET_PAGES = [
    "/",
    "/history",
    "/events",
    "/audit",
    "/webhooks",
    "/grants",
    "/settings",
    "/dashboard/push/key",
    "/insights",
    "/approvals/{id}",
    "/approvals/{id}/panel",
    "/login",
]
FORM_NAMES = [
    "csrf_token",
    "decision",
    "comment",
    "answer",
    "arguments",
    "edit",
    "arg:env",
    "arg:replicas",
    "confirmed",
    "view",
    "ids",
    "release",
    "step",
    "grant",
    "arguments_digest",
    "to",
    "away_until",
    "delegate",
    "back",
    "id",
    "endpoint",
]
QUERY_NAMES = [
    "agent",
    "tool",
    "q",
    "sort",
    "status",
    "reviewer",
    "since",
    "until",
    "type",
    "view",
    "after",
    "next",
    "thread_id",
    "run_id",
    "category",
    "source",
]


def test_dashboard_forms_and_pages_never_fail(
    database: Database, make_server: Callable[..., Server]
) -> None:
    done = cli(database, "users", "create", "dora", "--admin", "--password-stdin",
               stdin=PASSWORD + "\n")  # fmt: skip
    assert done.returncode == 0, done.stderr
    closed = "http://127.0.0.1:9"
    server = make_server(database, approvals_webhook_schedule="0.2,0.2")
    pool = open_approvals(server, 8)
    with server.client(server.db.key("admin", name="fuzz-admin")) as http:
        made = http.post(
            "/v1/webhooks", json={"url": closed + "/hook", "eventTypes": ["approval.resolved"]}
        )
        assert made.status_code == 201, made.text
        http.post(f"/v1/approvals/{pool[0]}/decision", json={"decision": "reject"})
    delivery = _delivery(server)
    browser, csrf = sign_in(server, "dora")
    ids = st.sampled_from(pool) | STRINGS.filter(bool)
    deliveries = st.sampled_from([delivery]) | STRINGS.filter(bool)
    seen: Counter[int] = Counter()

    def fill(path: str, approval: str, other: str) -> str:
        return path.replace("{id}", quote(approval, safe="")).replace(
            "{delivery}", quote(other, safe="")
        )

    @bounded()
    @given(
        post=st.booleans(),
        path=st.sampled_from(POST_ROUTES),
        page=st.sampled_from(GET_PAGES),
        approval=ids,
        other=deliveries,
        data=fields(FORM_NAMES),
        with_csrf=st.sampled_from([True, True, True, False]),
        htmx=st.booleans(),
        query=st.dictionaries(st.sampled_from(QUERY_NAMES), STRINGS, max_size=3)
        | st.dictionaries(st.sampled_from(QUERY_NAMES) | TEXT, STRINGS, max_size=3),
        multi=st.lists(ids, max_size=3),
    )
    def property_(
        post: bool,
        path: str,
        page: str,
        approval: str,
        other: str,
        data: dict[str, str],
        with_csrf: bool,
        htmx: bool,
        query: dict[str, str],
        multi: list[str],
    ) -> None:
        headers = {"HX-Request": "true"} if htmx else {}
        if post:
            body: dict[str, Any] = dict(data)
            if with_csrf:
                body["csrf_token"] = csrf
            if multi:
                body["ids"] = multi
            url = fill(path, approval, other)
            answer = browser.post(url, data=body, headers=headers)
            no_5xx(answer, (url, body), seen)
        else:
            url = fill(page, approval, other)
            answer = browser.get(url, params=query, headers=headers)
            no_5xx(answer, (url, query), seen)
            with browser.stream("GET", "/dashboard/stream", params=query, timeout=10) as stream:
                no_5xx(stream, ("/dashboard/stream", query), seen)
        # The session is still live (a fuzzed form never signs the reviewer out).
        assert browser.get("/").status_code == 200

    with contextlib.closing(browser), clean_afterwards(server):
        property_()
        # And the signed-in pages still answer for this reviewer.
        for page in ("/", "/history", "/events", "/audit", "/webhooks", f"/approvals/{pool[1]}"):
            assert browser.get(page).status_code == 200, page
    print("dashboard answers", dict(seen))
    assert 200 in seen and any(400 <= code < 500 for code in seen), seen


def _delivery(server: Server) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = server.db.scalar("SELECT id FROM webhook_deliveries LIMIT 1")
        if found:
            return str(found)
        time.sleep(0.1)
    raise AssertionError("no webhook delivery was recorded")


# -- d. the command line -------------------------------------------------------------------

# What argv can carry: UTF-8 text without NUL.
ARG = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=30)
ARGS = st.one_of(ARG, HOSTILE.filter(lambda s: "\x00" not in s))
NAMES = st.one_of(st.sampled_from(["alice", "fuzz-admin", "newbie", "src1"]), ARGS.filter(bool))
DURATIONS = st.sampled_from(["90d", "12h", "30m", "2w", "0d", "-1h", "1y", "99999999999d"]) | ARGS
SCOPES = st.sampled_from(["admin", "events:read", "events:write", "approvals:read"]) | ARGS
RATES = st.sampled_from(["50/s", "50/s burst 200", "off", "0/s", "1/m burst 0"]) | ARGS
URLS = st.sampled_from(["http://127.0.0.1:9/x", "https://example.com/s", "http://[::1"]) | ARGS
FLAG: st.SearchStrategy[str | None] = st.none()  # an option that takes no value
# Each command: how many positional arguments, and its options with the values they take.
COMMANDS: dict[tuple[str, ...], tuple[int, dict[str, st.SearchStrategy[str | None]]]] = {
    ("keys", "create"): (1, {"--scope": SCOPES, "--expires": DURATIONS, "--rate": RATES}),
    ("keys", "revoke"): (1, {}),
    ("keys", "rotate"): (1, {"--grace": DURATIONS}),
    ("keys", "list"): (0, {}),
    ("users", "create"): (
        1,
        {"--email": ARGS, "--slack-user": ARGS, "--admin": FLAG, "--password-stdin": FLAG},
    ),
    ("users", "update"): (
        1,
        {"--email": ARGS, "--slack-user": ARGS, "--admin": FLAG, "--no-admin": FLAG},
    ),
    ("users", "disable"): (1, {}),
    ("users", "signout"): (1, {}),
    ("users", "password"): (1, {"--password-stdin": FLAG}),
    ("users", "list"): (0, {}),
    ("sources", "add"): (
        1,
        {
            "--dialect": st.sampled_from(["agui", "prism", "agent-events"]) | ARGS,
            "--url": URLS,
            "--token": ARGS,
            "--resume-url": URLS,
            "--history": FLAG,
        },
    ),
    ("sources", "remove"): (1, {}),
    ("sources", "list"): (0, {}),
    ("pending",): (0, {"--agent-id": ARGS, "--run-id": ARGS, "--json": FLAG}),
    ("show",): (1, {}),
    ("approve",): (
        1,
        {
            "--comment": ARGS,
            "--digest": st.sampled_from(["sha256:" + "0" * 64]) | ARGS,
            "--grant": st.sampled_from(["run:60", "agent:999999999", "run:", ":5"]) | ARGS,
        },
    ),
    ("reject",): (1, {"--reason": ARGS, "--digest": ARGS}),
    ("answer",): (2, {}),
    ("grants", "list"): (0, {"--all": FLAG, "--json": FLAG}),
    ("grants", "revoke"): (1, {}),
}


REQUIRED = {("keys", "create"): ("--scope",), ("sources", "add"): ("--dialect", "--url")}


@st.composite
def command_lines(draw: st.DrawFn, approvals: list[str]) -> list[str]:
    """Mostly well-formed command lines with hostile values; sometimes random words."""
    command = draw(st.sampled_from(sorted(COMMANDS)))
    positional, options = COMMANDS[command]
    subject = (
        st.sampled_from(approvals) | NAMES
        if command[0] not in ("keys", "users", "grants")
        else NAMES
    )
    args = [*command, *(draw(subject) for _ in range(positional))]
    for option in REQUIRED.get(command, ()):
        args += [option, str(draw(options[option]))]
    if options:
        for option in draw(st.lists(st.sampled_from(sorted(options)), max_size=4)):
            value = draw(options[option])
            args += [option] if value is None else [option, value]
    if draw(st.integers(0, 7)) == 0:
        args += draw(st.lists(ARGS, min_size=1, max_size=3))
    return args


def test_cli_arguments_never_end_in_a_traceback(
    database: Database, make_server: Callable[..., Server]
) -> None:
    reviewer(database, "alice")
    server = make_server(database)
    pool = open_approvals(server, 3)
    env = {
        **os.environ,
        "APPROVALS_DATABASE_URL": database.url,
        "APPROVALS_URL": server.base,
        "APPROVALS_KEY": server.db.key(name="fuzz-admin"),
        "COLUMNS": "120",
    }

    seen: Counter[int] = Counter()

    @bounded(CLI_EXAMPLES)
    @given(args=command_lines(pool), stdin=st.sampled_from(["", PASSWORD + "\n", "x" * 3000]))
    def property_(args: list[str], stdin: str) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "approvals", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        seen[done.returncode] += 1
        assert done.returncode in (0, 1, 2), (args, done.returncode, done.stderr[-3_000:])
        assert "Traceback" not in done.stderr + done.stdout, (args, done.stderr[-5_000:])

    with clean_afterwards(server):
        property_()
    print("cli exit codes", dict(seen))
