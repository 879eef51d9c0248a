"""Discord: the embed of an approval with Approve and Reject buttons, posted with the bot
token and edited to the outcome."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import httpx

from approvals.core.config import Settings
from approvals.delivery.channels.base import Channel, Message, Posted, Refusal, refusal
from approvals.delivery.channels.schema import Lead
from approvals.delivery.channels.slack import OUTCOME, arguments_text, page_url
from approvals.delivery.worker import Sent
from approvals.digest import PREFIX
from approvals.views.render import clock, left

if TYPE_CHECKING:
    from approvals.delivery.channels.schema import Notice

log = logging.getLogger("approvals.notify")

# Discord's limits on a message (characters); past them it answers 400.
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
EMBED_LIMIT = 6000  # title, description, field names and values, footer, author: together
CONTENT_LIMIT = 2000
CUSTOM_ID_LIMIT = 100
SHORT_LIMIT = 200  # agent, tool, run, requester: one line each (a field holds 1,024)
COMMENT_LIMIT = 1000
# An embed's colour: blurple while pending, then the outcome's.
COLOUR = {"pending": 0x5865F2, "approved": 0x57F287, "rejected": 0xED4245}
OTHER_COLOUR = 0x99AAB5
# Discord's error codes for a message, or its channel, that no longer exists.
GONE = (10003, 10008)  # Unknown Channel, Unknown Message
# Sent with every message and answer: no @everyone, role or user ping, whatever the text.
NO_MENTIONS: dict[str, list[str]] = {"parse": []}
# What Discord's Markdown reads (a backslash shows the next one as it is).
MARKDOWN = re.compile(r"([\\*_~|>#\-\[\]()`])")
BROADCAST = re.compile(r"@(everyone|here)", re.IGNORECASE)
ZWSP = "\u200b"  # zero-width space: breaks a mention or a fence without showing
SNOWFLAKE = re.compile(r"[0-9]{1,20}")


def neutral(text: Any) -> str:
    """``text`` with every mention broken: ``@everyone``, ``@here`` and ``<@…>``, ``<@&…>``,
    ``<#…>`` (any ``<``) get a zero-width space after ``@`` or ``<``."""
    out = BROADCAST.sub(lambda m: "@" + ZWSP + m.group(1), str(text))
    return out.replace("<", "<" + ZWSP)


def escape(text: Any) -> str:
    """Agent text made inert in Discord Markdown: no mention, no link, no formatting."""
    return MARKDOWN.sub(r"\\\1", neutral(text))


def clip(text: Any, limit: int) -> str:
    """``escape(text)`` in at most ``limit`` characters, never cut inside an escape."""
    whole = escape(text)
    if len(whole) <= limit:
        return whole
    out: list[str] = []
    size = 0
    for char in neutral(text):
        piece = MARKDOWN.sub(r"\\\1", char)
        if size + len(piece) > limit - 1:
            break
        out.append(piece)
        size += len(piece)
    return "".join(out) + "…"


def code(text: str, limit: int) -> str:
    """A code block of ``text`` in at most ``limit`` characters; a fence inside is broken."""
    body = text.replace("```", "`" + ZWSP + "``")
    room = limit - len("```json\n\n```")
    if len(body) > room:
        body = body[: max(room - 2, 0)] + "\n…"
    return f"```json\n{body}\n```"


def approve_id(approval: dict[str, Any]) -> str:
    """The Approve button's ``custom_id``: the approval and the digest of the arguments the
    message shows (approving a call whose arguments changed since is refused as stale),
    within Discord's 100 characters (the digest's ``sha256:`` dropped when needed)."""
    digest = approval.get("argumentsDigest")
    plain = f"approve:{approval['id']}"
    if digest:
        for form in (digest, digest.removeprefix(PREFIX)):
            if len(plain) + 1 + len(form) <= CUSTOM_ID_LIMIT:
                return f"{plain}:{form}"
    return plain


def render(
    approval: dict[str, Any], settings: Settings, lead: Lead | None = None
) -> dict[str, Any]:
    """The message: an embed of what is asked and by whom, and the buttons while pending;
    the outcome and no buttons once resolved. Within Discord's limits, never a mention."""
    url = page_url(settings, approval["id"])
    pending = approval["status"] == "pending"
    title = clip(approval.get("headline") or approval["title"] or "Approval requested", TITLE_LIMIT)
    fields: list[dict[str, Any]] = [
        {"name": "Agent", "value": clip(approval["agentId"] or "—", SHORT_LIMIT), "inline": True},
        {"name": "Tool", "value": clip(approval["tool"] or "—", SHORT_LIMIT), "inline": True},
        {"name": "Run", "value": clip(approval["runId"] or "—", SHORT_LIMIT), "inline": True},
        {
            "name": "Requested by",
            "value": clip(approval["requestedBy"] or "—", SHORT_LIMIT),
            "inline": True,
        },
    ]
    if pending:
        due = approval["expiresAt"]
        when = f"{left(due)} (until {clock(due)})" if due else "no deadline"
        if approval["minApprovals"] > 1:
            when += f" · needs {approval['minApprovals']} approvals"
        fields.append({"name": "Time left", "value": when, "inline": False})
    head = []
    if lead is not None:
        head.append(f"**{escape(lead.tag)}:** {clip(lead.text, 500)}")
    if not pending:
        head.append(outcome(approval))
    text, cut = arguments_text(approval["arguments"])
    tail = f"*Arguments truncated:* [see them all]({url})" if cut else f"[Open the request]({url})"
    # The description shares the embed's 6,000 characters with the title and the fields.
    rest = len(title) + sum(len(f["name"]) + len(f["value"]) for f in fields)
    room = min(DESCRIPTION_LIMIT, EMBED_LIMIT - rest) - len(tail) - 2
    parts = [clip_raw("\n".join(head), room)] if head else []
    room -= sum(len(p) + 1 for p in parts)
    if text and room > 40:
        parts.append(code(text, room))
    parts.append(tail)
    embed = {
        "title": title,
        "url": url,
        "description": "\n".join(parts),
        "color": COLOUR.get(approval["status"], OTHER_COLOUR),
        "fields": fields,
    }
    buttons = []
    if pending:
        buttons = [
            {
                "type": 1,
                "components": [
                    {"type": 2, "style": 3, "label": "Approve", "custom_id": approve_id(approval)},
                    {
                        "type": 2,
                        "style": 4,
                        "label": "Reject",
                        "custom_id": f"reject:{approval['id']}",
                    },
                ],
            }
        ]
    return {
        "content": summary(approval, lead),
        "embeds": [embed],
        "components": buttons,
        "allowed_mentions": NO_MENTIONS,
    }


def clip_raw(text: str, limit: int) -> str:
    """Already escaped ``text`` cut to ``limit`` characters, not ending in half an escape."""
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 1, 0)]
    trailing = len(cut) - len(cut.rstrip("\\"))
    if trailing % 2:
        cut = cut[:-1]
    return cut + "…"


def outcome(approval: dict[str, Any]) -> str:
    """``**Approved** by alice at 2026-11-23 10:40 UTC`` and the comment quoted below."""
    verb = OUTCOME.get(approval["status"], escape(approval["status"]))
    line = f"**{verb}** by {clip(approval['resolvedBy'] or '—', SHORT_LIMIT)}"
    if approval["resolvedAt"]:
        line += f" at {clock(approval['resolvedAt'])}"
    if approval["comment"]:
        quoted = clip(approval["comment"], COMMENT_LIMIT).split("\n")
        line += "".join(f"\n> {part}" for part in quoted)
    return line


def summary(approval: dict[str, Any], lead: Lead | None) -> str:
    """The message's text (what a notification shows): no agent text, so nothing to escape."""
    if approval["status"] != "pending":
        return OUTCOME.get(approval["status"], "Resolved") + "."
    if lead is not None:
        return f"{lead.tag}: approval requested."
    return "Approval requested."


def retry_after(answer: httpx.Response) -> float | None:
    """Discord's ``retry_after`` seconds in a 429's JSON body, when it has one."""
    try:
        value = answer.json().get("retry_after")
    except (ValueError, AttributeError):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 86400:
        return float(value)
    return None


def error_code(answer: httpx.Response) -> int | None:
    """Discord's JSON error ``code`` (10008: Unknown Message), when the answer has one."""
    try:
        value = answer.json().get("code")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class DiscordError(Refusal):
    """An HTTP error from Discord, with its JSON error code."""

    def __init__(
        self, status: int, detail: str, retry_after: float | None, code: int | None
    ) -> None:
        super().__init__("Discord", status, detail, retry_after)
        self.code = code


class Discord(Channel):
    """Embeds with Approve and Reject buttons, posted by the bot and edited to the outcome."""

    name = "discord"
    label = "Discord"
    scheme = "discord"
    contact = "discord_user_id"
    live = True

    def missing(self) -> str | None:
        if self.settings.discord_bot_token:
            return None
        return "APPROVALS_DISCORD_BOT_TOKEN is not set"

    def hosts(self) -> list[str]:
        return [self.settings.discord_api_url]

    def escape(self, text: Any) -> str:
        return escape(text)

    async def call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One API call as the bot; an HTTP error raises :class:`DiscordError` (a
        :class:`Refusal` with Discord's error code), a 429 with the wait Discord asked for
        (its ``Retry-After`` header, else ``retry_after`` in the body)."""
        headers = {"Authorization": f"Bot {self.settings.discord_bot_token}"}
        answer = await self.http.request(method, url, headers=headers, **kwargs)
        if answer.status_code >= 400:
            seconds = refusal(self.label, answer.status_code, answer.headers).retry_after
            if answer.status_code == 429 and seconds is None:
                seconds = retry_after(answer)
            raise DiscordError(answer.status_code, answer.text[:200], seconds, error_code(answer))
        return answer

    async def post(
        self, notice: Notice, approval: dict[str, Any], lead: Lead | None
    ) -> Posted | Sent:
        api = self.settings.discord_api_url
        if not SNOWFLAKE.fullmatch(notice.to):
            return Sent(error=f"not a Discord id: {notice.to[:100]!r}", permanent=True)
        channel = notice.to
        if notice.reviewer is not None:  # a reviewer's user id: their DM channel first
            opened = await self.call(
                "POST", f"{api}/users/@me/channels", json={"recipient_id": notice.to}
            )
            channel = _field(opened, "id")
        answer = await self.call(
            "POST",
            f"{api}/channels/{channel}/messages",
            json=render(approval, self.settings, lead),
        )
        return Posted(channel, _field(answer, "id"), answer.status_code)

    async def edit(self, approval: dict[str, Any], message: Message) -> None:
        api = self.settings.discord_api_url
        try:
            await self.call(
                "PATCH",
                f"{api}/channels/{message.conversation}/messages/{message.ref}",
                json=render(approval, self.settings),
            )
        except DiscordError as exc:
            if exc.code not in GONE:
                raise
            # Deleted (or its channel is): nothing left to show the outcome on; the
            # other messages of the approval are still edited.
            log.info("Discord message %s is gone; not edited: %s", message.ref, exc)


def _field(answer: httpx.Response, name: str) -> str:
    """A snowflake field of a JSON answer; a :class:`Refusal` when it has none."""
    try:
        value = answer.json()[name]
    except (ValueError, KeyError, TypeError):
        value = None
    if not isinstance(value, str) or not SNOWFLAKE.fullmatch(value):
        raise Refusal("Discord", answer.status_code, f"no {name} in the answer")
    return value
