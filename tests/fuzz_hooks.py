"""Schemathesis hooks for the fuzz run: keep each request finite.

The SSE stream never ends, a long poll holds for up to a minute and the Claude Code
hook until a human decides, so the fuzzer reads the event log as JSON pages and waits
at most a second; the streams are tested in test_stream.py and test_approvals.py, the
hook in test_claude_code.py.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import schemathesis

HELD = "/hooks/claude-code"  # answers when a human decides, or after its `timeout`


@schemathesis.hook
def map_query(context: Any, query: dict[str, Any] | None) -> dict[str, Any] | None:
    """Read pages, not streams; cap long polls (and the hook's wait) at one second."""
    operation = getattr(context, "operation", None)
    if getattr(operation, "path", None) == HELD:
        query = dict(query or {})
        timeout = query.get("timeout", 300)
        if isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout > 1:
            query["timeout"] = 1
    if query is None:
        return query
    if "follow" in query:
        query["follow"] = "false"
    wait = query.get("wait")
    if isinstance(wait, int | float) and not isinstance(wait, bool) and wait > 1:
        query["wait"] = 1
    return query


@schemathesis.hook
def map_headers(context: Any, headers: dict[str, Any] | None) -> dict[str, Any] | None:
    """Never ask for the SSE media type."""
    if headers and "text/event-stream" in str(headers.get("Accept", "")):
        headers["Accept"] = "application/json"
    return headers


LOOPBACK = "http://127.0.0.1:9/fuzz"  # the discard port: nothing listens, nothing leaves


@schemathesis.hook
def map_body(context: Any, body: Any) -> Any:
    """Point every URL the service would call (webhooks, callbacks, sources) at loopback."""
    if isinstance(body, dict):
        for key in ("url", "resumeUrl", "callbackUrl"):
            value = body.get(key)
            # Only URLs the service would accept; invalid ones stay to be refused.
            if isinstance(value, str) and len(value) <= 2000 and _is_web_url(value):
                body[key] = LOOPBACK
    return body


def _is_web_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return False
