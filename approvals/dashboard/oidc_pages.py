"""The sign-in pages for an OpenID Connect provider: start the flow, finish it at the callback.

Between the two, the browser keeps the flow (state, nonce, PKCE verifier, where to go next)
in a signed cookie that lives ten minutes, is sent only to ``/login/oidc`` and is removed by
the callback whatever its outcome; the state is also remembered as spent, so a callback URL
replayed is refused. Every failure is a page saying what to do, never a stack trace.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from litestar import Request, Response, get
from litestar.datastructures import Cookie
from litestar.response import Redirect

from approvals.auth import audit, oidc
from approvals.auth import sessions as session
from approvals.auth.oidc import Flow, SignInError
from approvals.auth.users import UserError, UsernameTaken, provider_user
from approvals.dashboard.pages import safe_next, start_session
from approvals.events.log import EventLog
from approvals.views.render import page

log = logging.getLogger("approvals.signin")
FLOW_COOKIE = "approvals_oidc_flow"
FLOW_PATH = "/login/oidc"
FLOW_SECONDS = 600  # time to sign in at the provider
_spent: dict[str, float] = {}  # state -> when it may be forgotten (its cookie has expired)


async def failed(request: Request[Any, Any, Any], user: str | None, reason: str) -> None:
    """Record a failed provider sign-in as ``audit.user.sign_in_failed`` (and a warning).

    ``reason`` says what failed, never with a secret (no code, token or state).
    """
    address = request.client.host if request.client else "?"
    log.warning("OIDC sign-in failed for %r from %s: %s", user, address, reason)
    async with request.app.state.services.log.transaction() as tx:
        await audit.record(
            tx,
            "user.sign_in_failed",
            "anonymous",
            f"Failed sign-in for {user!r}" if user else "Failed sign-in",
            user=user,
            address=address,
            method="oidc",
            reason=reason,
        )


async def _signer(request: Request[Any, Any, Any]) -> URLSafeTimedSerializer:
    return await session.serializer(request, "approvals-oidc-flow")


def _flow_cookie(request: Request[Any, Any, Any], value: str, max_age: int) -> Cookie:
    return Cookie(
        key=FLOW_COOKIE,
        value=value,
        httponly=True,
        samesite="lax",  # sent on the provider's top-level redirect back to us
        secure=request.url.scheme == "https",
        path=FLOW_PATH,
        max_age=max_age,
    )


async def _read_flow(request: Request[Any, Any, Any]) -> Flow:
    """The flow this browser started, or a page saying to start again."""
    raw = request.cookies.get(FLOW_COOKIE)
    try:
        if not raw:
            raise BadSignature("no cookie")
        data = (await _signer(request)).loads(raw, max_age=FLOW_SECONDS)
        return Flow(state=data["s"], nonce=data["n"], verifier=data["v"], next=data["x"])
    except (BadSignature, KeyError, TypeError) as exc:
        raise SignInError(
            400,
            "This sign-in has already been used or has expired. Please start again.",
            f"no valid sign-in cookie ({type(exc).__name__})",
        ) from exc


def _spend(flow: Flow, presented: str | None) -> None:
    """Use the flow's state once: refuse a callback for another state or one already seen."""
    now = time.monotonic()
    for state in [s for s, until in _spent.items() if until < now]:
        del _spent[state]
    if not presented or presented != flow.state:
        raise SignInError(
            400,
            "This sign-in answer does not belong to the sign-in this browser started. "
            "Please start again.",
            "state does not match the sign-in cookie",
        )
    if flow.state in _spent:
        raise SignInError(
            400,
            "This sign-in has already been used. Please start again.",
            "state replayed",
        )
    _spent[flow.state] = now + FLOW_SECONDS


def _failed(exc: SignInError) -> Response[str]:
    title = "You cannot sign in here" if exc.status == 403 else "Sign-in failed"
    return page("signin_failed.html", exc.status, title=title, message=exc.message, user=None)


def _not_configured() -> Response[str]:
    return _failed(SignInError(404, "Signing in with an identity provider is not set up here.", ""))


@get(FLOW_PATH, include_in_schema=False, opt={"query": ("next",)})
async def oidc_start(request: Request[Any, Any, Any]) -> Response[Any]:
    """Send the browser to the identity provider, remembering the flow in a signed cookie."""
    settings = request.app.state.services.settings
    if not settings.oidc:
        return _not_configured()
    flow = Flow.new(safe_next(request.query_params.get("next")))
    try:
        url = await oidc.authorization_url(settings, flow)
    except SignInError as exc:
        log.warning("cannot start an OIDC sign-in: %s", exc.reason)
        return _failed(exc)
    value = (await _signer(request)).dumps(
        {"s": flow.state, "n": flow.nonce, "v": flow.verifier, "x": flow.next}
    )
    answer: Response[Any] = Redirect(url, status_code=303)
    answer.set_cookie(_flow_cookie(request, str(value), FLOW_SECONDS))
    return answer


@get(f"{FLOW_PATH}/callback", include_in_schema=False, opt={"any_query": True})
async def oidc_callback(request: Request[Any, Any, Any]) -> Response[Any]:
    """Finish the sign-in: check the provider's answer, find or create the reviewer, sign in."""
    services = request.app.state.services
    settings = services.settings
    if not settings.oidc:
        return _not_configured()
    params = {key: str(value) for key, value in request.query_params.items()}
    who: oidc.Identity | None = None
    try:
        flow = await _read_flow(request)
        _spend(flow, params.get("state"))
        who = await oidc.finish(settings, flow, params)
        if not oidc.allowed(settings, who):
            raise SignInError(
                403,
                "Your account is not in a group that may use Approvals. "
                "Ask your administrator for access.",
                f"groups {list(who.groups)} not in APPROVALS_OIDC_ALLOWED_GROUPS",
            )
        reviewer = await _reviewer(services.log, who)
    except SignInError as exc:
        await failed(request, who.username if who else None, exc.reason)
        answer = _failed(exc)
    except Exception:  # never a stack trace for the person signing in: it goes to the log
        log.exception("OIDC sign-in failed unexpectedly")
        await failed(request, who.username if who else None, "error")
        answer = _failed(
            SignInError(500, "Signing in failed; the error is in the service's log.", "error")
        )
    else:
        answer = await start_session(request, reviewer, flow.next, "oidc")
    answer.set_cookie(_flow_cookie(request, "", 0))  # the flow is over either way
    return answer


async def _reviewer(log: EventLog, who: oidc.Identity) -> str:
    """The username ``who`` signs in as; created (and audited) on first sign-in, refused
    when disabled."""
    try:
        async with log.transaction() as tx:
            user = await tx.conn.run_sync(
                lambda sync: provider_user(sync, who.subject, who.username, who.email)
            )
            if user.created:
                await audit.record(
                    tx,
                    "user.created",
                    f"user:{user.username}",
                    f"Reviewer {user.username!r} created at first sign-in",
                    user=user.username,
                    method="oidc",
                )
    except UsernameTaken as exc:
        raise SignInError(
            403,
            f"A reviewer named {who.username} already exists here and is not linked to your "
            "identity provider account, so Approvals will not sign you in as them. "
            "Ask your administrator.",
            str(exc),
        ) from exc
    except UserError as exc:
        raise SignInError(
            403,
            f"Your identity provider gave the username {who.username!r}, which Approvals "
            "cannot use. Ask your administrator.",
            str(exc),
        ) from exc
    if user.disabled:
        raise SignInError(
            403,
            "Your reviewer account is disabled. Ask your administrator.",
            f"{user.username} is disabled",
        )
    return user.username
