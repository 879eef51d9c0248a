"""``client.inbox()``: follow the inbox feed and keep the pending set up to date.

This is the feed's sans-I/O half; ``sync.Inbox`` and ``aio.AsyncInbox`` drive it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from httpx_sse import ServerSentEvent

from approvals.client.core import Feed, params

RESOLVED = ("approval.resolved", "approval.expired")
Client = TypeVar("Client")  # httpx.Client or httpx.AsyncClient


@dataclass(frozen=True)
class Change:
    """One message of the feed: the snapshot, or one approval's change."""

    kind: str  # "snapshot", "approval.opened", "approval.updated", "approval.resolved", ...
    position: str  # the log position it reflects (pass it as after= to resume)
    approvals: list[dict[str, Any]]  # the snapshot's approvals, or the one that changed


class InboxFeed(Feed[Change], Generic[Client]):
    """The feed's changes; ``pending`` holds the pending approvals by id.

    A drop reconnects with ``Last-Event-ID``: nothing is missed or repeated, and the
    service sends no second snapshot.
    """

    def __init__(self, http: Client, filters: dict[str, Any]) -> None:
        self.http = http
        query = params(filters)
        position = query.pop("after", None)
        super().__init__("/v1/approvals/stream", query, position, name="inbox feed")
        self.pending: dict[str, dict[str, Any]] = {}

    @property
    def filters(self) -> dict[str, str]:
        """The feed's query parameters."""
        return self.params

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

    def receive(self, message: ServerSentEvent) -> Change | None:
        if message.event == "connected" or not message.data:
            return None
        data = message.json()
        approvals = data["approvals"] if message.event == "snapshot" else [data]
        change = Change(message.event, message.id, approvals)
        self.apply(change)
        self.position = message.id or self.position
        return change
