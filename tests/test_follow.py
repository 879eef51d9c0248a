"""Every stream (events, inbox feed, dashboard) opens the same way and is counted."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
from test_dashboard import add_user, sign_in

from conftest import Server, until

SHAPE = {"filters", "from", "origin", "head", "beyondHead"}


@contextlib.contextmanager
def first_message(client: httpx.Client, path: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Open a stream and give its first message (``event`` and decoded ``data``), keeping it
    open until the block ends."""
    with client.stream("GET", path, timeout=httpx.Timeout(30, read=30), **kwargs) as answer:
        assert answer.status_code == 200, answer.read()
        fields: dict[str, str] = {}
        lines = answer.iter_lines()  # kept, not closed: closing it would close the stream
        while line := next(lines):
            name, _, value = line.partition(": ")
            fields[name] = value
        yield {"event": fields.get("event"), "data": json.loads(fields.get("data", "null"))}


def subscribers(http: httpx.Client) -> float:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith("approvals_stream_subscribers "):
            return float(line.split()[1])
    raise AssertionError("approvals_stream_subscribers is not exported")


def test_each_stream_says_connected_alike_and_counts_as_a_subscriber(server: Server) -> None:
    key = server.db.key("events:read", "events:write", "approvals:read")
    add_user(server.db, "ann")
    browser, _ = sign_in(server, "ann")
    sse = {"Accept": "text/event-stream"}
    with server.client(key) as http, contextlib.closing(browser):
        http.post("/v1/events", json=[{"type": "a"}, {"type": "b"}]).raise_for_status()
        head = str(server.db.scalar("SELECT max(id) FROM events"))
        with (
            first_message(http, "/v1/events", headers=sse) as events,
            first_message(http, "/v1/approvals/stream", headers=sse) as feed,
            first_message(browser, "/dashboard/stream", params={"view": "inbox"}) as page,
        ):
            for hello in (events, feed, page):
                assert hello["event"] == "connected"
                subscription = hello["data"]["subscription"]
                assert set(subscription) == SHAPE, subscription
                assert subscription["head"] == head and subscription["beyondHead"] is False
            until(lambda: subscribers(http) == 3, what="three streams counted")
        with (
            first_message(http, "/v1/events", params={"after": "999999"}, headers=sse) as events,
            first_message(http, "/v1/approvals/stream", params={"after": "999999"}) as feed,
            first_message(
                browser, "/dashboard/stream", headers={"Last-Event-ID": "999999"}
            ) as page,
        ):
            for hello in (events, feed, page):
                assert hello["data"]["subscription"]["beyondHead"] is True, hello
                assert hello["data"]["subscription"]["from"] == "999999"
        until(lambda: subscribers(http) == 0, what="closed streams uncounted")
