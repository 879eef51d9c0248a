"""``POST /teams/messages``: the Teams bot's messaging endpoint (Bot Framework activities).

An activity is checked in this order: the Bot Framework JWT in ``Authorization`` (401
otherwise: signed by a key of the configured OpenID metadata, issued by its issuer, for
this bot's app id, in date, and naming the activity's ``serviceUrl``), the activity's
shape (400 otherwise), then the conversation it comes from is remembered, and an
``adaptiveCard/action`` invoke (Approve, Reject) is acted on unless it was seen before.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, cast

import httpx
import msgspec
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from litestar import Request, Response, post

from approvals.delivery.channels import interactions
from approvals.delivery.channels import teams as channel
from approvals.delivery.channels.pager import shown
from approvals.queue.schema import MAX_TEXT

if TYPE_CHECKING:
    from approvals.services import Services

log = logging.getLogger("approvals.notify")

ACTION = "adaptiveCard/action"
MESSAGE = "application/vnd.microsoft.activity.message"
LEEWAY = 300  # seconds a token's exp and nbf may be off (the Bot Framework SDK's five minutes)
KEYS_SECONDS = 3600  # how long the OpenID metadata and its keys are kept
REFETCH_SECONDS = 60  # an unknown kid fetches the keys again at most this often
# Bot Framework tokens live an hour: a replay is possible no longer than that, and the
# receipt is kept an hour more for clocks that differ between instances.
RECEIPT_SECONDS = 2 * 3600
TOKEN_LIMIT = 8192
ANSWER_LIMIT = 1000
KNOWN_LIMIT = 10_000  # conversations remembered in memory as already written

# -- verifying the Bot Framework's JWT -----------------------------------------------------


class Unverified(Exception):
    """The request does not prove it comes from the Bot Framework (answered 401)."""


@dataclass(frozen=True)
class _Keys:
    issuer: str
    keys: KeySet
    endorsements: dict[str, list[str]]  # by kid: the channels a key may sign for
    fetched: float


class Verifier:
    """The OpenID metadata and signing keys of one ``APPROVALS_TEAMS_OPENID_URL``, fetched
    under the outbound policy and kept an hour; an unknown ``kid`` fetches them again."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._keys: _Keys | None = None
        self._refetched = 0.0
        self._lock = asyncio.Lock()

    async def _get(self, services: Services, url: str) -> dict[str, Any]:
        try:
            await services.webhooks.check_destination(url)
            answer = await services.notifier.channels[channel.NAME].http.get(
                url, headers={"Accept": "application/json"}
            )
            data = answer.json() if answer.status_code == 200 else None
        # Refused (the outbound policy) is an OSError; InvalidURL is no httpx.HTTPError.
        except (OSError, ValueError, httpx.HTTPError, httpx.InvalidURL) as exc:
            raise Unverified(f"{url} could not be read: {type(exc).__name__}: {exc}") from exc
        if not isinstance(data, dict):
            raise Unverified(f"{url} did not answer a JSON object (HTTP {answer.status_code})")
        return data

    async def keys(self, services: Services, refresh: bool = False) -> _Keys:
        """The issuer and keys (cached); ``refresh`` fetches them again unless that was
        done within the last minute."""
        async with self._lock:
            now = time.monotonic()
            cached = self._keys
            recent = now - self._refetched < REFETCH_SECONDS
            if (
                cached is not None
                and now - cached.fetched < KEYS_SECONDS
                and (not refresh or recent)
            ):
                return cached
            metadata = await self._get(services, self.url)
            issuer, jwks_uri = metadata.get("issuer"), metadata.get("jwks_uri")
            if not isinstance(issuer, str) or not isinstance(jwks_uri, str):
                raise Unverified(f"the OpenID metadata at {self.url} names no issuer or jwks_uri")
            jwks = await self._get(services, jwks_uri)
            try:
                keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
            except (JoseError, ValueError, TypeError, KeyError) as exc:
                raise Unverified(f"the keys at {jwks_uri} are not a JSON Web Key Set") from exc
            endorsements = {
                str(key["kid"]): [str(e) for e in key["endorsements"]]
                for key in jwks.get("keys", [])
                if isinstance(key, dict)
                and "kid" in key
                and isinstance(key.get("endorsements"), list)
            }
            self._keys = _Keys(issuer, keys, endorsements, now)
            if refresh:
                self._refetched = now
            return self._keys

    async def claims(
        self, services: Services, authorization: str | None
    ) -> tuple[dict[str, Any], list[str] | None]:
        """The claims of a valid Bot Framework token in ``authorization``, and the channels
        its signing key is endorsed for (None: the key does not say); raises
        :class:`Unverified` otherwise."""
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unverified("no Bearer token in Authorization")
        if len(token) > TOKEN_LIMIT or not token.isascii():
            raise Unverified("the Bearer token is not a JWT")
        keys = await self.keys(services)
        try:
            try:
                decoded = jwt.decode(token, keys.keys, algorithms=["RS256"])
            except InvalidKeyIdError:  # the Bot Framework rotated its keys since
                keys = await self.keys(services, refresh=True)
                decoded = jwt.decode(token, keys.keys, algorithms=["RS256"])
            jwt.JWTClaimsRegistry(
                leeway=LEEWAY,
                iss={"essential": True, "value": keys.issuer},
                aud={"essential": True, "value": services.settings.teams_app_id},
                exp={"essential": True},
            ).validate(decoded.claims)
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise Unverified(f"the token is not valid: {exc}") from exc
        return dict(decoded.claims), keys.endorsements.get(str(decoded.header.get("kid")))


_verifiers: dict[str, Verifier] = {}


def verifier(url: str) -> Verifier:
    """The one verifier of an OpenID metadata URL in this process."""
    if url not in _verifiers:
        _verifiers[url] = Verifier(url)
    return _verifiers[url]


def service_url_claim(claims: dict[str, Any]) -> Any:
    """The token's ``serviceurl`` claim (as the Bot Framework SDKs spell it, in any case)."""
    return next((value for name, value in claims.items() if name.lower() == "serviceurl"), None)


# -- the shape of an activity --------------------------------------------------------------

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")]
Short = Annotated[str, msgspec.Meta(max_length=100, pattern=r"^[\x21-\x7e]*$")]
ConversationId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=320, pattern=r"^[\x21-\x7e]+$")
]
ServiceUrl = Annotated[str, msgspec.Meta(max_length=500, pattern=r"^https?://[\x21-\x7e]+$")]
Guid = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    ),
]
TenantId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]
ApprovalId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]
Digest = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")]
Reason = Annotated[str, msgspec.Meta(max_length=MAX_TEXT, pattern=r"^[^\x00]*$")]


class Malformed(Exception):
    """An activity that is not what the Bot Framework sends (answered 400)."""


class _Envelope(msgspec.Struct, rename="camel"):
    """What is read before the token is trusted: where the activity says it comes from."""

    service_url: str
    channel_id: str | None = None


class _Account(msgspec.Struct, rename="camel"):
    id: Id | None = None
    aad_object_id: Guid | None = None


class _Conversation(msgspec.Struct, rename="camel"):
    id: ConversationId
    conversation_type: Short | None = None
    tenant_id: TenantId | None = None


class _Tenant(msgspec.Struct):
    id: TenantId


class _ChannelData(msgspec.Struct):
    tenant: _Tenant | None = None


class _Data(msgspec.Struct, rename="camel"):
    approval_id: ApprovalId | None = None
    digest: Digest | None = None
    reason: Reason | None = None


class _Action(msgspec.Struct):
    verb: Short | None = None
    data: _Data = msgspec.field(default_factory=_Data)


class _Value(msgspec.Struct):
    action: _Action


class _Activity(msgspec.Struct, rename="camel"):
    type: Short
    service_url: ServiceUrl
    id: Id | None = None
    name: Short | None = None
    action: Short | None = None  # installationUpdate: add, remove, …
    from_: _Account | None = None
    conversation: _Conversation | None = None
    channel_data: _ChannelData | None = None


class _Invoke(msgspec.Struct):
    value: _Value


@dataclass(frozen=True)
class Execute:
    """Approve or Reject pressed on an approval's card (an ``Action.Execute``)."""

    activity_id: str
    user: str | None  # the clicker's AAD object id
    verb: str
    approval_id: str
    digest: str | None = None  # of the arguments the card showed
    reason: str | None = None


def parse(body: bytes) -> tuple[_Activity, Execute | None]:
    """The activity, and the card action it carries (an ``adaptiveCard/action`` invoke).

    Raises :class:`Malformed` for a body that is not an activity of the shape the Bot
    Framework sends.
    """
    try:
        activity = msgspec.json.decode(body, type=_Activity)
        if activity.type != "invoke" or activity.name != ACTION:
            return activity, None
        value = msgspec.json.decode(body, type=_Invoke).value
    except (msgspec.DecodeError, RecursionError) as exc:  # ValidationError is a DecodeError
        raise Malformed(f"activity: {exc}") from exc
    if activity.id is None:
        raise Malformed("activity: an invoke carries an id - at `$.id`")
    data = value.action.data
    if data.approval_id is None:
        raise Malformed("activity: the action names no approval - at `$.value.action.data`")
    user = activity.from_.aad_object_id if activity.from_ else None
    reason = data.reason.strip() if data.reason else None
    return activity, Execute(
        activity.id,
        user.lower() if user else None,
        value.action.verb or "",
        data.approval_id,
        data.digest,
        reason or None,
    )


def seen_in(activity: _Activity) -> channel.Learned | None:
    """The conversation an activity comes from, as the channel keeps it."""
    conversation = activity.conversation
    if conversation is None:
        return None
    tenant = activity.channel_data.tenant if activity.channel_data else None
    user = activity.from_.aad_object_id if activity.from_ else None
    personal = conversation.conversation_type == "personal"
    return channel.Learned(
        conversation=conversation.id,
        service_url=activity.service_url,
        kind=conversation.conversation_type,
        tenant_id=tenant.id if tenant is not None else conversation.tenant_id,
        user_ref=user.lower() if personal and user else None,
    )


# -- what is remembered --------------------------------------------------------------------


async def learn(services: Services, activity: _Activity) -> None:
    """Remember where the activity's conversation lives (written only when new or changed
    in this process); forget it when the bot was removed from it."""
    seen = seen_in(activity)
    if seen is None:
        return
    engine = services.engine
    known = cast(channel.Teams, services.notifier.channels[channel.NAME]).written
    if activity.type == "installationUpdate" and activity.action == "remove":
        known.pop(seen.conversation, None)
        await channel.forget(engine, services.log.writer(), seen.conversation)
        log.info("Teams conversation forgotten (the bot was removed): %s", seen.conversation)
        return
    before = known.get(seen.conversation)
    if before is not None and _covers(before, seen):
        return
    await channel.remember(engine, services.log.writer(), seen)
    if len(known) >= KNOWN_LIMIT:
        known.clear()
    known[seen.conversation] = seen
    if before is None or before.service_url != seen.service_url:
        log.info("Teams conversation learned: %s (%s)", seen.conversation, seen.kind or "unknown")


def _covers(before: channel.Learned, seen: channel.Learned) -> bool:
    """Whether what was written already holds everything ``seen`` says."""
    return (
        before.service_url == seen.service_url
        and seen.tenant_id in (None, before.tenant_id)
        and seen.user_ref in (None, before.user_ref)
    )


# -- the endpoint --------------------------------------------------------------------------


def _unauthorized(message: str) -> Response[Any]:
    return Response({"error": "unauthorized", "message": message[:500]}, status_code=401)


def _invalid(message: str) -> Response[Any]:
    return Response({"error": "invalid", "message": message[:500]}, status_code=400)


@post("/teams/messages", include_in_schema=False, status_code=200)
async def teams_messages(request: Request[Any, Any, Any]) -> Response[Any]:
    """Take a Bot Framework activity: 401 and nothing done unless its JWT checks out, 400
    when it is malformed; remember its conversation; answer an Approve or Reject invoke
    with the card as it is now, or with a message saying why nothing was decided."""
    services = request.app.state.services
    settings = services.settings
    if not settings.teams_app_id:
        return _unauthorized("APPROVALS_TEAMS_APP_ID is not set: no Teams activity is accepted")
    body = await request.body()
    try:
        claims, endorsed = await verifier(settings.teams_openid_url).claims(
            services, request.headers.get("authorization")
        )
    except Unverified as exc:
        log.warning("a Teams activity was refused: %s", exc)
        return _unauthorized(f"the Bot Framework token is not valid: {exc}")
    try:
        envelope = msgspec.json.decode(body, type=_Envelope)
    except (msgspec.DecodeError, RecursionError):
        return _invalid("the body is not an activity: a JSON object with a string serviceUrl")
    if service_url_claim(claims) != envelope.service_url:
        log.warning("a Teams activity was refused: its serviceUrl is not the token's")
        return _unauthorized("the activity's serviceUrl is not the one the token was issued for")
    if endorsed is not None and envelope.channel_id not in endorsed:
        log.warning("a Teams activity was refused: its key is not endorsed for its channel")
        return _unauthorized(
            f"the token's signing key is not endorsed for channel {envelope.channel_id!r}"
        )
    try:
        activity, execute = parse(body)
    except Malformed as exc:
        return _invalid(str(exc))
    await learn(services, activity)
    if execute is None:
        return Response(b"", status_code=200)
    return Response(await _executed(services, execute), status_code=200)


def _message(text: str) -> dict[str, Any]:
    """An invoke answer that shows ``text`` to the clicker and leaves the card as it is."""
    return {"statusCode": 200, "type": MESSAGE, "value": text[:ANSWER_LIMIT]}


async def _card(services: Services, approval_id: str) -> dict[str, Any]:
    """An invoke answer that replaces the card by the approval as it is now."""
    approval = await shown(services.engine, approval_id)
    if not isinstance(approval, dict):
        return _message(f"Approval {approval_id} does not exist.")
    return {
        "statusCode": 200,
        "type": channel.CARD,
        "value": channel.card(approval, services.settings),
    }


async def _executed(services: Services, execute: Execute) -> dict[str, Any]:
    material = f"teams:{execute.activity_id}".encode()
    if not await interactions.first_seen(services, material, RECEIPT_SECONDS):
        log.info("a replayed Teams invoke was answered and ignored")
        return await _card(services, execute.approval_id)
    if execute.user is None:
        return _message(interactions.not_linked("teams"))
    reviewer = await interactions.reviewer_for(services.engine, "teams", execute.user)
    if reviewer is None:
        return _message(interactions.not_linked("teams", execute.user))
    if execute.verb == "approve":
        said = await interactions.decide(
            services, execute.approval_id, reviewer, "approve", digest=execute.digest
        )
    elif execute.verb == "reject":
        said = await interactions.decide(
            services, execute.approval_id, reviewer, "reject", comment=execute.reason
        )
    else:
        said = f"Nothing was decided: this card has no action {execute.verb!r}."
    if said is not None:
        return _message(said)
    return await _card(services, execute.approval_id)
