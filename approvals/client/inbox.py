"""``client.inbox()``: follow the inbox feed and keep the pending set up to date."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import connect_sse

from approvals.client.transport import Backoff, api_error, retryable

log = logging.getLogger("approvals.client")
RESOLVED = ("approval.resolved", "approval.expired")


@dataclass(frozen=True)
class Change:
    """One message of the feed: the snapshot, or one approval's change."""

    kind: str  # "snapshot", "approval.opened", "approval.updated", "approval.resolved", ...
    position: str  # the log position it reflects (pass it as after= to resume)
    approvals: list[dict[str, Any]]  # the snapshot's approvals, or the one that changed


class Inbox:
    """Iterate the feed's changes; ``pending`` holds the pending approvals by id.

    A drop reconnects with ``Last-Event-ID``: nothing is missed or repeated, and the
    service sends no second snapshot.
    """

    def __init__(self, http: httpx.Client, filters: dict[str, str]) -> None:
        self.http = http
        self.filters = filters
        self.pending: dict[str, dict[str, Any]] = {}
        self.position: str | None = filters.pop("after", None)

    def apply(self, change: Change) -> None:
        """Fold one change into ``pending``."""
        if change.kind == "snapshot":
            self.pending = {a["id"]: a for a in change.approvals}
            return
        for approval in change.approvals:
            if change.kind in RESOLVED or approval.get("status") != "pending":
                self.pending.pop(approval["id"], None)
            else:
                self.pending[approval["id"]] = approval

    def __iter__(self) -> Iterator[Change]:
        backoff = Backoff()
        while True:
            headers = {"Last-Event-ID": self.position} if self.position else {}
            try:
                with connect_sse(
                    self.http,
                    "GET",
                    "/v1/approvals/stream",
                    params=self.filters,
                    headers=headers,
                    timeout=httpx.Timeout(10.0, read=90.0),
                ) as source:
                    if source.response.status_code >= 400:
                        source.response.read()
                        if not retryable(source.response):
                            raise api_error(source.response)
                        raise httpx.HTTPStatusError(
                            "retry", request=source.response.request, response=source.response
                        )
                    backoff.reset()
                    for message in source.iter_sse():
                        if message.event == "connected" or not message.data:
                            continue
                        data = message.json()
                        approvals = data["approvals"] if message.event == "snapshot" else [data]
                        change = Change(message.event, message.id, approvals)
                        self.apply(change)
                        self.position = message.id or self.position
                        yield change
            except httpx.HTTPError as exc:
                log.info(
                    "approvals: inbox feed dropped (%r); resuming after %s", exc, self.position
                )
            time.sleep(backoff.next())
