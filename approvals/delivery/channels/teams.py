"""Microsoft Teams: the Adaptive Card of an approval, posting and updating it through the
Bot Framework connector, and the conversations the bot learned.

The Bot Framework protocol is spoken directly: a client-credentials token from the login
URL, then ``POST``/``PUT`` on ``{serviceUrl}/v3/conversations/{id}/activities``. Where a
conversation lives (its service URL) is learned from the activities Teams sends the bot
(``remember``); ``APPROVALS_TEAMS_SERVICE_URL`` stands in for conversations not seen yet.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from approvals.core.clock import now_iso
from approvals.core.config import Settings
from approvals.delivery.channels.base import Channel, Message, Posted, Refusal, refusal
from approvals.delivery.channels.models import conversations_table
from approvals.delivery.channels.schema import Lead
from approvals.delivery.channels.slack import OUTCOME, arguments_text, page_url
from approvals.delivery.worker import Sent
from approvals.views.render import clock, left

if TYPE_CHECKING:
    from approvals.delivery.channels.schema import Notice

log = logging.getLogger("approvals.notify")

NAME = "teams"
CARD = "application/vnd.microsoft.card.adaptive"
SCOPE = "https://api.botframework.com/.default"
TITLE_LIMIT = 300
TOKEN_MARGIN = 300.0  # seconds before its expiry a token is replaced
NO_CONVERSATION = "install the bot in that conversation or set APPROVALS_TEAMS_SERVICE_URL"

# What Adaptive Card Markdown (and CommonMark) reads in a TextBlock or a FactSet value:
# emphasis, links, headings (also "===" under a line), quotes, lists, code, tables, entities.
MARKDOWN = re.compile(r"([\\*_~\[\]()#>\-+`|=&])")
NUMBERED = re.compile(r"^([ \t]*\d+)\.", re.M)  # "1." opens a numbered list
FUNCTION = re.compile(r"\{(?=\{)")  # "{{" opens {{DATE(…)}} and {{TIME(…)}}
# C0 controls but tab and newline, DEL, C1 controls, and the bidirectional overrides that
# make text read otherwise than it is.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def escape(text: Any) -> str:
    """Text shown as written in a TextBlock or FactSet value: Markdown characters
    backslash-escaped, ``{{`` broken (no date functions), control characters dropped."""
    out = MARKDOWN.sub(r"\\\1", CONTROL.sub("", str(text)))
    out = NUMBERED.sub(r"\1\\.", out)
    return FUNCTION.sub("{\u200b", out)


def _text(text: str, **style: Any) -> dict[str, Any]:
    """A wrapping TextBlock of already escaped ``text``."""
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def _link(url: str) -> str:
    """A URL that a Markdown link's parentheses cannot end early."""
    return url.replace(" ", "%20").replace("(", "%28").replace(")", "%29")


def card(approval: dict[str, Any], settings: Settings, lead: Lead | None = None) -> dict[str, Any]:
    """The Adaptive Card (1.4): what is asked and by whom, and while it is pending a reason
    box with Approve and Reject; once resolved, the outcome instead."""
    url = page_url(settings, approval["id"])
    body: list[dict[str, Any]] = []
    if lead is not None:
        body.append(_text(f"**{escape(lead.tag)}:** {escape(lead.text)}", color="Attention"))
    title = (approval.get("headline") or approval["title"] or "Approval requested")[:TITLE_LIMIT]
    body.append(_text(escape(title), size="Medium", weight="Bolder"))
    facts = [
        ("Agent", escape(approval["agentId"] or "—")),
        ("Tool", escape(approval["tool"] or "—")),
        ("Run", escape(approval["runId"] or "—")),
        ("Requested by", escape(approval["requestedBy"])),
    ]
    pending = approval["status"] == "pending"
    if pending:
        due = approval["expiresAt"]
        when = f"{left(due)} (until {clock(due)})" if due else "no deadline"
        if approval["minApprovals"] > 1:
            when += f" · needs {approval['minApprovals']} approvals"
        facts.append(("Time left", when))  # the service's own words: no agent text
    body.append(
        {
            "type": "FactSet",
            "facts": [{"title": name, "value": value} for name, value in facts],
        }
    )
    arguments, cut = arguments_text(approval["arguments"])
    if arguments:
        body.append(_text(escape(arguments), fontType="Monospace", size="Small"))
        if cut:
            body.append(_text("_Arguments truncated: the page shows them all._", isSubtle=True))
    if not pending:
        verb = OUTCOME.get(approval["status"], approval["status"])
        body.append(
            _text(
                f"**{escape(verb)}** by {escape(approval['resolvedBy'])} "
                f"at {clock(approval['resolvedAt'])}"
            )
        )
        if approval["comment"]:
            body.append(_text(f"Reason: {escape(approval['comment'])}", isSubtle=True))
    body.append(_text(f"[Open in Approvals]({_link(url)})"))
    out: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.4",
        "msteams": {"width": "Full"},
        "body": body,
    }
    if pending:
        body.append(
            {
                "type": "Input.Text",
                "id": "reason",
                "isMultiline": True,
                "isRequired": False,
                "label": "Reason (for a rejection; sent back to the agent)",
                "placeholder": "Optional",
                "maxLength": 2000,
            }
        )
        approve: dict[str, Any] = {"approvalId": approval["id"]}
        if approval.get("argumentsDigest"):
            # The digest of what the card shows: approving changed arguments is refused.
            approve["digest"] = approval["argumentsDigest"]
        out["actions"] = [
            {
                "type": "Action.Execute",
                "title": "Approve",
                "verb": "approve",
                "style": "positive",
                "associatedInputs": "none",
                "data": approve,
            },
            {
                "type": "Action.Execute",
                "title": "Reject",
                "verb": "reject",
                "style": "destructive",
                "data": {"approvalId": approval["id"]},
            },
        ]
    return out


def activity(approval: dict[str, Any], settings: Settings, lead: Lead | None = None) -> Any:
    """The message activity carrying the approval's card."""
    return {
        "type": "message",
        "attachments": [{"contentType": CARD, "content": card(approval, settings, lead)}],
    }


# -- the conversations the bot learned -----------------------------------------------------


@dataclass(frozen=True)
class Place:
    """Where a Teams conversation is: its id and the service URL that reaches it."""

    conversation: str
    service_url: str


@dataclass(frozen=True)
class Learned:
    """A conversation as an activity shows it."""

    conversation: str
    service_url: str
    kind: str | None = None  # personal, groupChat, channel
    tenant_id: str | None = None
    user_ref: str | None = None  # the owner's AAD object id, lower case, in a personal chat


async def remember(engine: AsyncEngine, writer: Any, seen: Learned) -> None:
    """Record (insert or update) where a conversation lives; a value the activity does not
    carry (tenant, owner) keeps what was known."""
    table = conversations_table
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    values = {
        "channel": NAME,
        "conversation": seen.conversation,
        "service_url": seen.service_url,
        "tenant_id": seen.tenant_id,
        "user_ref": seen.user_ref,
        "updated_at": now_iso(),
    }
    statement = insert(table).values(values)
    changes: dict[str, Any] = {"service_url": seen.service_url, "updated_at": values["updated_at"]}
    if seen.tenant_id is not None:
        changes["tenant_id"] = seen.tenant_id
    if seen.user_ref is not None:
        changes["user_ref"] = seen.user_ref
    statement = statement.on_conflict_do_update(
        index_elements=["channel", "conversation"], set_=changes
    )
    async with writer, engine.begin() as conn:
        await conn.execute(statement)


async def forget(engine: AsyncEngine, writer: Any, conversation: str) -> None:
    """Forget a conversation the bot was removed from."""
    table = conversations_table
    async with writer, engine.begin() as conn:
        await conn.execute(
            table.delete().where(table.c.channel == NAME, table.c.conversation == conversation)
        )


async def learned(engine: AsyncEngine, conversation: str) -> str | None:
    """The service URL a conversation was last seen on, if the bot has seen it."""
    table = conversations_table
    async with engine.connect() as conn:
        found = await conn.execute(
            select(table.c.service_url).where(
                table.c.channel == NAME, table.c.conversation == conversation
            )
        )
        return found.scalar()


async def personal_chat(engine: AsyncEngine, user_ref: str) -> Place | None:
    """The personal chat between the bot and the user with this AAD object id (the one seen
    last, should there be several), if the user installed the bot."""
    table = conversations_table
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(table.c.conversation, table.c.service_url)
                .where(table.c.channel == NAME, table.c.user_ref == user_ref.lower())
                .order_by(table.c.updated_at.desc())
                .limit(1)
            )
        ).first()
    return Place(row.conversation, row.service_url) if row is not None else None


def activities_url(service_url: str, conversation: str, ref: str | None = None) -> str:
    """The connector URL of a conversation's activities (of one activity, with ``ref``)."""
    url = f"{service_url.rstrip('/')}/v3/conversations/{quote(conversation, safe='')}/activities"
    return url if ref is None else f"{url}/{quote(ref, safe='')}"


class Teams(Channel):
    """Adaptive Cards with a reason box, Approve and Reject, updated to the outcome."""

    name = NAME
    label = "Teams"
    scheme = "teams"
    contact = "teams_user_id"
    live = True

    def __init__(self, services: Any) -> None:
        super().__init__(services)
        self._token: tuple[str, float] | None = None  # the bearer token, valid until
        self._token_lock = asyncio.Lock()
        # Conversations this process wrote as an activity showed them: written again only
        # when an activity says something new.
        self.written: dict[str, Learned] = {}

    def missing(self) -> str | None:
        if not self.settings.teams_app_id:
            return "APPROVALS_TEAMS_APP_ID is not set"
        if not self.settings.teams_app_password:
            return "APPROVALS_TEAMS_APP_PASSWORD is not set"
        return None

    def hosts(self) -> list[str]:
        return [self.settings.teams_login_url]

    def escape(self, text: Any) -> str:
        return escape(text)

    async def token(self) -> str:
        """A Bot Framework bearer token (client credentials), kept until shortly before it
        expires. A login error is retried on the schedule: a wrong secret, once fixed,
        loses no notice."""
        async with self._token_lock:
            if self._token is not None and time.monotonic() < self._token[1]:
                return self._token[0]
            settings = self.settings
            answer = await self.http.post(
                settings.teams_login_url,
                data={
                    "grant_type": "client_credentials",
                    "client_id": settings.teams_app_id,
                    "client_secret": settings.teams_app_password,
                    "scope": SCOPE,
                },
            )
            if answer.status_code >= 400:
                failed = refusal(
                    "Teams login", answer.status_code, answer.headers, answer.text[:200]
                )
                failed.permanent = False
                raise failed
            try:
                data = answer.json()
                token, lifetime = data["access_token"], float(data.get("expires_in", 3600))
            except (ValueError, TypeError, KeyError) as exc:
                raise Refusal("Teams login", answer.status_code, "no access_token") from exc
            if not isinstance(token, str) or not token:
                raise Refusal("Teams login", answer.status_code, "no access_token")
            keep = max(lifetime - TOKEN_MARGIN, lifetime / 2)
            self._token = (token, time.monotonic() + keep)
            return token

    async def _send(self, method: str, url: str, body: Any) -> Any:
        """One authenticated connector call; a 401 is tried once more with a new token
        (the one kept may have been revoked)."""
        try:
            return await self.call(method, url, json=body, headers=await self._bearer())
        except Refusal as exc:
            if exc.status != 401:
                raise
        self._token = None
        return await self.call(method, url, json=body, headers=await self._bearer())

    async def _bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token()}"}

    async def _place(self, notice: Notice) -> Place | Sent:
        """Where a notice goes: a reviewer's personal chat with the bot, or the route's
        conversation on the service URL it was seen on (else the configured one)."""
        engine = self.services.engine
        if notice.reviewer is not None:
            place = await personal_chat(engine, notice.to)
            if place is None:
                return Sent(
                    error=f"Teams: reviewer {notice.reviewer} has not installed the bot in a "
                    "personal chat, so it cannot write to them",
                    permanent=True,
                )
            return place
        service_url = await learned(engine, notice.to) or self.settings.teams_service_url
        if not service_url:
            return Sent(
                error=f"Teams: conversation {notice.to} is not known: {NO_CONVERSATION}",
                permanent=True,
            )
        return Place(notice.to, service_url)

    async def post(
        self, notice: Notice, approval: dict[str, Any], lead: Lead | None
    ) -> Posted | Sent:
        place = await self._place(notice)
        if isinstance(place, Sent):
            return place
        await self.check(place.service_url)
        answer = await self._send(
            "POST",
            activities_url(place.service_url, place.conversation),
            activity(approval, self.settings, lead),
        )
        try:
            ref = answer.json()["id"]
        except (ValueError, TypeError, KeyError):
            ref = None
        if not isinstance(ref, str) or not ref:
            # Posted, perhaps, but not where it could be edited; a retry could post it twice.
            return Sent(
                status_code=answer.status_code,
                error="Teams answered without the message's id",
                permanent=True,
            )
        return Posted(place.conversation, ref, answer.status_code, service_url=place.service_url)

    async def edit(self, approval: dict[str, Any], message: Message) -> None:
        service_url = (
            message.service_url
            or await learned(self.services.engine, message.conversation)
            or self.settings.teams_service_url
        )
        if not service_url:
            raise Refusal("Teams", 404, f"conversation {message.conversation}: {NO_CONVERSATION}")
        await self.check(service_url)
        body = {**activity(approval, self.settings), "id": message.ref}
        await self._send(
            "PUT", activities_url(service_url, message.conversation, message.ref), body
        )
