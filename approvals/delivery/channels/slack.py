"""Slack: the Block Kit message of an approval, and posting or updating it."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError

from approvals.core.config import Settings
from approvals.delivery import schedule
from approvals.delivery.channels.base import Channel, Message, Posted
from approvals.delivery.channels.schema import Lead
from approvals.delivery.worker import Sent
from approvals.views.render import clock, left

if TYPE_CHECKING:
    from approvals.delivery.channels.schema import Notice

ARGUMENTS_LIMIT = 1500
TITLE_LIMIT = 300
# Errors that a retry cannot fix: the delivery fails at once.
PERMANENT = {
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "message_not_found",
    "cant_update_message",
    "invalid_blocks",
    "msg_too_long",
    "user_not_found",
    "no_text",
}
OUTCOME = {
    "approved": "Approved",
    "rejected": "Rejected",
    "answered": "Answered",
    "expired": "Expired",
    "withdrawn": "Withdrawn",
}


def escape(text: Any) -> str:
    """Text safe inside Slack mrkdwn: no links, mentions or broadcasts (``&``, ``<``, ``>``)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: Any, limit: int) -> str:
    """``escape(text)`` in at most ``limit`` characters, never cut inside an entity."""
    escaped = escape(text)
    if len(escaped) <= limit:
        return escaped
    cut = escaped[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


def arguments_text(arguments: Any, limit: int = ARGUMENTS_LIMIT) -> tuple[str, bool]:
    """The arguments as indented JSON, cut at ``limit`` characters; and whether it was cut."""
    if arguments is None:
        return "", False
    text = json.dumps(arguments, indent=2, ensure_ascii=False, sort_keys=True)
    if len(text) <= limit:
        return text, False
    return text[:limit] + "\n…", True


def page_url(settings: Settings, approval_id: str) -> str:
    """The request's page on the dashboard."""
    return f"{settings.public_url}/approvals/{approval_id}"


def blocks(approval: dict[str, Any], settings: Settings, lead: Lead | None = None) -> list[Any]:
    """The Block Kit message: what is asked, by whom, and buttons while it is pending."""
    url = page_url(settings, approval["id"])
    title = escape(
        (approval.get("headline") or approval["title"] or "Approval requested")[:TITLE_LIMIT]
    )
    prefix = f"*{lead.tag}:* {lead.text}\n" if lead is not None else ""
    out: list[Any] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{prefix}*{title}*"}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Agent*\n{escape(approval['agentId'] or '—')}"},
                {"type": "mrkdwn", "text": f"*Tool*\n{escape(approval['tool'] or '—')}"},
                {"type": "mrkdwn", "text": f"*Run*\n{escape(approval['runId'] or '—')}"},
                {"type": "mrkdwn", "text": f"*Requested by*\n{escape(approval['requestedBy'])}"},
            ],
        },
    ]
    text, cut = arguments_text(approval["arguments"])
    if text:
        code = escape(text).replace("```", "`\u200b``")
        more = f"\n_Arguments truncated: <{url}|see them all>_" if cut else ""
        out.append({"type": "section", "text": {"type": "mrkdwn", "text": f"```{code}```{more}"}})
    if approval["status"] == "pending":
        due = approval["expiresAt"]
        when = f"{left(due)} (until {clock(due)})" if due else "no deadline"
        if approval["minApprovals"] > 1:
            when += f" · needs {approval['minApprovals']} approvals"
        out.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"Time left: {when} · <{url}|Open>"}],
            }
        )
        out.append(
            {
                "type": "actions",
                "block_id": "decision",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "approve",
                        "style": "primary",
                        "text": {"type": "plain_text", "text": "Approve"},
                        # The digest of what the message shows: approving a call whose
                        # arguments changed since is refused as stale.
                        "value": f"{approval['id']}|{approval['argumentsDigest']}"
                        if approval.get("argumentsDigest")
                        else approval["id"],
                    },
                    {
                        "type": "button",
                        "action_id": "reject",
                        "style": "danger",
                        "text": {"type": "plain_text", "text": "Reject"},
                        "value": approval["id"],
                    },
                ],
            }
        )
    else:
        out.append({"type": "section", "text": {"type": "mrkdwn", "text": outcome(approval)}})
        out.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{url}|Open>"}]})
    return out


def outcome(approval: dict[str, Any]) -> str:
    """``*Approved* by alice at 2026-11-23 10:40 UTC`` (with the reason, if any)."""
    verb = escape(OUTCOME.get(approval["status"], approval["status"]))
    line = f"*{verb}* by {escape(approval['resolvedBy'])} at {clock(approval['resolvedAt'])}"
    if approval["comment"]:
        line += f"\n> {escape(approval['comment'])}"
    return line


def fallback(approval: dict[str, Any]) -> str:
    """The notification text (shown where blocks are not), escaped: Slack reads mentions
    in it too."""
    title = escape(approval.get("headline") or approval["title"] or "Approval requested")
    if approval["status"] == "pending":
        return f"Approval requested: {title}"
    verb = escape(OUTCOME.get(approval["status"], approval["status"]))
    return f"{verb} by {escape(approval['resolvedBy'])}: {title}"


def client(settings: Settings) -> Any:
    """A Web API client (``AsyncWebClient``) for the configured bot token and API URL."""
    from slack_sdk.web.async_client import AsyncWebClient  # aiohttp: imported on first use

    base = (
        settings.slack_api_url
        if settings.slack_api_url.endswith("/")
        else settings.slack_api_url + "/"
    )
    return AsyncWebClient(
        token=settings.slack_bot_token or None,
        base_url=base,
        timeout=int(settings.webhook_timeout),
        retry_handlers=[],  # the outbox retries, and logs every attempt
    )


def failure(exc: SlackApiError) -> Sent:
    """An ``ok: false`` or HTTP error from Slack as an attempt's outcome."""
    response = exc.response
    code = response.get("error") if isinstance(response.data, dict) else None
    status = response.status_code
    retry_after = None
    if status == 429:
        header = {k.lower(): v for k, v in (response.headers or {}).items()}.get("retry-after")
        value = header[0] if isinstance(header, list) else header
        retry_after = schedule.parse_retry_after(value, time.time())
    detail = f"Slack answered HTTP {status}" + (f": {code}" if code else "")
    if retry_after is not None:
        detail += f" (Retry-After {retry_after:g}s)"
    return Sent(
        status_code=status, error=detail, retry_after=retry_after, permanent=code in PERMANENT
    )


class Slack(Channel):
    """Block Kit messages with Approve and Reject, edited to the outcome."""

    name = "slack"
    label = "Slack"
    scheme = "slack"
    contact = "slack_user_id"
    live = True

    def __init__(self, services: Any) -> None:
        super().__init__(services)
        self._client: Any = None

    @property
    def client(self) -> Any:
        """The Web API client (made on first use)."""
        if self._client is None:
            self._client = client(self.settings)
        return self._client

    def missing(self) -> str | None:
        return None if self.settings.slack_bot_token else "APPROVALS_SLACK_BOT_TOKEN is not set"

    def hosts(self) -> list[str]:
        return [self.settings.slack_api_url]

    def escape(self, text: Any) -> str:
        return escape(text)

    async def post(self, notice: Notice, approval: dict[str, Any], lead: Lead | None) -> Posted:
        answer = await self.client.chat_postMessage(
            channel=notice.to,
            text=fallback(approval),
            blocks=blocks(approval, self.settings, lead),
            unfurl_links=False,
        )
        return Posted(answer["channel"], answer["ts"], answer.status_code)

    async def edit(self, approval: dict[str, Any], message: Message) -> None:
        await self.client.chat_update(
            channel=message.conversation,
            ts=message.ref,
            text=fallback(approval),
            blocks=blocks(approval, self.settings),
        )

    def failed(self, exc: Exception) -> Sent | None:
        if isinstance(exc, SlackApiError):
            return failure(exc)
        return super().failed(exc)
