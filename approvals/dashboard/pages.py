"""Dashboard pages and form posts (session and CSRF protected)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlencode

from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.params import FromPath
from litestar.response import Redirect

from approvals.auth import audit, oidc
from approvals.auth import sessions as session
from approvals.auth.users import (
    UserError,
    active,
    check_password,
    list_users,
    reviewer,
    sign_out_everywhere,
    update_user,
)
from approvals.choices import grant_choice
from approvals.core.clock import now_iso
from approvals.core.errors import ApiError
from approvals.dashboard import admit, queries
from approvals.dashboard.admit import change
from approvals.delivery.channels import notices, push
from approvals.delivery.deliveries import requeue
from approvals.delivery.worker import endpoint_status
from approvals.digest import approved_arguments
from approvals.events import redaction
from approvals.events.filters import FIELDS, EventFilter
from approvals.events.log import LogTransaction
from approvals.mcp import elicitation
from approvals.queue import grants, policy, service
from approvals.views import desk, rows
from approvals.views.render import page, render

HISTORY_FILTERS = ("status", "reviewer", "agent", "since", "until")

limiter = session.LoginLimiter()
HISTORY_STATUSES = ("approved", "rejected", "answered", "expired", "withdrawn")
FORM_ONLY = "This request asks for a form: answer it on its page."


def _cookie(value: str, request: Request[Any, Any, Any], max_age: int | None) -> Cookie:
    return Cookie(
        key=session.COOKIE,
        value=value,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
        max_age=max_age,
    )


async def signed_in(request: Request[Any, Any, Any]) -> session.Session | None:
    """The session of a signed-in reviewer, or None."""
    current = await session.read(request)
    if current is None or not current.user:
        return None
    # A disabled reviewer's session ends at once.
    engine = request.app.state.services.engine
    return current if await active(engine, current.user, current.generation) else None


def to_login(request: Request[Any, Any, Any]) -> Redirect:
    """Send the browser to the sign-in page, coming back here afterwards."""
    return Redirect(f"/login?next={quote(request.url.path)}", status_code=303)


async def _form(request: Request[Any, Any, Any]) -> dict[str, str]:
    data = await request.form()
    return {key: str(value) for key, value in data.items()}


async def _csrf(request: Request[Any, Any, Any], form: dict[str, str]) -> session.Session:
    current = await session.read(request)
    session.check_csrf(current, request.headers.get(session.CSRF_HEADER) or form.get("csrf_token"))
    assert current is not None
    return current


@get("/login", include_in_schema=False, opt={"query": ("next",)})
async def login_page(request: Request[Any, Any, Any]) -> Response[str]:
    """The sign-in form."""
    current = await session.read(request) or session.fresh()
    answer = _login_form(request, current.csrf, None)
    answer.set_cookie(_cookie(await session.encode(request, current), request, None))
    return answer


def _login_form(
    request: Request[Any, Any, Any], csrf: str, error: str | None, status: int = 200
) -> Response[str]:
    """The sign-in page: the provider's button and/or the password form, as configured."""
    settings = request.app.state.services.settings
    return page(
        "login.html",
        status,
        csrf=csrf,
        next=_next(request),
        error=error,
        user=None,
        provider=oidc.provider_name(settings) if settings.oidc else None,
        password_login=settings.password_login,
    )


def safe_next(target: str | None) -> str:
    """A path on this site to go to after signing in ("/" for anything else)."""
    target = target or "/"
    return target if target.startswith("/") and not target.startswith("//") else "/"


def _next(request: Request[Any, Any, Any]) -> str:
    return safe_next(request.query_params.get("next"))


@post("/login", include_in_schema=False, status_code=200, opt={"query": ("next",)})
async def login(request: Request[Any, Any, Any]) -> Response[Any]:
    """Check the password; on success start a session with a new CSRF token."""
    form = await _form(request)
    current = await session.read(request)
    if not request.app.state.services.settings.password_login:
        return _login_form(
            request,
            current.csrf if current else "",
            "Signing in with a password is turned off here.",
            403,
        )
    try:
        session.check_csrf(current, form.get("csrf_token"))
    except ApiError:
        current = session.fresh()
        answer = _login_form(
            request, current.csrf, "Your sign-in form expired. Please try again.", 403
        )
        answer.set_cookie(_cookie(await session.encode(request, current), request, None))
        return answer
    username = form.get("username", "").strip()
    address = request.client.host if request.client else "?"
    services = request.app.state.services
    async with services.engine.connect() as conn:
        wait = await limiter.blocked(conn, username, address)
    if wait:
        return _login_form(
            request,
            current.csrf if current else "",
            f"Too many failed sign-ins. Try again in {int(wait)} seconds.",
            429,
        )
    if not await check_password(services.engine, username, form.get("password", "")):
        known = await reviewer(services.engine, username) is not None
        async with services.log.transaction() as tx:
            await limiter.failed(tx.conn, username, address)
            # The name typed is recorded only when it is a reviewer's: never a mistyped password.
            await audit.record(
                tx,
                "user.sign_in_failed",
                "anonymous",
                f"Failed sign-in for {username!r}" if known else "Failed sign-in (unknown user)",
                user=username if known else None,
                address=address,
                method="password",
            )
        return _login_form(
            request, current.csrf if current else "", "Wrong username or password.", 401
        )
    return await start_session(request, username, form.get("next") or "/", "password")


async def start_session(
    request: Request[Any, Any, Any], username: str, target: str, method: str
) -> Response[Any]:
    """Sign ``username`` in: a new session cookie (nothing kept from before), audited."""
    services = request.app.state.services
    address = request.client.host if request.client else "?"
    found = await reviewer(services.engine, username)
    generation = found["session_generation"] if found else 0
    async with services.log.transaction() as tx:
        await limiter.succeeded(tx.conn, username, address)
        await audit.record(
            tx,
            "user.signed_in",
            f"user:{username}",
            f"{username} signed in",
            user=username,
            address=address,
            method=method,
        )
    redirect: Response[Any] = Redirect(safe_next(target), status_code=303)
    started = session.fresh(username, generation)
    redirect.set_cookie(_cookie(await session.encode(request, started), request, session.MAX_AGE))
    return redirect


@post("/logout", include_in_schema=False, status_code=303)
async def logout(request: Request[Any, Any, Any]) -> Response[Any]:
    """End the session: the reviewer's sessions end everywhere, so a copy of the old cookie
    decides nothing."""
    current = await _csrf(request, await _form(request))
    if current.user:
        user = current.user
        async with request.app.state.services.engine.begin() as conn:
            await conn.run_sync(lambda sync: sign_out_everywhere(sync, user))
    answer = Redirect("/login", status_code=303)
    answer.set_cookie(_cookie("", request, 0))
    return answer


@get("/", include_in_schema=False, opt={"query": queries.INBOX_FILTERS})
async def inbox(request: Request[Any, Any, Any]) -> Response[Any]:
    """Pending approvals, updated live."""
    current = await signed_in(request)
    if current is None:
        return to_login(request)
    engine = request.app.state.services.engine
    since = request.app.state.services.broker.head  # the live stream picks up after this
    filters = queries.inbox_filters(request.query_params)
    pending = await queries.pending(engine, filters)
    return page(
        "inbox.html",
        user=current.user,
        csrf=current.csrf,
        since=since,
        approvals=rows.approvals(pending),
        filters=filters,
        query=urlencode({k: v for k, v in filters.items() if v}),
        facets=await queries.facets(engine),
        nav="inbox",
    )


@get("/approvals/{approval_id:str}", include_in_schema=False)
async def approval_page(
    request: Request[Any, Any, Any], approval_id: FromPath[str]
) -> Response[Any]:
    """One request: what it asks, the run's context, and the decision form."""
    current = await signed_in(request)
    if current is None:
        return to_login(request)
    engine = request.app.state.services.engine
    since = request.app.state.services.broker.head  # the live stream picks up after this
    try:
        approval = await service.fetch(engine, approval_id, full=True)
    except ApiError:
        return page(
            "missing.html",
            404,
            user=current.user,
            csrf=current.csrf,
            nav="",
            what=f"approval {approval_id}",
        )
    items = await queries.timeline(engine, approval)
    rule = await queries.policy(engine, approval["policyId"])
    view = rows.approval(approval)
    return page(
        "approval.html",
        user=current.user,
        csrf=current.csrf,
        since=since,
        a=view,
        timeline=items,
        notices=await queries.notifications(engine, approval_id),
        ladder=await notices.ladder_of(engine, approval_id),
        reviewer_names=await _reviewer_names(engine),
        why=desk.why(view, rule),
        deliveries=await queries.deliveries(engine, approval),
        nav="inbox",
    )


async def _reviewer_names(engine: Any) -> list[str]:
    """Active reviewers, for the assign box's suggestions."""
    async with engine.connect() as conn:
        everyone = await conn.run_sync(list_users)
    return [u["username"] for u in everyone if not u["disabled"]]


@get("/approvals/{approval_id:str}/panel", include_in_schema=False, opt={"query": ("view",)})
async def panel(request: Request[Any, Any, Any], approval_id: FromPath[str]) -> Response[Any]:
    """The decision controls again (after a cancelled confirmation or reason step)."""
    current = await signed_in(request)
    if current is None:
        raise ApiError(401, "unauthorized", "sign in first")
    approval = await service.fetch(request.app.state.services.engine, approval_id, full=True)
    html = _panel(approval, current, request.query_params.get("view") == "inbox")
    return Response(html, media_type="text/html")


def _panel(approval: dict[str, Any], current: session.Session, inbox: bool, **extra: Any) -> str:
    context = {"a": rows.approval(approval), "csrf": current.csrf, "user": current.user, **extra}
    if not inbox:
        return render("_decision.html", **context)
    if approval["status"] == "pending" and not extra.get("error"):
        return render("_actions.html", **context)
    return render("_outcome.html", **context)


def _edited(form: dict[str, str], approval: dict[str, Any]) -> tuple[Any, desk.Edit | None]:
    """The arguments to approve with (None: unchanged) and the form's edit when it has errors.
    The form shows the arguments as they stand (earlier votes' edits laid over them), as
    people see them: a value the policy redacts comes back as its mark, which the
    decision keeps as the real value."""
    shown = redaction.redact(
        approved_arguments(approval["arguments"], approval["editedArguments"]),
        approval["redact"],
    )
    if form.get("arguments", "").strip():
        try:
            arguments = json.loads(form["arguments"])
        except ValueError as exc:
            raise ApiError(422, "invalid", "The edited arguments are not valid JSON.") from exc
        if not isinstance(arguments, dict):
            raise ApiError(422, "invalid", "The edited arguments must be a JSON object.")
    elif form.get("edit") and isinstance(shown, dict):
        edit = desk.read_form(form, shown)
        if edit.errors:
            return None, edit
        arguments = edit.arguments
    else:
        return None, None
    return (None if arguments == shown else arguments), None


def _elicited(
    form: dict[str, str], approval: dict[str, Any]
) -> tuple[str | None, dict[str, str]] | None:
    """For a request that asks for a form (an MCP elicitation's ``requestedSchema``): the
    answer, the JSON object of the fields in their schema types, or the errors by field.
    From the form's fields, or from a typed answer (the inbox's one line). None otherwise."""
    detail = (approval.get("request") or {}).get("detail")
    if not isinstance(detail, dict) or "requestedSchema" not in detail:
        return None
    try:
        fields = elicitation.fields(detail["requestedSchema"])
    except elicitation.Unsupported as exc:
        return None, {"": f"This form cannot be answered here: {exc}."}
    if form.get("elicit"):
        content, errors = elicitation.from_form(fields, form)
    else:
        content, errors = elicitation.from_answer(fields, form.get("answer", ""))
    return (None if errors else elicitation.answer_text(content)), errors


def _grant(raw: str) -> grants.GrantIn | None:
    """The decision form's standing grant, or None for none."""
    try:
        choice = grant_choice(raw)
    except ValueError as exc:
        raise ApiError(422, "invalid", "Choose a standing grant from the list, or none.") from exc
    return None if choice is None else grants.GrantIn(**choice)


@change("/approvals/{approval_id:str}/decide", status_code=200)
async def decide(request: Request[Any, Any, Any], approval_id: FromPath[str]) -> Response[Any]:
    """Record a reviewer's decision, or ask for the reason or confirmation it still needs."""
    form = await _form(request)
    current = admit.current(request)
    assert current.user is not None
    services = request.app.state.services
    inbox = form.get("view") == "inbox"
    approval = await service.fetch(services.engine, approval_id, full=True)
    decision = form.get("decision", "")
    comment = form.get("comment", "").strip() or None
    step = None
    arguments = None
    extra: dict[str, Any] = {}
    try:
        if decision not in ("approve", "reject", "answer"):
            raise ApiError(422, "invalid", "Choose approve, reject or answer.")
        if decision == "approve":
            arguments, failed = _edited(form, approval)
            if failed is not None:
                extra.update(draft=failed.draft, errors=failed.errors, comment=comment)
                raise ApiError(
                    422, "invalid", "Fix the arguments marked below; your edits are kept."
                )
        answer_text = form.get("answer", "").strip() or None
        elicited = _elicited(form, approval) if decision == "answer" else None
        if elicited is not None:
            answer_text, wrong = elicited
            if wrong:
                extra.update(elicit_draft=form, elicit_errors=wrong)
                fix = "Fix the answers marked below; what you typed is kept."
                raise ApiError(422, "invalid", fix if form.get("elicit") else FORM_ONLY)
        if decision == "answer" and not answer_text:
            raise ApiError(422, "invalid", "Write the answer to send back to the agent.")
        if approval["status"] == "pending" and decision in approval["allowedDecisions"]:
            if comment is None and policy.needs_reason(
                decision,
                require_reason=approval["requireReason"],
                require_reason_on_approve=approval["requireReasonOnApprove"],
            ):
                step = "reason"
            elif (
                decision == "approve"
                and not form.get("confirmed")
                and (approval["confirm"] or arguments is not None)
            ):
                step = "confirm"
        if step is None:
            values = {
                "decision": decision,
                "comment": comment,
                "answer": answer_text if decision == "answer" else None,
                "arguments": arguments,
                # What the page showed: a change since then is refused as stale.
                "arguments_digest": form.get("arguments_digest") or None,
                "grant": _grant(form.get("grant", "")) if decision == "approve" else None,
            }
            await service.decide(services.log, approval_id, current.user, values)
    except ApiError as exc:
        if exc.status == 404:
            raise
        extra.update(error=desk.STALE if exc.code == "stale" else exc.message)
        status = exc.status
    else:
        status = 200
    if "hx-request" not in request.headers:
        return Redirect(f"/approvals/{approval_id}", status_code=303)
    if step is not None:
        html = render(
            "_step.html",
            a=rows.approval(approval),
            csrf=current.csrf,
            view="inbox" if inbox else "page",
            step=step,
            decision=decision,
            grant=form.get("grant", ""),
            comment=comment,
            arguments=arguments,
            changes=desk.diff(approval["arguments"], arguments) if arguments is not None else [],
        )
        return Response(html, media_type="text/html")
    approval = await service.fetch(services.engine, approval_id, full=True)
    return Response(
        _panel(approval, current, inbox, **extra), status_code=status, media_type="text/html"
    )


@get("/history", include_in_schema=False, opt={"query": HISTORY_FILTERS})
async def history_page(request: Request[Any, Any, Any]) -> Response[Any]:
    """Resolved approvals with who decided and when."""
    current = await signed_in(request)
    if current is None:
        return to_login(request)
    filters = {k: request.query_params.get(k, "").strip() for k in HISTORY_FILTERS}
    if filters["status"] not in ("", *HISTORY_STATUSES):
        filters["status"] = ""
    resolved = await queries.history(request.app.state.services.engine, filters)
    return page(
        "history.html",
        user=current.user,
        csrf=current.csrf,
        approvals=rows.approvals(resolved),
        filters=filters,
        statuses=HISTORY_STATUSES,
        nav="history",
    )


@get("/events", include_in_schema=False, opt={"query": tuple(FIELDS)})
async def events_page(request: Request[Any, Any, Any]) -> Response[Any]:
    """The live event log, filtered like the API."""
    current = await signed_in(request)
    if current is None:
        return to_login(request)
    params = {name: request.query_params.get(name, "") for name in FIELDS}
    where = EventFilter.from_params(params)
    services = request.app.state.services
    since = services.broker.head
    events = await services.log.tail(100, upto=since, where=where)
    query = "&".join(f"{k}={quote(v)}" for k, v in params.items() if v)
    return page(
        "events.html",
        user=current.user,
        csrf=current.csrf,
        since=since,
        events=rows.events(events[::-1]),
        filters=params,
        query=query,
        nav="events",
    )


@get("/audit", include_in_schema=False, opt={"query": ("type",)})
async def audit_page(request: Request[Any, Any, Any]) -> Response[Any]:
    """The audit trail (admins only): key, policy, webhook, source and reviewer changes."""
    current = await signed_in(request)
    if current is None:
        return to_login(request)
    services = request.app.state.services
    found = await reviewer(services.engine, current.user or "")
    if not found or not found["is_admin"]:
        return page(
            "forbidden.html",
            403,
            user=current.user,
            csrf=current.csrf,
            what="the audit trail",
            how="an admin can grant it with: approvals users update NAME --admin",
        )
    wanted = request.query_params.get("type", "").strip()
    params = {"source": audit.SOURCE}
    if wanted:
        params["type"] = wanted if wanted.startswith(audit.PREFIX) else audit.PREFIX + wanted
    events = await services.log.tail(
        200, upto=services.broker.head, where=EventFilter.from_params(dict(params))
    )
    return page(
        "audit.html",
        user=current.user,
        csrf=current.csrf,
        events=rows.events(events[::-1]),
        wanted=wanted,
        nav="audit",
    )


@get("/webhooks", include_in_schema=False)
async def webhooks_page(request: Request[Any, Any, Any]) -> Response[Any]:
    """Webhook endpoints, their health and their deliveries' attempts."""
    current = await signed_in(request)
    if current is None:
        return to_login(request)
    services = request.app.state.services
    endpoints = await queries.webhooks(services.engine)
    for endpoint in endpoints:
        endpoint["status"] = endpoint_status(endpoint, services.settings.webhook_failing_after)
    return page(
        "webhooks.html",
        user=current.user,
        csrf=current.csrf,
        endpoints=endpoints,
        notices=await queries.notifications(services.engine),
        nav="webhooks",
    )


@get("/grants", include_in_schema=False)
async def grants_page(request: Request[Any, Any, Any]) -> Response[Any]:
    """Standing grants in force, each revocable, and those that ended."""
    current = await signed_in(request)
    if current is None:
        return to_login(request)
    async with request.app.state.services.engine.connect() as conn:
        everything = await grants.listed(conn, everything=True)
    now = now_iso()
    active = [g for g in everything if g.revoked_at is None and g.expires_at > now]
    return page(
        "grants.html",
        user=current.user,
        csrf=current.csrf,
        active=active,
        ended=[g for g in everything if g not in active][:100],
        nav="grants",
    )


@change("/grants/{grant_id:str}/revoke", status_code=303)
async def revoke_grant(request: Request[Any, Any, Any], grant_id: FromPath[str]) -> Response[Any]:
    """Revoke a standing grant from the dashboard; the next matching request asks again."""
    await _form(request)
    user = admit.current(request).user
    assert user is not None
    async with request.app.state.services.log.transaction(user) as tx:
        ended = await grants.revoke(tx, grant_id, user)
        title = f"Grant {grant_id} of {ended.tool} revoked"
        await tx.append([audit.row("grant.revoked", f"user:{user}", title, grant=grant_id)])
    return Redirect("/grants", status_code=303)


@change("/approvals/{approval_id:str}/assign", status_code=200)
async def assign(request: Request[Any, Any, Any], approval_id: FromPath[str]) -> Response[Any]:
    """Hand a request to a reviewer (their delegate while they are away); every page shows it."""
    form = await _form(request)
    services = request.app.state.services
    to = form.get("to", "").strip()

    async def work(tx: LogTransaction, user: str) -> None:
        await notices.assign(tx, approval_id, to, user, services.webhooks.wake)

    return await _claim_change(request, approval_id, work)


@get("/settings", include_in_schema=False)
async def settings_page(request: Request[Any, Any, Any]) -> Response[Any]:
    """The signed-in reviewer's own settings: away, who decides meanwhile, and the devices
    that get notifications."""
    current = await signed_in(request)
    if current is None or current.user is None:
        return to_login(request)
    return await _settings(request, current.user, current.csrf)


async def _settings(
    request: Request[Any, Any, Any], user: str, csrf: str, error: str | None = None
) -> Response[Any]:
    async with request.app.state.services.engine.connect() as conn:
        everyone = await conn.run_sync(list_users)
    me = next(u for u in everyone if u["username"] == user)
    away = me["away_until"] if me["away_until"] and me["away_until"] > now_iso() else None
    others = [u["username"] for u in everyone if u["username"] != user and not u["disabled"]]
    return page(
        "settings.html",
        400 if error else 200,
        user=user,
        csrf=csrf,
        away=away,
        delegate=me["delegate"],
        others=others,
        devices=await push.devices(request.app.state.services.engine, user),
        error=error,
        nav="settings",
    )


@change("/settings/away", status_code=303)
async def set_away(request: Request[Any, Any, Any]) -> Response[Any]:
    """Away until a time with a delegate, or back (``back``): the same rule as the CLI's."""
    form = await _form(request)
    current = admit.current(request)
    assert current.user is not None
    user: str = current.user
    if form.get("back"):
        until, delegate = "", ""
    else:
        # The form's datetime-local has no zone: it is read as UTC, as the page says.
        until = form.get("away_until", "").strip()
        until = f"{until}Z" if until and len(until) <= 19 else until
        delegate = form.get("delegate", "").strip()
    try:
        async with request.app.state.services.engine.begin() as conn:
            await conn.run_sync(
                lambda sync: update_user(sync, user, away_until=until, delegate=delegate)
            )
    except UserError as exc:
        return await _settings(request, user, current.csrf, error=str(exc))
    async with request.app.state.services.log.transaction(user) as tx:
        title = f"Reviewer {user!r} is back" if not until else f"Reviewer {user!r} away"
        await audit.record(
            tx, "user.updated", f"user:{user}", title, user=user, awayUntil=until or None
        )
    return Redirect("/settings", status_code=303)


@change("/webhooks/deliveries/{delivery_id:str}/retry", role="admin", status_code=303)
async def retry_from_page(
    request: Request[Any, Any, Any], delivery_id: FromPath[str]
) -> Response[Any]:
    """Send a delivery again (a manual attempt, admins only) and go back to the webhooks page."""
    form = await _form(request)
    actor = f"user:{admit.current(request).user}"
    await requeue(request.app.state.services, delivery_id, actor)
    target = form.get("next") or "/webhooks"
    if not target.startswith("/") or target.startswith("//"):
        target = "/webhooks"
    return Redirect(target, status_code=303)


@change("/approvals/{approval_id:str}/claim", status_code=200)
async def claim(request: Request[Any, Any, Any], approval_id: FromPath[str]) -> Response[Any]:
    """Claim a request ("bob is on it") or release the claim; every inbox shows it live."""
    form = await _form(request)
    release = bool(form.get("release"))

    async def work(tx: LogTransaction, user: str) -> None:
        await service.claim(tx, approval_id, user, release=release)

    return await _claim_change(request, approval_id, work)


async def _claim_change(
    request: Request[Any, Any, Any],
    approval_id: str,
    work: Callable[[LogTransaction, str], Awaitable[None]],
) -> Response[Any]:
    """Run a claim or assignment as the signed-in reviewer, then answer with the claim box
    (saying why when it was refused), or go back to the request page without htmx."""
    current = admit.current(request)
    assert current.user is not None
    services = request.app.state.services
    error = None
    try:
        async with services.log.transaction(current.user) as tx:
            await work(tx, current.user)
    except ApiError as exc:
        if exc.status == 404:
            raise
        error = exc.message
    if "hx-request" not in request.headers:
        return Redirect(f"/approvals/{approval_id}", status_code=303)
    approval = await service.fetch(services.engine, approval_id)
    html = render(
        "_claim.html",
        a=rows.approval(approval),
        csrf=current.csrf,
        user=current.user,
        claim_error=error,
    )
    return Response(html, media_type="text/html")


@change("/approvals/batch", status_code=200)
async def batch(request: Request[Any, Any, Any]) -> Response[Any]:
    """Approve or reject the selected requests: first a confirmation listing them, then each."""
    data = await request.form()
    form = {key: str(value) for key, value in data.items()}
    current = admit.current(request)
    assert current.user is not None
    services = request.app.state.services
    ids = list(dict.fromkeys(str(v) for v in data.getall("ids", [])))[:100]
    decision = form.get("decision", "")
    comment = form.get("comment", "").strip() or None
    context: dict[str, Any] = {"csrf": current.csrf, "user": current.user, "comment": comment}
    if decision not in ("approve", "reject") or not ids:
        context["error"] = "Select at least one request, then Approve selected or Reject selected."
        return Response(render("_batch.html", **context), media_type="text/html")
    context["decision"] = decision
    if not form.get("confirmed"):
        chosen = []
        for approval_id in ids:
            try:
                chosen.append(await service.fetch(services.engine, approval_id))
            except ApiError:
                continue
        return Response(
            render("_batch.html", step=True, chosen=rows.approvals(chosen), **context),
            media_type="text/html",
        )
    results = []
    for approval_id in ids:
        try:
            values = {"decision": decision, "comment": comment}
            await service.decide(services.log, approval_id, current.user, values)
            results.append({"id": approval_id, "ok": True, "message": ""})
        except ApiError as exc:
            results.append({"id": approval_id, "ok": False, "message": exc.message})
    return Response(render("_batch.html", results=results, **context), media_type="text/html")


DESK = [panel, claim, assign, batch, settings_page, set_away]  # the reviewer's desk
