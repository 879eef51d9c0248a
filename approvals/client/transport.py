"""Settings, errors and retry timing shared by the sync and async clients."""

from __future__ import annotations

import os
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from approvals import __version__
from approvals.client.calls import to_json
from approvals.client.decision import ApprovalsError

DEFAULT_URL = "http://127.0.0.1:8000"  # where `approvals serve` and `make run` listen by default
URL_SETTING = "APPROVALS_URL"
KEY_SETTING = "APPROVALS_KEY"
LONG_POLL = 30.0  # seconds per ``?wait=`` request; the service caps it at 60


def service_url(url: str | None = None) -> str:
    """Where the service is: ``url`` if given, else ``APPROVALS_URL``, else the address
    ``approvals serve`` listens on by default. The SDK, the CLI, ``demo`` and the
    service's own links all resolve it here."""
    return (url or os.environ.get(URL_SETTING) or DEFAULT_URL).rstrip("/")


def settings(url: str | None, key: str | None) -> tuple[str, dict[str, str]]:
    """The base URL and headers from arguments, else ``APPROVALS_URL`` / ``APPROVALS_KEY``."""
    base = service_url(url)
    secret = key if key is not None else os.environ.get("APPROVALS_KEY")
    headers = {"User-Agent": f"approvals-client/{__version__}", "Accept": "application/json"}
    if secret:
        headers["Authorization"] = f"Bearer {secret}"
    return base, headers


def retryable(response: httpx.Response) -> bool:
    """5xx and 429 are worth another try; other answers are final."""
    return response.status_code >= 500 or response.status_code == 429


def api_error(response: httpx.Response) -> ApprovalsError:
    """The service's JSON error as an ``ApprovalsError``."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "error" in body:
        message = str(body.get("message") or body["error"])
        if response.status_code == 401:
            origin = f"{response.request.url.scheme}://{response.request.url.netloc.decode()}"
            message += (
                f" (the service at {origin} refused the key: set {KEY_SETTING} or pass "
                "key= / --key; `approvals keys create NAME --scope …` makes one)"
            )
        return ApprovalsError(
            message,
            error=str(body["error"]),
            field=body.get("field"),
            status=response.status_code,
            body=body,
        )
    text = response.text[:200]
    return ApprovalsError(
        f"{response.request.method} {response.request.url.path} answered "
        f"{response.status_code}: {text}",
        error="http",
        status=response.status_code,
        body=text,
    )


def transport_error(exc: httpx.HTTPError) -> ApprovalsError:
    """A network failure as an ``ApprovalsError`` naming the URL and how to change it."""
    try:
        url = exc.request.url
        where = f" at {url.scheme}://{url.netloc.decode()}"
    except RuntimeError:  # no request attached
        where = ""
    reason = str(exc) or type(exc).__name__
    return ApprovalsError(
        f"cannot reach the approvals service{where} ({reason}); is it running there? "
        f"Set {URL_SETTING} (or pass url= / --url) to where it serves",
        error="transport",
    )


@dataclass
class Backoff:
    """Exponential backoff with full jitter: 0.25 s doubling to ``cap``."""

    base: float = 0.25
    cap: float = 5.0
    attempt: int = 0

    def next(self) -> float:
        """The next pause, in seconds."""
        self.attempt += 1
        return random.uniform(0, min(self.cap, self.base * 2**self.attempt))

    def reset(self) -> None:
        """Start again from the shortest pause."""
        self.attempt = 0


def new_external_id(prefix: str) -> str:
    """A client-generated ``externalId``: retries of the same item reuse it."""
    return f"{prefix}_{uuid.uuid4().hex}"


def now_iso() -> str:
    """The current UTC time as the service writes it (milliseconds, ``Z``)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def camel(name: str) -> str:
    """``run_id`` → ``runId``."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def approval_body(
    title: str,
    *,
    tool: str | None,
    arguments: dict[str, Any] | None,
    detail: dict[str, Any] | None,
    ids: dict[str, str | None],
    timeout: float | None,
    on_timeout: str,
    key: str | None,
    callback_url: str | None,
    source: str | None = None,
) -> dict[str, Any]:
    """The body of ``POST /v1/approvals``."""
    if on_timeout not in ("reject", "approve"):
        raise ValueError("on_timeout must be 'reject' or 'approve'")
    merged: dict[str, Any] = dict(detail or {})
    if tool is not None:
        merged["tool"] = tool
    if arguments is not None:
        merged["arguments"] = arguments
    body: dict[str, Any] = {
        "title": title,
        "detail": merged,
        "onTimeout": on_timeout,
        "externalId": key or new_external_id("sdk"),
    }
    for name, value in ids.items():
        if value is not None:
            body[camel(name)] = value
    if timeout is not None:
        body["timeoutSeconds"] = timeout
    if callback_url is not None:
        body["callbackUrl"] = callback_url
    if source is not None:
        body["source"] = source
    return body


EVENT_FIELDS = {
    "title", "detail", "status", "category", "source", "run_id", "thread_id", "agent_id",
    "external_id", "cost_tokens", "cost_usd", "created_at",
}  # fmt: skip


def event_body(type: str, fields: dict[str, Any], ids: Any) -> dict[str, Any]:
    """The JSON of one emitted event, with the run's ids and a client-made ``externalId``."""
    unknown = sorted(set(fields) - EVENT_FIELDS)
    if unknown:
        raise TypeError(
            f"emit(): {unknown[0]!r} is not an event field ({', '.join(sorted(EVENT_FIELDS))})"
        )
    body: dict[str, Any] = {"type": type}
    for name in ("run_id", "thread_id", "agent_id"):
        value = fields.get(name) or getattr(ids, name)
        if value is not None:
            body[camel(name)] = value
    for name, value in fields.items():
        if value is not None and name not in ("run_id", "thread_id", "agent_id"):
            body[camel(name)] = value
    body.setdefault("externalId", new_external_id("evt"))
    body.setdefault("createdAt", now_iso())
    return to_json(body)
