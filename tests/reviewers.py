"""A test's two principals: the agent that asks and the reviewer that decides."""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

import httpx

from approvals.client import Approvals
from conftest import Server

WAIT = 20.0  # bound of every wait in these tests


@dataclasses.dataclass
class Agent:
    """A server with an agent key (the requester) and a reviewer key."""

    server: Server
    key: str
    reviewer: str

    @property
    def url(self) -> str:
        return self.server.base

    def client(self, url: str | None = None, **kwargs: Any) -> Approvals:
        return Approvals(url or self.url, self.key, **kwargs)

    def pending(self, count: int = 1, **filters: str) -> list[dict[str, Any]]:
        """Wait until ``count`` approvals are pending; return them."""
        deadline = time.monotonic() + WAIT
        with self.server.client(self.reviewer) as http:
            while time.monotonic() < deadline:
                try:
                    found = http.get("/v1/approvals", params=filters).json()["approvals"]
                except httpx.HTTPError:
                    found = []
                if len(found) >= count:
                    return found
                time.sleep(0.05)
        raise AssertionError(f"{count} pending approvals did not appear")

    def decide(self, approval_id: str, **body: Any) -> dict[str, Any]:
        with self.server.client(self.reviewer) as http:
            response = http.post(f"/v1/approvals/{approval_id}/decision", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def decide_later(self, **body: Any) -> threading.Thread:
        """In a thread: wait for one pending approval, remember it, then decide it."""
        seen: list[dict[str, Any]] = []

        def work() -> None:
            (approval,) = self.pending()
            seen.append(approval)
            self.decide(approval["id"], **body)

        thread = threading.Thread(target=work, daemon=True)
        thread.seen = seen  # type: ignore[attr-defined]
        thread.start()
        return thread


def make_agent(server: Server) -> Agent:
    return Agent(server, server.db.key(name="agent"), server.db.key(name="reviewer"))
