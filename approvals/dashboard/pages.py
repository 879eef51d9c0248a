"""Dashboard pages and form posts (session and CSRF protected)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.params import FromPath
from litestar.response import Redirect

from approvals.dashboard import queries, session
from approvals.dashboard.render import page, render
from approvals.dashboard.users import check_password
from approvals.errors import ApiError
from approvals.events.filters import FIELDS, EventFilter
from approvals.queue import service
from approvals.webhooks.routes import requeue
from approvals.webhooks.worker import endpoint_status

limiter = session.LoginLimiter()
HISTORY_STATUSES = ("approved", "rejected", "answered", "expired")


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
    return current if current is not None and current.user else None


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


@get("/login", include_in_schema=False)
async def login_page(request: Request[Any, Any, Any]) -> Response[str]:
    """The sign-in form."""
    current = await session.read(request) or session.fresh()
    answer = page("login.html", csrf=current.csrf, next=_next(request), error=None, user=None)
    answer.set_cookie(_cookie(await session.encode(request, current), request, None))
    return answer


def _next(request: Request[Any, Any, Any]) -> str:
    target = request.query_params.get("next") or "/"
    return target if target.startswith("/") and not target.startswith("//") else "/"


@post("/login", include_in_schema=False, status_code=200)
async def login(request: Request[Any, Any, Any]) -> Response[Any]:
    """Check the password; on success start a session with a new CSRF token."""
    form = await _form(request)
    current = await session.read(request)
    try:
        session.check_csrf(current, form.get("csrf_token"))
    except ApiError:
        current = session.fresh()
        answer = page(
            "login.html",
            403,
            csrf=current.csrf,
            next=_next(request),
            user=None,
            error="Your sign-in form expired. Please try again.",
        )
        answer.set_cookie(_cookie(await session.encode(request, current), request, None))
        return answer
    username = form.get("username", "").strip()
    address = request.client.host if request.client else "?"
    wait = limiter.blocked(username, address)
    if wait:
        return page(
            "login.html",
            429,
            csrf=current.csrf if current else "",
            next=_next(request),
            user=None,
            error=f"Too many failed sign-ins. Try again in {int(wait)} seconds.",
        )
    services = request.app.state.services
    if not await check_password(services.engine, username, form.get("password", "")):
        limiter.failed(username, address)
        return page(
            "login.html",
            401,
            csrf=current.csrf if current else "",
            next=_next(request),
            user=None,
            error="Wrong username or password.",
        )
    limiter.succeeded(username, address)
    target = form.get("next") or "/"
    if not target.startswith("/") or target.startswith("//"):
        target = "/"  # never redirect off-site
    redirect: Response[Any] = Redirect(target, status_code=303)
    started = session.fresh(username)
    redirect.set_cookie(_cookie(await session.encode(request, started), request, session.MAX_AGE))
    return redirect


@post("/logout", include_in_schema=False, status_code=303)
async def logout(request: Request[Any, Any, Any]) -> Response[Any]:
    """End the session."""
    await _csrf(request, await _form(request))
    answer = Redirect("/login", status_code=303)
    answer.set_cookie(_cookie("", request, 0))
    return answer


@get("/", include_in_schema=False)
async def inbox(request: Request[Any, Any, Any]) -> Response[Any]:
    """Pending approvals, updated live."""
    current = await signed_in(request)
    if current is None:
        return to_login(request)
    rows = await queries.pending(request.app.state.services.engine)
    return page("inbox.html", user=current.user, csrf=current.csrf, approvals=rows, nav="inbox")


@get("/approvals/{approval_id:str}", include_in_schema=False)
async def approval_page(
    request: Request[Any, Any, Any], approval_id: FromPath[str]
) -> Response[Any]:
    """One request: what it asks, the run's context, and the decision form."""
    current = await signed_in(request)
    if current is None:
        return to_login(request)
    engine = request.app.state.services.engine
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
    return page(
        "approval.html",
        user=current.user,
        csrf=current.csrf,
        a=approval,
        timeline=items,
        nav="inbox",
    )


@post("/approvals/{approval_id:str}/decide", include_in_schema=False, status_code=200)
async def decide(request: Request[Any, Any, Any], approval_id: FromPath[str]) -> Response[Any]:
    """Record a reviewer's decision; answer the refreshed decision panel (or redirect)."""
    form = await _form(request)
    current = await _csrf(request, form)
    if not current.user:
        raise ApiError(401, "unauthorized", "sign in first")
    services = request.app.state.services
    error = None
    status = 200
    try:
        decision = form.get("decision", "")
        if decision not in ("approve", "reject", "answer"):
            raise ApiError(422, "invalid", "Choose approve, reject or answer.")
        arguments = None
        if decision == "approve" and form.get("arguments", "").strip():
            try:
                arguments = json.loads(form["arguments"])
            except ValueError as exc:
                raise ApiError(422, "invalid", "The edited arguments are not valid JSON.") from exc
            if not isinstance(arguments, dict):
                raise ApiError(422, "invalid", "The edited arguments must be a JSON object.")
        answer_text = form.get("answer", "").strip() or None
        if decision == "answer" and not answer_text:
            raise ApiError(422, "invalid", "Write the answer to send back to the agent.")
        async with services.log.transaction(current.user) as tx:
            await service.decide(
                tx,
                approval_id,
                decision=decision,
                principal=current.user,
                comment=form.get("comment", "").strip() or None,
                answer=answer_text if decision == "answer" else None,
                arguments=arguments,
            )
    except ApiError as exc:
        if exc.status == 404:
            raise
        error, status = exc.message, exc.status
    if "hx-request" not in request.headers:
        return Redirect(f"/approvals/{approval_id}", status_code=303)
    approval = await service.fetch(services.engine, approval_id, full=True)
    template = "_outcome.html" if form.get("view") == "inbox" else "_decision.html"
    html = render(template, a=approval, csrf=current.csrf, error=error)
    return Response(html, status_code=status, media_type="text/html")


@get("/history", include_in_schema=False)
async def history_page(request: Request[Any, Any, Any]) -> Response[Any]:
    """Resolved approvals with who decided and when."""
    current = await signed_in(request)
    if current is None:
        return to_login(request)
    keys = ("status", "reviewer", "agent", "since", "until")
    filters = {k: request.query_params.get(k, "").strip() for k in keys}
    if filters["status"] not in ("", *HISTORY_STATUSES):
        filters["status"] = ""
    rows = await queries.history(request.app.state.services.engine, filters)
    return page(
        "history.html",
        user=current.user,
        csrf=current.csrf,
        approvals=rows,
        filters=filters,
        statuses=HISTORY_STATUSES,
        nav="history",
    )


@get("/events", include_in_schema=False)
async def events_page(request: Request[Any, Any, Any]) -> Response[Any]:
    """The live event log, filtered like the API."""
    current = await signed_in(request)
    if current is None:
        return to_login(request)
    params = {name: request.query_params.get(name, "") for name in FIELDS}
    where = EventFilter.from_params(params)
    services = request.app.state.services
    events = await services.log.tail(100, upto=services.broker.head, where=where)
    query = "&".join(f"{k}={quote(v)}" for k, v in params.items() if v)
    return page(
        "events.html",
        user=current.user,
        csrf=current.csrf,
        events=events[::-1],
        filters=params,
        query=query,
        nav="events",
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
        "webhooks.html", user=current.user, csrf=current.csrf, endpoints=endpoints, nav="webhooks"
    )


@post("/webhooks/deliveries/{delivery_id:str}/retry", include_in_schema=False, status_code=303)
async def retry_from_page(
    request: Request[Any, Any, Any], delivery_id: FromPath[str]
) -> Response[Any]:
    """Send a delivery again (a manual attempt) and go back to the webhooks page."""
    current = await _csrf(request, await _form(request))
    if not current.user:
        raise ApiError(401, "unauthorized", "sign in first")
    await requeue(request.app.state.services, delivery_id)
    return Redirect("/webhooks", status_code=303)
