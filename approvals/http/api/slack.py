"""``POST /slack/interactions``: Approve and Reject clicks, and the reject reason modal.

A callback is checked in this order: its signature and timestamp (401 otherwise), its
shape (400 otherwise), whether it was seen before (a replay is acknowledged with 200
and does nothing), and only then acted on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import parse_qs

import msgspec
from litestar import Request, Response, post
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier

from approvals.delivery.channels import interactions
from approvals.delivery.channels.slack import clip, escape
from approvals.queue.schema import MAX_TEXT

if TYPE_CHECKING:
    from approvals.services import Services

log = logging.getLogger("approvals.notify")
REASON_CALLBACK = "reject_reason"
WINDOW = 5 * 60  # seconds a signed timestamp may be from now, either way (Slack's rule)
# A replay is possible until its timestamp is WINDOW old, so up to 2 * WINDOW after it was
# first seen; one WINDOW more covers clocks that differ between instances.
RECEIPT_SECONDS = 3 * WINDOW
MODAL_ERROR_LIMIT = 150

# -- the shape of a callback --------------------------------------------------------------

# Slack ids (users, channels, approvals in button values): printable ASCII, no spaces.
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]
# Slack's own names (action_id, callback_id, trigger_id): at most 255 printable characters.
Key = Annotated[str, msgspec.Meta(max_length=255, pattern=r"^[\x21-\x7e]*$")]
# A button's value: the approval id, and after ``|`` the digest of the arguments shown.
ButtonValue = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")]
Reason = Annotated[str, msgspec.Meta(max_length=MAX_TEXT, pattern=r"^[^\x00]*$")]


class Malformed(Exception):
    """A callback whose body or payload is not what Slack sends (answered 400)."""


class _Kind(msgspec.Struct):
    type: str = ""


class _User(msgspec.Struct):
    id: Id


class _Channel(msgspec.Struct):
    id: Id


class _Container(msgspec.Struct):
    channel_id: Id | None = None


class _Action(msgspec.Struct):
    action_id: Key
    value: ButtonValue | None = None


class _BlockActions(msgspec.Struct):
    user: _User
    actions: Annotated[list[_Action], msgspec.Meta(min_length=1, max_length=25)]
    channel: _Channel | None = None
    container: _Container | None = None
    trigger_id: Key | None = None


class _Input(msgspec.Struct):
    value: Reason | None = None


class _State(msgspec.Struct):
    values: dict[Key, dict[Key, _Input]] = msgspec.field(default_factory=dict)


class _View(msgspec.Struct):
    callback_id: Key = ""
    private_metadata: Annotated[str, msgspec.Meta(max_length=64, pattern=r"^[\x21-\x7e]*$")] = ""
    state: _State = msgspec.field(default_factory=_State)


class _ViewSubmission(msgspec.Struct):
    user: _User
    view: _View


@dataclass(frozen=True)
class Click:
    """Approve or Reject pressed on an approval's message."""

    user: str
    action: str  # approve, reject
    approval_id: str
    channel: str | None
    trigger_id: str | None
    digest: str | None = None  # of the arguments the message showed


@dataclass(frozen=True)
class Submission:
    """The reject reason modal submitted."""

    user: str
    approval_id: str
    reason: str | None


def parse(body: bytes) -> Click | Submission | None:
    """The click or submission in an interaction body; None for kinds this service ignores.

    Raises :class:`Malformed` for a body that is not one form field ``payload`` holding a
    JSON object of the shape Slack sends.
    """
    try:
        form = parse_qs(body.decode(), errors="strict", max_num_fields=20)
    except ValueError as exc:  # not UTF-8, or too many fields
        raise Malformed(f"the body is not a form: {exc}") from exc
    fields = form.get("payload", [])
    if len(fields) != 1:
        raise Malformed("the body must carry one form field 'payload'")
    raw = fields[0].encode()
    try:
        kind = msgspec.json.decode(raw, type=_Kind).type
        if kind == "block_actions":
            return _click(msgspec.json.decode(raw, type=_BlockActions))
        if kind == "view_submission":
            return _submission(msgspec.json.decode(raw, type=_ViewSubmission))
    except (msgspec.DecodeError, RecursionError) as exc:  # ValidationError is a DecodeError
        raise Malformed(f"payload: {exc}") from exc
    return None


def _click(payload: _BlockActions) -> Click | None:
    action = payload.actions[0]
    if action.action_id not in ("approve", "reject"):
        return None
    if action.value is None:
        raise Malformed("payload: the button carries no approval id - at `$.actions[0].value`")
    channel = payload.channel.id if payload.channel else None
    if channel is None and payload.container is not None:
        channel = payload.container.channel_id
    approval_id, _, digest = action.value.partition("|")
    return Click(
        payload.user.id, action.action_id, approval_id, channel, payload.trigger_id, digest or None
    )


def _submission(payload: _ViewSubmission) -> Submission | None:
    view = payload.view
    if view.callback_id != REASON_CALLBACK:
        return None
    if not view.private_metadata:
        raise Malformed("payload: the form names no approval - at `$.view.private_metadata`")
    reason = view.state.values.get("reason", {}).get("reason", _Input()).value
    reason = reason.strip() if reason else None
    return Submission(payload.user.id, view.private_metadata, reason or None)


# -- signature and replays -----------------------------------------------------------------


def verified(settings: Any, body: bytes, headers: Any) -> bool:
    """Tell whether Slack signed this body (``v0=`` HMAC) within five minutes of now.

    slack_sdk's ``SignatureVerifier`` checks the signature; it expects what Slack sends, so
    a timestamp that is not ASCII digits, a signature that is not ASCII or a body that is
    not UTF-8 is refused here first as unsigned (it would raise there).
    """
    secret = settings.slack_signing_secret
    timestamp = headers.get("x-slack-request-timestamp") or ""
    signature = headers.get("x-slack-signature") or ""
    if not secret or not signature.isascii():
        return False
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return SignatureVerifier(secret).is_valid(body, timestamp, signature)


async def first_seen(services: Services, timestamp: str, body: bytes) -> bool:
    """Record a signed interaction; False when any instance recorded it before (a replay)."""
    material = b"v0:" + timestamp.encode() + b":" + body
    return await interactions.first_seen(services, material, RECEIPT_SECONDS)


@post("/slack/interactions", include_in_schema=False, status_code=200)
async def slack_interactions(request: Request[Any, Any, Any]) -> Response[Any]:
    """Act on a signed Slack interaction; 401 and nothing decided when the signature fails,
    400 when the callback is malformed, and nothing done again when it is a replay."""
    services = request.app.state.services
    body = await request.body()
    if not verified(services.settings, body, request.headers):
        return Response(
            {"error": "unauthorized", "message": "the Slack signature or timestamp is not valid"},
            status_code=401,
        )
    try:
        interaction = parse(body)
    except Malformed as exc:
        return Response({"error": "invalid", "message": str(exc)[:500]}, status_code=400)
    if interaction is None:
        return Response(b"", status_code=200)
    if not await first_seen(services, request.headers["x-slack-request-timestamp"], body):
        log.info("a replayed Slack interaction was acknowledged and ignored")
        return Response(b"", status_code=200)
    if isinstance(interaction, Click):
        await _clicked(services, interaction)
        return Response(b"", status_code=200)
    return await _submitted(services, interaction)


async def _ephemeral(services: Services, click: Click, text: str) -> None:
    """Tell the clicking user ``text`` (escaped here: it may quote names and ids)."""
    if not click.channel:
        return
    try:
        await services.webhooks.check_destination(services.settings.slack_api_url)
        await services.notifier.slack.chat_postEphemeral(
            channel=click.channel, user=click.user, text=escape(text)
        )
    except (SlackApiError, PermissionError, OSError, TimeoutError) as exc:
        log.warning("Slack ephemeral message to %s failed: %s", click.user, exc)


async def _clicked(services: Services, click: Click) -> None:
    reviewer = await interactions.reviewer_for(services.engine, "slack", click.user)
    if reviewer is None:
        await _ephemeral(services, click, interactions.not_linked("slack", click.user))
        return
    if click.action == "reject":
        reason = await interactions.refusal(services, click.approval_id, reviewer)
        if reason is not None:
            await _ephemeral(services, click, reason)
            return
        await _open_modal(services, click)
        return
    said = await interactions.decide(
        services, click.approval_id, reviewer, "approve", digest=click.digest
    )
    if said is not None:
        await _ephemeral(services, click, said)


async def _open_modal(services: Services, click: Click) -> None:
    view = {
        "type": "modal",
        "callback_id": REASON_CALLBACK,
        "private_metadata": click.approval_id,
        "title": {"type": "plain_text", "text": "Reject request"},
        "submit": {"type": "plain_text", "text": "Reject"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": "reason",
                "optional": True,
                "label": {"type": "plain_text", "text": "Reason (sent back to the agent)"},
                "element": {"type": "plain_text_input", "action_id": "reason", "multiline": True},
            }
        ],
    }
    try:
        await services.webhooks.check_destination(services.settings.slack_api_url)
        await services.notifier.slack.views_open(trigger_id=click.trigger_id, view=view)
    except (SlackApiError, PermissionError, OSError, TimeoutError) as exc:
        log.warning("Slack views.open failed: %s", exc)
        await _ephemeral(services, click, "Slack could not open the reject form; try again.")


async def _submitted(services: Services, submission: Submission) -> Response[Any]:
    reviewer = await interactions.reviewer_for(services.engine, "slack", submission.user)
    if reviewer is None:
        problem: str | None = interactions.not_linked("slack", submission.user)
    else:
        problem = await interactions.decide(
            services, submission.approval_id, reviewer, "reject", comment=submission.reason
        )
    if problem is not None:
        errors = {"reason": clip(problem, MODAL_ERROR_LIMIT)}
        return Response({"response_action": "errors", "errors": errors}, status_code=200)
    return Response(b"", status_code=200)
