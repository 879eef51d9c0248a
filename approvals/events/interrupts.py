"""Interrupt payloads accepted by ``POST /v1/events`` as approval requests.

LangGraph's ``HumanInterrupt`` (``action_request``, ``config``,
``description``) and AG-UI interrupt objects (``id``, ``reason``,
``message``, ``toolCallId``, ``expiresAt``) become ``steering_request``
events; the responses they allow are kept in ``detail.allowedDecisions``
(and ``detail.allowEdit``), which the decision endpoint and form enforce.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from approvals.core.clock import parse_iso
from approvals.core.errors import invalid

CONTEXT = ("runId", "threadId", "agentId", "externalId", "source", "category")


def is_interrupt(raw: Any) -> bool:
    """Tell whether a posted object is an interrupt payload rather than an event."""
    if not isinstance(raw, dict) or "type" in raw:
        return False
    if "action_request" in raw:
        return True
    return "reason" in raw and "id" in raw and ("message" in raw or "toolCallId" in raw)


def _context(raw: dict[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in CONTEXT:
        value = raw.get(key)
        if value is not None:
            if not isinstance(value, str):
                raise invalid(f"{where}.{key}", "must be a string")
            out[key] = value
    return out


def from_langgraph(raw: dict[str, Any], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A LangGraph HumanInterrupt as an event body and approval options."""
    request = raw.get("action_request")
    if not isinstance(request, dict) or not isinstance(request.get("action"), str):
        raise invalid(f"{where}.action_request.action", "is required (the tool or action name)")
    args = request.get("args", {})
    if not isinstance(args, dict):
        raise invalid(f"{where}.action_request.args", "must be an object")
    config = raw.get("config", {})
    if not isinstance(config, dict):
        raise invalid(f"{where}.config", "must be an object")
    allowed = []
    if config.get("allow_accept", True) or config.get("allow_edit", False):
        allowed.append("approve")
    if config.get("allow_ignore", True):
        allowed.append("reject")
    if config.get("allow_respond", False):
        allowed.append("answer")
    description = raw.get("description")
    if description is not None and not isinstance(description, str):
        raise invalid(f"{where}.description", "must be a string")
    known = {"action_request", "config", "description", *CONTEXT}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise invalid(f"{where}.{unknown[0]}", "is not a HumanInterrupt field")
    body = {
        "type": "steering_request",
        "category": "approval",
        "title": description or f"{request['action']} requested",
        "detail": {
            "tool": request["action"],
            "arguments": args,
            "format": "langgraph",
            "allowedDecisions": allowed,
            "allowEdit": bool(config.get("allow_edit", False)),
            "interrupt": raw,
        },
        **_context(raw, where),
    }
    return body, {}


def from_agui(raw: dict[str, Any], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """An AG-UI interrupt as an event body and approval options (``expiresAt`` → timeout)."""
    for key in ("id", "reason"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise invalid(f"{where}.{key}", "is required and must be a string")
    known = {"id", "reason", "message", "toolCallId", "expiresAt", "payload", *CONTEXT}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise invalid(f"{where}.{unknown[0]}", "is not an AG-UI interrupt field")
    options: dict[str, Any] = {}
    if raw.get("expiresAt") is not None:
        try:
            expires = parse_iso(str(raw["expiresAt"]))
            left = (expires - datetime.now(UTC)).total_seconds()
        except (ValueError, OverflowError) as exc:
            raise invalid(f"{where}.expiresAt", "must be an ISO-8601 time") from exc
        options["timeout_seconds"] = max(left, 0.001)
    context = _context(raw, where)
    context.setdefault("externalId", raw["id"])
    body = {
        "type": "steering_request",
        "category": "approval",
        "title": raw.get("message") or raw["reason"],
        "detail": {
            "toolCallId": raw.get("toolCallId"),
            "reason": raw["reason"],
            "format": "agui-interrupt",
            "allowedDecisions": ["approve", "reject", "answer"],
            "allowEdit": True,
            "interrupt": raw,
        },
        **context,
    }
    return body, options


def convert(raw: dict[str, Any], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Convert either interrupt kind."""
    if "action_request" in raw:
        return from_langgraph(raw, where)
    return from_agui(raw, where)
