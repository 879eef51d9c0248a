"""Validation of approval requests, decisions and policies."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from approvals.errors import invalid
from approvals.queue.policy import ACTIONS

MAX_TIMEOUT = 30 * 24 * 3600
MAX_TEXT = 10_000


def _fields(raw: Any, allowed: set[str], where: str = "body") -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise invalid(where, "must be a JSON object")
    unknown = sorted(set(raw) - allowed)
    if unknown:
        known = ", ".join(sorted(allowed))
        raise invalid(f"{where}.{unknown[0]}", f"is not a field here ({known})")
    return raw


def _opt_text(raw: dict[str, Any], key: str, where: str, limit: int = 200) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(f"{where}.{key}", "must be a string")
    if len(value) > limit:
        raise invalid(f"{where}.{key}", f"must be at most {limit} characters")
    return value


def check_url(value: Any, field: str) -> str:
    """An absolute http(s) URL, or a 422 naming ``field``."""
    if not isinstance(value, str) or len(value) > 2000:
        raise invalid(field, "must be an http(s) URL of at most 2000 characters")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid(field, "must be an absolute http:// or https:// URL")
    return value


def parse_request(raw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check ``POST /v1/approvals``; return the event row and the approval options."""
    allowed = {
        "title", "detail", "runId", "threadId", "agentId", "callbackUrl",
        "timeoutSeconds", "onTimeout", "externalId", "source",
    }  # fmt: skip
    body = _fields(raw, allowed)
    title = _opt_text(body, "title", "body", MAX_TEXT)
    if not title:
        raise invalid("body.title", "is required: say what the human is asked to approve")
    detail = body.get("detail")
    if detail is not None and not isinstance(detail, dict):
        raise invalid("body.detail", "must be a JSON object (tool, arguments, anything)")
    row: dict[str, Any] = {
        "type": "steering_request",
        "category": "approval",
        "status": "pending_approval",
        "title": title,
        "detail": detail,
        "run_id": _opt_text(body, "runId", "body"),
        "thread_id": _opt_text(body, "threadId", "body"),
        "agent_id": _opt_text(body, "agentId", "body"),
        "external_id": _opt_text(body, "externalId", "body", 500),
    }
    source = _opt_text(body, "source", "body")
    if source:
        row["source"] = source
    options: dict[str, Any] = {}
    if body.get("callbackUrl") is not None:
        options["callback_url"] = check_url(body["callbackUrl"], "body.callbackUrl")
    timeout = body.get("timeoutSeconds")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise invalid("body.timeoutSeconds", "must be a number of seconds")
        if not 0 < timeout <= MAX_TIMEOUT:
            raise invalid("body.timeoutSeconds", f"must be between 0 and {MAX_TIMEOUT}")
        options["timeout_seconds"] = float(timeout)
    on_timeout = body.get("onTimeout", "reject")
    if on_timeout not in ("reject", "approve"):
        raise invalid("body.onTimeout", "must be 'reject' or 'approve'")
    options["on_timeout"] = on_timeout
    return row, options


def parse_decision(raw: Any, where: str = "body", *, with_id: bool = False) -> dict[str, Any]:
    """Check a decision body: ``decision`` and its optional comment, answer, arguments."""
    allowed = {"decision", "comment", "answer", "arguments"} | ({"id"} if with_id else set())
    body = _fields(raw, allowed, where)
    decision = body.get("decision")
    if decision not in ("approve", "reject", "answer"):
        raise invalid(f"{where}.decision", "must be 'approve', 'reject' or 'answer'")
    out: dict[str, Any] = {
        "decision": decision,
        "comment": _opt_text(body, "comment", where, MAX_TEXT),
        "answer": _opt_text(body, "answer", where, MAX_TEXT),
        "arguments": body.get("arguments"),
    }
    if decision == "answer" and not out["answer"]:
        raise invalid(f"{where}.answer", "is required with decision 'answer'")
    if decision != "answer" and out["answer"] is not None:
        raise invalid(f"{where}.answer", "goes only with decision 'answer'")
    if out["arguments"] is not None:
        if decision != "approve":
            raise invalid(f"{where}.arguments", "edited arguments go only with 'approve'")
        if not isinstance(out["arguments"], dict):
            raise invalid(f"{where}.arguments", "must be a JSON object")
    if with_id:
        approval_id = body.get("id")
        if not isinstance(approval_id, str) or not approval_id:
            raise invalid(f"{where}.id", "is required: the approval's id")
        out["id"] = approval_id
    return out


def parse_policy(raw: Any) -> dict[str, Any]:
    """Check ``POST /v1/policies``."""
    allowed = {"agentId", "tool", "action", "minApprovals", "allowSelfApproval", "reviewers"}
    body = _fields(raw, allowed)
    action = body.get("action")
    if action not in ACTIONS:
        raise invalid("body.action", f"must be one of {', '.join(ACTIONS)}")
    minimum = body.get("minApprovals", 1)
    if isinstance(minimum, bool) or not isinstance(minimum, int) or not 1 <= minimum <= 20:
        raise invalid("body.minApprovals", "must be a whole number from 1 to 20")
    if minimum > 1 and action != "require":
        raise invalid("body.minApprovals", "applies only to action 'require'")
    self_ok = body.get("allowSelfApproval", False)
    if not isinstance(self_ok, bool):
        raise invalid("body.allowSelfApproval", "must be true or false")
    reviewers = body.get("reviewers")
    if reviewers is not None and (
        not isinstance(reviewers, list)
        or not reviewers
        or not all(isinstance(r, str) and r for r in reviewers)
    ):
        raise invalid("body.reviewers", "must be a non-empty list of principal names")
    if reviewers is not None and len(set(reviewers)) < minimum:
        raise invalid("body.reviewers", "must name at least minApprovals distinct reviewers")
    return {
        "agent_id": _opt_text(body, "agentId", "body"),
        "tool": _opt_text(body, "tool", "body"),
        "action": action,
        "min_approvals": minimum,
        "allow_self_approval": self_ok,
        "reviewers": sorted(set(reviewers)) if reviewers else None,
    }
