"""``/email/{token}``: an email link's confirmation page (GET) and its one decision (POST)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.params import FromPath
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from approvals.auth.users import active
from approvals.core.clock import now_iso
from approvals.core.errors import ApiError
from approvals.delivery.channels import email
from approvals.delivery.channels.models import used_links_table
from approvals.events.log import LogTransaction
from approvals.queue import service
from approvals.views import desk, rows
from approvals.views.render import page

LABEL = {"approve": "Approve", "reject": "Reject"}


async def _used(engine: Any, nonce: str) -> bool:
    async with engine.connect() as conn:
        found = (
            await conn.execute(
                select(used_links_table.c.nonce).where(used_links_table.c.nonce == nonce)
            )
        ).first()
    return found is not None


async def _state(
    request: Request[Any, Any, Any], token: str
) -> tuple[Any, Any, Response[str] | None]:
    """The link and its approval, or the page to show instead of a form."""
    services = request.app.state.services
    link = email.read_link(await services.notifier.signer(), token)
    if link is None:
        return None, None, _page(None, None, 400, "This link is not valid or is too old.")
    try:
        approval = await service.fetch(services.engine, link.approval_id)
    except ApiError:
        return link, None, _page(link, None, 404, "This request no longer exists.")
    if approval["status"] != "pending":
        return link, approval, _page(link, approval, 200, None)
    if await _used(services.engine, link.nonce):
        return link, approval, _page(link, approval, 410, "This link was already used.")
    if approval["expiresAt"] and approval["expiresAt"] <= now_iso():
        return link, approval, _page(link, approval, 410, "This request has expired.")
    if not await active(services.engine, link.user):
        return link, approval, _page(link, approval, 403, f"{link.user} may not decide.")
    return link, approval, None


def _page(
    link: Any, approval: Any, status: int, error: str | None, form: bool = False
) -> Response[str]:
    return page(
        "email_link.html",
        status,
        user=None,
        csrf="",
        nav="",
        link=link,
        a=rows.approval(approval) if approval is not None else None,
        error=error,
        form=form,
        label=LABEL.get(link.decision, "") if link else "",
    )


@get("/email/{token:str}", include_in_schema=False)
async def email_link_page(request: Request[Any, Any, Any], token: FromPath[str]) -> Response[str]:
    """Show the request and a button; a GET never decides (mail scanners follow links)."""
    link, approval, instead = await _state(request, token)
    if instead is not None:
        return instead
    return _page(link, approval, 200, None, form=True)


@post("/email/{token:str}", include_in_schema=False, status_code=200)
async def email_link_decide(request: Request[Any, Any, Any], token: FromPath[str]) -> Response[str]:
    """Decide as the link's reviewer, once, with the same policy checks as the dashboard."""
    link, approval, instead = await _state(request, token)
    if instead is not None:
        return instead
    form = await request.form()
    comment = str(form.get("comment") or "").strip() or None
    services = request.app.state.services

    async def used(tx: LogTransaction) -> None:  # in the decision's transaction: both or neither
        await tx.conn.execute(
            insert(used_links_table).values(
                nonce=link.nonce,
                approval_id=link.approval_id,
                username=link.user,
                used_at=now_iso(),
            )
        )

    values = {"decision": link.decision, "comment": comment, "arguments_digest": link.digest}
    try:
        await service.decide(services.log, link.approval_id, link.user, values, also=used)
    except IntegrityError:
        return _page(link, approval, 410, "This link was already used.")
    except ApiError as exc:
        approval = await service.fetch(services.engine, link.approval_id)
        return _page(link, approval, exc.status, desk.STALE if exc.code == "stale" else exc.message)
    approval = await service.fetch(services.engine, link.approval_id)
    return _page(link, approval, 200, None)
