"""A third-party inbox in a few lines: follow GET /v1/approvals/stream and keep the queue.

Run against a service (`make run`) with a key that may read approvals:

    APPROVALS_KEY=apk_... python examples/inbox_feed.py

It prints the pending queue whenever it changes, and resumes with Last-Event-ID
(no snapshot, nothing missed) when the connection drops.
"""

from __future__ import annotations

import json
import os
import time

import httpx
from httpx_sse import connect_sse

URL = os.environ.get("APPROVALS_URL", "http://127.0.0.1:8000")
KEY = os.environ["APPROVALS_KEY"]


def main() -> None:
    pending: dict[str, dict[str, object]] = {}
    last_id: str | None = None
    while True:
        headers = {"Authorization": f"Bearer {KEY}"}
        if last_id:
            headers["Last-Event-ID"] = last_id
        try:
            with (
                httpx.Client(base_url=URL, timeout=httpx.Timeout(10, read=60)) as http,
                connect_sse(http, "GET", "/v1/approvals/stream", headers=headers) as source,
            ):
                source.response.raise_for_status()
                for message in source.iter_sse():
                    if message.event == "connected":
                        continue
                    data = json.loads(message.data)
                    if message.event == "snapshot":
                        pending = {a["id"]: a for a in data["approvals"]}
                    elif data["status"] == "pending":
                        pending[data["id"]] = data
                    else:
                        pending.pop(data["id"], None)
                    last_id = message.id
                    show(pending)
        except httpx.HTTPError as exc:
            print(f"(disconnected: {exc}; resuming after {last_id})")
            time.sleep(1)


def show(pending: dict[str, dict[str, object]]) -> None:
    print(f"\n{len(pending)} pending")
    for approval in pending.values():
        print(f"  {approval['id']}  {approval['title']}  (agent {approval['agentId']})")


if __name__ == "__main__":
    main()
