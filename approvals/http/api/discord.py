"""``POST /discord/interactions``: Discord's pings, Approve and Reject clicks, and the
reject reason modal.

An interaction is checked in this order: its Ed25519 signature and timestamp (401
otherwise), its shape (400 otherwise), whether it was seen before (a replay is
acknowledged and does nothing), and only then acted on. Every answer is the interaction
response itself: Discord shows it to the clicker (ephemeral) or puts it in place of the
message (the outcome).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from litestar import Request, Response, post
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from approvals.delivery.channels import interactions
from approvals.delivery.channels.discord import (
    CONTENT_LIMIT,
    CUSTOM_ID_LIMIT,
    NO_MENTIONS,
    clip,
    render,
)
from approvals.delivery.channels.pager import shown
from approvals.digest import PREFIX
from approvals.queue.schema import MAX_TEXT

if TYPE_CHECKING:
    from approvals.services import Services

log = logging.getLogger("approvals.notify")

WINDOW = 5 * 60  # seconds a signed timestamp may be from now, either way
# A replay is possible until its timestamp is WINDOW old, so up to 2 * WINDOW after it was
# first seen; one WINDOW more covers clocks that differ between instances.
RECEIPT_SECONDS = 3 * WINDOW
REASON_LIMIT = 2000  # the modal's text input (Discord's own maximum is 4000)
HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")
HEX_SIGNATURE = re.compile(r"[0-9a-fA-F]{128}")
DIGEST = re.compile(r"[0-9a-f]{64}")

# Interaction types Discord sends, and the answer types this endpoint uses.
PING, MESSAGE_COMPONENT, MODAL_SUBMIT = 1, 3, 5
PONG, MESSAGE, DEFERRED_UPDATE, UPDATE, MODAL = 1, 4, 6, 7, 9
EPHEMERAL = 64  # the flag that shows a message to the clicker only

# -- the shape of an interaction -----------------------------------------------------------

Snowflake = Annotated[str, msgspec.Meta(min_length=1, max_length=20, pattern=r"^[0-9]+$")]
CustomId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=CUSTOM_ID_LIMIT, pattern=r"^[\x21-\x7e]+$")
]
Reason = Annotated[str, msgspec.Meta(max_length=MAX_TEXT, pattern=r"^[^\x00]*$")]


class Malformed(Exception):
    """An interaction that is not what Discord sends (answered 400)."""


class _Kind(msgspec.Struct):
    id: Snowflake
    type: Annotated[int, msgspec.Meta(ge=1, le=100)]


class _User(msgspec.Struct):
    id: Snowflake


class _Member(msgspec.Struct):
    user: _User


class _Message(msgspec.Struct):
    id: Snowflake


class _ComponentData(msgspec.Struct):
    custom_id: CustomId


class _Input(msgspec.Struct):
    custom_id: CustomId
    value: Reason | None = None


class _Row(msgspec.Struct):
    # An action row holds the inputs; a label (newer modals) holds one.
    components: Annotated[list[_Input], msgspec.Meta(max_length=5)] = []
    component: _Input | None = None


class _ModalData(msgspec.Struct):
    custom_id: CustomId
    components: Annotated[list[_Row], msgspec.Meta(max_length=5)] = []


class _Component(msgspec.Struct):
    data: _ComponentData
    member: _Member | None = None  # in a server
    user: _User | None = None  # in a direct message


class _ModalSubmit(msgspec.Struct):
    data: _ModalData
    member: _Member | None = None
    user: _User | None = None
    message: _Message | None = None  # present when a message's button opened the modal


@dataclass(frozen=True)
class Ping:
    """Discord checking the endpoint."""


@dataclass(frozen=True)
class Click:
    """Approve or Reject pressed on an approval's message."""

    user: str
    action: str  # approve, reject
    approval_id: str
    digest: str | None = None  # of the arguments the message showed


@dataclass(frozen=True)
class Submission:
    """The reject reason modal submitted."""

    user: str
    approval_id: str
    reason: str | None
    from_message: bool  # the modal was opened from a message (so the answer may edit it)


@dataclass(frozen=True)
class Ignored:
    """An interaction this service does not act on (a slash command, another button)."""

    type: int


def parse(body: bytes) -> tuple[str, Ping | Click | Submission | Ignored]:
    """The interaction's id and what it is. Raises :class:`Malformed` for a body that is
    not a JSON object of the shape Discord sends."""
    try:
        kind = msgspec.json.decode(body, type=_Kind)
        if kind.type == PING:
            return kind.id, Ping()
        if kind.type == MESSAGE_COMPONENT:
            return kind.id, _click(msgspec.json.decode(body, type=_Component))
        if kind.type == MODAL_SUBMIT:
            return kind.id, _submission(msgspec.json.decode(body, type=_ModalSubmit))
    except (msgspec.DecodeError, RecursionError) as exc:  # ValidationError is a DecodeError
        raise Malformed(str(exc)) from exc
    return kind.id, Ignored(kind.type)


def _user(member: _Member | None, user: _User | None) -> str:
    if member is not None:
        return member.user.id
    if user is not None:
        return user.id
    raise Malformed("the interaction names no user - at `$.member.user` or `$.user`")


def _click(payload: _Component) -> Click | Ignored:
    user = _user(payload.member, payload.user)
    action, _, rest = payload.data.custom_id.partition(":")
    if action not in ("approve", "reject"):
        return Ignored(MESSAGE_COMPONENT)
    approval_id, _, digest = rest.partition(":")
    if not approval_id:
        raise Malformed("the button names no approval - at `$.data.custom_id`")
    if DIGEST.fullmatch(digest):  # shortened on the button: see discord.approve_id
        digest = PREFIX + digest
    return Click(user, action, approval_id, digest or None)


def _submission(payload: _ModalSubmit) -> Submission | Ignored:
    user = _user(payload.member, payload.user)
    kind, _, approval_id = payload.data.custom_id.partition(":")
    if kind != "reason":
        return Ignored(MODAL_SUBMIT)
    if not approval_id:
        raise Malformed("the form names no approval - at `$.data.custom_id`")
    reason = None
    for row in payload.data.components:
        for field in [*row.components, *([row.component] if row.component else [])]:
            if field.custom_id == "reason" and field.value:
                reason = field.value.strip() or None
    return Submission(user, approval_id, reason, payload.message is not None)


# -- signature ---------------------------------------------------------------------------


def verified(settings: Any, body: bytes, headers: Any, now: float | None = None) -> bool:
    """Tell whether Discord signed this body: an Ed25519 signature
    (``X-Signature-Ed25519``, hex) over ``X-Signature-Timestamp`` followed by the body,
    by the application's public key, with a timestamp (ASCII digits) within five minutes
    of now."""
    key = settings.discord_public_key
    signature = headers.get("x-signature-ed25519") or ""
    timestamp = headers.get("x-signature-timestamp") or ""
    if not HEX_KEY.fullmatch(key):
        if key:
            log.warning("APPROVALS_DISCORD_PUBLIC_KEY is not 64 hex digits: interactions refused")
        return False
    if not HEX_SIGNATURE.fullmatch(signature):
        return False
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > WINDOW:
        return False
    try:
        VerifyKey(bytes.fromhex(key)).verify(timestamp.encode() + body, bytes.fromhex(signature))
    except (BadSignatureError, ValueError):
        return False
    return True


# -- answers -----------------------------------------------------------------------------


def _json(answer: dict[str, Any], status: int = 200) -> Response[Any]:
    return Response(answer, status_code=status, media_type="application/json")


def ephemeral(text: str) -> Response[Any]:
    """A message only the clicker sees (escaped here: it may quote names and ids)."""
    data = {
        "content": clip(text, CONTENT_LIMIT),
        "flags": EPHEMERAL,
        "allowed_mentions": NO_MENTIONS,
    }
    return _json({"type": MESSAGE, "data": data})


async def updated(services: Services, approval_id: str, fallback: str) -> Response[Any]:
    """The message replaced by the approval as it is now (the outcome, no buttons)."""
    approval = await shown(services.engine, approval_id)
    if not isinstance(approval, dict):
        return ephemeral(fallback)
    message = render(approval, services.settings)
    return _json({"type": UPDATE, "data": message})


def modal(approval_id: str) -> Response[Any]:
    """The reject form: one optional reason."""
    reason = {
        "type": 4,  # a text input
        "custom_id": "reason",
        "style": 2,  # paragraph
        "label": "Reason (sent back to the agent)",
        "required": False,
        "max_length": REASON_LIMIT,
    }
    data = {
        "custom_id": f"reason:{approval_id}",
        "title": "Reject request",
        "components": [{"type": 1, "components": [reason]}],
    }
    return _json({"type": MODAL, "data": data})


@post("/discord/interactions", include_in_schema=False, status_code=200)
async def discord_interactions(request: Request[Any, Any, Any]) -> Response[Any]:
    """Act on a signed Discord interaction; 401 and nothing decided when the signature
    fails, 400 when the interaction is malformed, and nothing done again when it is a
    replay."""
    services = request.app.state.services
    body = await request.body()
    if not verified(services.settings, body, request.headers):
        return _json(
            {
                "error": "unauthorized",
                "message": "the Discord signature or timestamp is not valid",
            },
            status=401,
        )
    try:
        interaction_id, interaction = parse(body)
    except Malformed as exc:
        return _json({"error": "invalid", "message": str(exc)[:500]}, status=400)
    if isinstance(interaction, Ping):
        return _json({"type": PONG})
    if isinstance(interaction, Ignored) and interaction.type not in (
        MESSAGE_COMPONENT,
        MODAL_SUBMIT,
    ):
        return ephemeral("This app has no commands: use the buttons on its messages.")
    if not await interactions.first_seen(
        services, b"discord:" + interaction_id.encode(), RECEIPT_SECONDS
    ):
        log.info("a replayed Discord interaction was acknowledged and ignored")
        return _json({"type": DEFERRED_UPDATE})
    if isinstance(interaction, Click):
        return await _clicked(services, interaction)
    if isinstance(interaction, Submission):
        return await _submitted(services, interaction)
    return _json({"type": DEFERRED_UPDATE})  # another button or form: nothing to do


async def _clicked(services: Services, click: Click) -> Response[Any]:
    reviewer = await interactions.reviewer_for(services.engine, "discord", click.user)
    if reviewer is None:
        return ephemeral(interactions.not_linked("discord", click.user))
    if click.action == "reject":
        reason = await interactions.refusal(services, click.approval_id, reviewer)
        if reason is not None:
            return ephemeral(reason)
        return modal(click.approval_id)
    said = await interactions.decide(
        services, click.approval_id, reviewer, "approve", digest=click.digest
    )
    if said is not None:
        return ephemeral(said)
    return await updated(services, click.approval_id, "Approved.")


async def _submitted(services: Services, submission: Submission) -> Response[Any]:
    reviewer = await interactions.reviewer_for(services.engine, "discord", submission.user)
    if reviewer is None:
        return ephemeral(interactions.not_linked("discord", submission.user))
    said = await interactions.decide(
        services, submission.approval_id, reviewer, "reject", comment=submission.reason
    )
    if said is not None:
        return ephemeral(said)
    if not submission.from_message:
        return ephemeral("Rejected.")
    return await updated(services, submission.approval_id, "Rejected.")
