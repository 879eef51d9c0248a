"""Signing in with an OpenID Connect provider: the code flow with PKCE, on authlib and joserfc.

The relying party's side only: discovery, the authorization URL, the code exchange and the
ID token's checks (signature, issuer, audience, nonce, expiry), then the reviewer's identity
from its claims. The pages that drive it are in :mod:`approvals.dashboard.oidc_pages`.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import ClaimError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from approvals.core.config import Settings

DISCOVERY_TTL = 3600.0  # seconds a provider's discovery document and keys are reused
TIMEOUT = 10.0
LEEWAY = 60  # seconds of clock skew allowed on exp, iat and nbf
# Public-key signatures only: "none" and HS* (keyed with the client secret) are refused.
SIGNING = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")

_discovered: dict[str, tuple[float, dict[str, Any], KeySet | None]] = {}


class SignInError(Exception):
    """A sign-in that cannot go on; ``message`` is shown to the person, ``reason`` is logged."""

    def __init__(self, status: int, message: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.message = message
        self.reason = reason


@dataclass(frozen=True)
class Flow:
    """What the browser keeps (signed) between the start of a sign-in and its callback."""

    state: str
    nonce: str
    verifier: str
    next: str

    @classmethod
    def new(cls, next_path: str) -> Flow:
        """A flow with fresh random state, nonce and PKCE code verifier."""
        return cls(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            verifier=secrets.token_urlsafe(64),  # 86 characters, within RFC 7636's 43-128
            next=next_path,
        )


@dataclass(frozen=True)
class Identity:
    """Who the provider says signed in."""

    subject: str
    username: str
    email: str | None
    groups: tuple[str, ...]


def redirect_uri(settings: Settings) -> str:
    """The callback URL to register with the provider."""
    return f"{settings.public_url}/login/oidc/callback"


def provider_name(settings: Settings) -> str:
    """The name on the sign-in button: the configured one, else the issuer's host."""
    if settings.oidc_provider_name:
        return settings.oidc_provider_name
    return httpx.URL(settings.oidc_issuer).host or "your identity provider"


def _unreachable(what: str, exc: Exception) -> SignInError:
    return SignInError(
        502,
        "The identity provider could not be reached or gave an answer Approvals cannot use. "
        "Try again in a moment; if it keeps failing, tell your administrator.",
        f"{what}: {type(exc).__name__}: {exc}",
    )


async def discover(settings: Settings) -> dict[str, Any]:
    """The provider's discovery document (cached), refused unless it names our issuer."""
    cached = _discovered.get(settings.oidc_issuer)
    if cached and time.monotonic() - cached[0] < DISCOVERY_TTL:
        return cached[1]
    url = settings.oidc_issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            answer = await http.get(url, headers={"Accept": "application/json"})
            answer.raise_for_status()
            metadata = answer.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise _unreachable(f"discovery at {url}", exc) from exc
    if not isinstance(metadata, dict):
        raise _unreachable(f"discovery at {url}", ValueError("not a JSON object"))
    if metadata.get("issuer") != settings.oidc_issuer:
        raise SignInError(
            502,
            "The identity provider does not identify itself as the issuer Approvals is set up "
            "for, so the sign-in was stopped. Tell your administrator.",
            f"discovery names issuer {metadata.get('issuer')!r}, "
            f"APPROVALS_OIDC_ISSUER is {settings.oidc_issuer!r}",
        )
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(metadata.get(name), str):
            raise _unreachable(f"discovery at {url}", ValueError(f"no {name}"))
    _discovered[settings.oidc_issuer] = (time.monotonic(), metadata, None)
    return metadata


async def _keys(settings: Settings, metadata: dict[str, Any], refresh: bool) -> KeySet:
    """The provider's signing keys (cached with the discovery document)."""
    cached = _discovered.get(settings.oidc_issuer)
    if cached and cached[2] is not None and not refresh:
        return cached[2]
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            answer = await http.get(metadata["jwks_uri"], headers={"Accept": "application/json"})
            answer.raise_for_status()
            keys = KeySet.import_key_set(answer.json())
    except (httpx.HTTPError, ValueError, JoseError) as exc:
        raise _unreachable(f"keys at {metadata['jwks_uri']}", exc) from exc
    _discovered[settings.oidc_issuer] = (
        cached[0] if cached else time.monotonic(),
        metadata,
        keys,
    )
    return keys


def _client(settings: Settings, metadata: dict[str, Any]) -> AsyncOAuth2Client:
    supported = metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    if not settings.oidc_client_secret:
        method = "none"
    elif "client_secret_basic" not in supported and "client_secret_post" in supported:
        method = "client_secret_post"
    else:
        method = "client_secret_basic"
    return AsyncOAuth2Client(
        client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret or None,
        token_endpoint_auth_method=method,
        scope=settings.oidc_scopes,
        redirect_uri=redirect_uri(settings),
        code_challenge_method="S256",
        timeout=TIMEOUT,
    )


async def authorization_url(settings: Settings, flow: Flow) -> str:
    """Where to send the browser to sign in (the provider's authorize endpoint)."""
    metadata = await discover(settings)
    async with _client(settings, metadata) as client:
        url, _ = client.create_authorization_url(
            metadata["authorization_endpoint"],
            state=flow.state,
            code_verifier=flow.verifier,
            nonce=flow.nonce,
        )
    return str(url)


async def finish(settings: Settings, flow: Flow, params: dict[str, str]) -> Identity:
    """Exchange the callback's code and check the ID token; the identity it vouches for."""
    if params.get("error"):
        raise SignInError(
            403 if params["error"] == "access_denied" else 502,
            "The identity provider did not sign you in"
            + (f": {params['error_description']}" if params.get("error_description") else "."),
            f"provider error {params['error']!r}: {params.get('error_description', '')!r}",
        )
    # RFC 9207: an authorization response naming another issuer is a mix-up; stop there.
    if "iss" in params and params["iss"] != settings.oidc_issuer:
        raise _wrong_issuer(settings, f"the callback's iss is {params['iss']!r}")
    code = params.get("code")
    if not code:
        raise SignInError(400, "The sign-in answer carried no code.", "callback without a code")
    metadata = await discover(settings)
    try:
        async with _client(settings, metadata) as client:
            token = await client.fetch_token(
                metadata["token_endpoint"],
                grant_type="authorization_code",
                code=code,
                code_verifier=flow.verifier,
            )
    except OAuthError as exc:
        raise SignInError(
            502,
            "The identity provider refused to complete the sign-in. Please start again.",
            f"token endpoint refused the code: {exc.error} {exc.description or ''}".strip(),
        ) from exc
    except (httpx.HTTPError, ValueError) as exc:
        raise _unreachable(f"token endpoint {metadata['token_endpoint']}", exc) from exc
    if not isinstance(token.get("id_token"), str):
        raise _unreachable("token endpoint", ValueError("the answer has no id_token"))
    claims = await _checked_claims(settings, metadata, flow, token)
    return identity(settings, claims)


def _wrong_issuer(settings: Settings, detail: str) -> SignInError:
    return SignInError(
        401,
        "The sign-in came from an issuer Approvals is not set up for, so it was refused.",
        f"wrong issuer: {detail}; APPROVALS_OIDC_ISSUER is {settings.oidc_issuer!r}",
    )


async def _checked_claims(
    settings: Settings, metadata: dict[str, Any], flow: Flow, token: dict[str, Any]
) -> dict[str, Any]:
    """The ID token's claims once its signature, issuer, audience, nonce and times check out."""
    offered = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
    algorithms = [alg for alg in offered if alg in SIGNING] or ["RS256"]
    try:
        try:
            decoded = jwt.decode(
                token["id_token"], await _keys(settings, metadata, False), algorithms
            )
        except InvalidKeyIdError:  # the provider rotated its keys since we fetched them
            decoded = jwt.decode(
                token["id_token"], await _keys(settings, metadata, True), algorithms
            )
        claims = CodeIDToken(
            decoded.claims,
            decoded.header,
            {
                "iss": {"essential": True, "value": settings.oidc_issuer},
                "aud": {"essential": True, "value": settings.oidc_client_id},
                "sub": {"essential": True},
                "nonce": {"essential": True, "value": flow.nonce},
            },
            {
                "nonce": flow.nonce,
                "client_id": settings.oidc_client_id,
                "access_token": token.get("access_token"),
            },
        )
        claims.validate(leeway=LEEWAY)
    except ClaimError as exc:
        if exc.claim == "iss":
            raise _wrong_issuer(
                settings, f"the ID token's iss is {decoded.claims.get('iss')!r}"
            ) from exc
        raise SignInError(
            401,
            "The identity provider's answer did not pass Approvals' checks, so the sign-in "
            "was refused. Please start again.",
            f"ID token claim {exc.claim!r}: {exc.description}",
        ) from exc
    except JoseError as exc:
        raise SignInError(
            401,
            "The identity provider's answer did not pass Approvals' checks, so the sign-in "
            "was refused. Please start again.",
            f"ID token: {exc.error}: {exc.description}",
        ) from exc
    return dict(claims)


def identity(settings: Settings, claims: dict[str, Any]) -> Identity:
    """The reviewer an ID token names: subject, username (from the configured claim), groups."""
    username = claims.get(settings.oidc_username_claim)
    email = claims.get("email") if isinstance(claims.get("email"), str) else None
    # An address the provider says it has not verified does not name anybody.
    verified_email = email if claims.get("email_verified") is not False else None
    if not isinstance(username, str) or not username.strip():
        username = verified_email
    if not username:
        raise SignInError(
            403,
            f"Your identity provider did not tell Approvals a username "
            f"({settings.oidc_username_claim} or a verified email). Tell your administrator.",
            f"ID token has neither {settings.oidc_username_claim!r} nor a verified email",
        )
    raw = claims.get(settings.oidc_groups_claim)
    if isinstance(raw, str):
        groups: tuple[str, ...] = (raw,)
    else:
        groups = tuple(g for g in raw if isinstance(g, str)) if isinstance(raw, list) else ()
    return Identity(str(claims["sub"]), username.strip(), verified_email, groups)


def allowed(settings: Settings, who: Identity) -> bool:
    """Tell whether the reviewer is in one of the allowed groups (or no groups are required)."""
    return not settings.oidc_allowed_groups or bool(
        set(settings.oidc_allowed_groups) & set(who.groups)
    )
