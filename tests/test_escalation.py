"""Escalation ladders and timeout warnings: steps fire once each, at their times, across
instances and a restart; PagerDuty gets a trigger and then a resolve under one dedup key."""

from __future__ import annotations

import contextlib
import json
import signal
import time
from collections.abc import Callable
from typing import Any

import httpx
from test_dashboard import add_user, sign_in

from conftest import Database, Server, until
from receiver import Receiver
from slack_standin import SlackStandIn
from test_notify_slack import open_request, posted_for, route, start, text_of

ONCALL = "C0ONCALL"
ROUTING_KEY = "R0UTINGKEY0000000000000000000000"


def policy(http: httpx.Client, **fields: Any) -> httpx.Response:
    return http.post("/v1/policies", json={"action": "require", "tool": "deploy", **fields})


def pages(receiver: Receiver) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in receiver.received]


def escalations(slack: SlackStandIn, approval_id: str) -> list[Any]:
    return [
        c
        for c in slack.of("chat.postMessage", lambda c: approval_id in json.dumps(c.body))
        if "Escalated" in text_of(c)
    ]


def test_a_ladder_fires_each_step_once_across_instances_and_a_restart(
    database: Database,
    make_server: Callable[..., Server],
    slack: SlackStandIn,
    receiver: Receiver,
) -> None:
    receiver.default = (202, {})
    env = {"approvals_pagerduty_url": f"http://127.0.0.1:{receiver.port}/v2/enqueue"}
    first = start(make_server, database, slack, **env)
    second = start(make_server, database, slack, **env)
    add_user(database, "alice")
    with first.client(first.db.key("admin")) as http:
        # An on-call channel that announces nothing by itself: only the ladder uses it.
        oncall = route(http, target=ONCALL, tool="nothing-else")
        made = policy(
            http,
            escalation=[
                {"afterSeconds": 3, "notify": oncall["id"]},
                {"afterSeconds": 6, "page": {"routingKey": ROUTING_KEY, "severity": "error"}},
            ],
        )
        assert made.status_code == 201, made.text
        assert made.json()["escalation"][1]["page"]["routingKey"] == ROUTING_KEY
    reviewer = first.db.key("approvals:resolve", "approvals:read", name="reviewer")
    with first.client(first.db.key("events:write", name="agent")) as http:
        waiting = open_request(http, detail={"tool": "deploy"}, timeoutSeconds=120)
        decided = open_request(http, detail={"tool": "deploy"}, timeoutSeconds=120)
    with second.client(reviewer) as http:
        answer = http.post(f"/v1/approvals/{decided['id']}/decision", json={"decision": "approve"})
        assert answer.status_code == 200, answer.text

    # Step one reaches the on-call channel once, whichever instance sends it.
    until(lambda: escalations(slack, waiting["id"]), timeout=30, what="step one")
    [step_one] = escalations(slack, waiting["id"])
    assert step_one.body["channel"] == ONCALL
    assert "step 1" in text_of(step_one) and "Deploy to production?" in text_of(step_one)
    # One instance restarts between the steps; step two still fires, once.
    second.stop(signal.SIGKILL)
    second.start()
    until(lambda: pages(receiver), timeout=30, what="the page")
    [trigger] = pages(receiver)
    assert trigger["event_action"] == "trigger" and trigger["routing_key"] == ROUTING_KEY
    assert trigger["dedup_key"] == f"approvals-{waiting['id']}"
    assert trigger["payload"]["severity"] == "error"
    assert trigger["payload"]["custom_details"]["approvalId"] == waiting["id"]

    # The request page tells what the ladder did.
    browser, _ = sign_in(second, "alice")
    with contextlib.closing(browser):
        page = browser.get(f"/approvals/{waiting['id']}").text
    assert f"Step 1: escalated to Slack {ONCALL}" in page
    assert "Step 2: paged PagerDuty" in page

    with first.client(reviewer) as http:
        answer = http.post(f"/v1/approvals/{waiting['id']}/decision", json={"decision": "reject"})
        assert answer.status_code == 200, answer.text
    until(lambda: len(pages(receiver)) == 2, timeout=30, what="the resolve")
    resolve = pages(receiver)[1]
    assert resolve == {
        "routing_key": ROUTING_KEY,
        "event_action": "resolve",
        "dedup_key": f"approvals-{waiting['id']}",
    }
    time.sleep(2)  # nothing more arrives: no second trigger, no resolve for the other one
    assert len(pages(receiver)) == 2 and len(escalations(slack, waiting["id"])) == 1
    # The approval decided before its first step escalated to no one and paged no one.
    assert not escalations(slack, decided["id"])
    assert all(p["dedup_key"] != f"approvals-{decided['id']}" for p in pages(receiver))
    ends = first.db.scalar(
        "SELECT count(*) FROM webhook_deliveries WHERE approval_id = :a AND status = 'succeeded'"
        " AND last_status_code IS NULL",
        a=decided["id"],
    )
    assert ends == 2  # both of its steps came due and were skipped, not sent


def test_a_warning_comes_before_the_timeout_only_while_it_waits(
    database: Database, make_server: Callable[..., Server], slack: SlackStandIn
) -> None:
    server = start(make_server, database, slack)
    with server.client(server.db.key("admin")) as http:
        route(http, tool="deploy")
        assert policy(http, warnBeforeSeconds=4).status_code == 201
    with server.client(server.db.key("events:write", name="agent")) as http:
        waiting = open_request(http, detail={"tool": "deploy"}, timeoutSeconds=6)
        decided = open_request(http, detail={"tool": "deploy"}, timeoutSeconds=6)
    with server.client(server.db.key("approvals:resolve")) as http:
        assert (
            http.post(f"/v1/approvals/{decided['id']}/decision", json={"decision": "approve"})
        ).status_code == 200
    opened, warning = posted_for(slack, waiting["id"], 2)
    assert "Expiring soon" not in text_of(opened)
    assert "Expiring soon" in text_of(warning) and "will then be rejected" in text_of(warning)
    assert warning.at - opened.at >= 1.5  # due at 2 s after opening, not at once
    until(
        lambda: server.db.scalar(
            "SELECT status FROM approvals WHERE id = :a", a=waiting["id"]
        ) == "expired",
        what="the expiry",
    )  # fmt: skip
    assert len(posted_for(slack, decided["id"])) == 1  # its warning was not needed


def test_bad_ladders_are_refused_and_change_nothing(
    database: Database, make_server: Callable[..., Server], slack: SlackStandIn
) -> None:
    server = start(make_server, database, slack)
    with server.client(server.db.key("admin")) as http:
        known = route(http)["id"]
        notify = {"afterSeconds": 60, "notify": known}
        page = {"afterSeconds": 90, "page": {"routingKey": "key"}}
        cases: list[tuple[dict[str, Any], str]] = [
            ({"escalation": [{"afterSeconds": 60}]}, "body.escalation[0]"),
            ({"escalation": [{**notify, **page}]}, "body.escalation[0]"),
            ({"escalation": [{**notify, "notify": "ntf_gone"}]}, "body.escalation[0].notify"),
            ({"escalation": [page, notify]}, "body.escalation[1].afterSeconds"),
            ({"escalation": [{**notify, "afterSeconds": 0}]}, "body.escalation[0].afterSeconds"),
            ({"action": "auto_approve", "escalation": [notify]}, "body.escalation"),
            ({"action": "deny", "warnBeforeSeconds": 60}, "body.warnBeforeSeconds"),
            (
                {"escalation": [{**page, "page": {"routingKey": ""}}]},
                "body.escalation[0].page.routingKey",
            ),
        ]
        for body, field in cases:
            answer = policy(http, **body)
            assert answer.status_code == 422, (body, answer.text)
            assert answer.json()["field"] == field, (body, answer.json())
        assert http.get("/v1/policies").json()["policies"] == []
        good = policy(http, escalation=[{"afterSeconds": 60, "notify": "reviewers"}])
        assert good.status_code == 201, good.text
        assert good.json()["escalation"] == [
            {"afterSeconds": 60, "notify": "reviewers", "page": None}
        ]
