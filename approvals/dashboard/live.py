"""The dashboard's SSE stream: rendered fragments that htmx swaps out of band.

Every message is an unnamed SSE message whose data is HTML with
``hx-swap-oob`` elements, rendered from the same partial templates the pages
use. Its ``id`` is the log position, so htmx's reconnect resumes with
``Last-Event-ID``; a connection without one first receives the current state.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from litestar import Request, get
from litestar.response import Stream

from approvals.dashboard import queries, session
from approvals.dashboard.render import render
from approvals.errors import ApiError
from approvals.events.filters import FIELDS, EventFilter
from approvals.events.schema import parse_position
from approvals.queue import service

APPROVAL_EVENTS = ("approval.resolved", "approval.expired", "approval.vote")


def message(html: str, position: int) -> bytes:
    """One SSE message carrying HTML (one ``data:`` line per line)."""
    lines = "".join(f"data: {line}\n" for line in html.replace("\r", "").split("\n"))
    return f"id: {position}\n{lines}\n".encode()


class View:
    """What one open page shows, and the fragments that keep it current."""

    def __init__(self, services: Any, csrf: str, params: dict[str, str]) -> None:
        self.services = services
        self.csrf = csrf
        self.kind = params.get("view", "inbox")
        self.approval_id = params.get("id", "")
        self.where = EventFilter.from_params({k: params.get(k) for k in FIELDS})

    async def current(self) -> str:
        """The whole state, for a connection that cannot resume."""
        engine = self.services.engine
        if self.kind == "approval":
            approval = await service.fetch(engine, self.approval_id, full=True)
            return render("_decision.html", a=approval, csrf=self.csrf, oob=True)
        if self.kind == "events":
            events = await self.services.log.tail(
                100, upto=self.services.broker.head, where=self.where
            )
            rows = "".join(render("_event_row.html", e=e) for e in events[::-1])
            return f'<div id="events" hx-swap-oob="innerHTML">{rows}</div>'
        approvals = await queries.pending(engine)
        rows = "".join(render("_approval_row.html", a=a, csrf=self.csrf) for a in approvals)
        return f'<div id="inbox" hx-swap-oob="innerHTML">{rows}</div>'

    async def update(self, event: dict[str, Any]) -> str:
        """The fragments one new event changes on this page ("" for none)."""
        engine = self.services.engine
        if self.kind == "events":
            if not self.where.matches(event):
                return ""
            row = render("_event_row.html", e=event)
            return f'<div hx-swap-oob="afterbegin:#events">{row}</div>'
        approval_id = event.get("approvalId")
        if not approval_id:
            return ""
        if self.kind == "approval":
            if approval_id != self.approval_id or event["type"] not in APPROVAL_EVENTS:
                return ""
            approval = await service.fetch(engine, approval_id, full=True)
            return render("_decision.html", a=approval, csrf=self.csrf, oob=True)
        if event["type"] in ("approval.resolved", "approval.expired"):
            return f'<div id="approval-{approval_id}" hx-swap-oob="delete"></div>'
        approval = await service.fetch(engine, approval_id)
        if approval["status"] != "pending":
            return ""
        row = render("_approval_row.html", a=approval, csrf=self.csrf)
        if event["type"] == "approval.vote":
            return render("_approval_row.html", a=approval, csrf=self.csrf, oob=True)
        return f'<div hx-swap-oob="afterbegin:#inbox">{row}</div>'


async def fragments(
    view: View, position: int, resume: bool, keepalive: float
) -> AsyncIterator[bytes]:
    """Yield the current state (unless resuming), then a message per relevant event."""
    services = view.services
    broker, log = services.broker, services.log
    yield f"retry: {services.settings.retry_ms}\n\n".encode()
    if not resume:
        position = broker.head
        yield message(await view.current(), position)
    while True:
        items = broker.since(position)
        if items is None:
            events = await log.read_after(position, upto=broker.head, limit=500)
        else:
            events = [item.event for item in items]
        if events:
            for event in events:
                html = await view.update(event)
                position = int(event["id"])
                if html:
                    yield message(html, position)
            continue
        if not await broker.wait(position, keepalive):
            yield b": keepalive\n\n"


@get("/dashboard/stream", include_in_schema=False, media_type="text/event-stream")
async def stream(request: Request[Any, Any, Any]) -> Stream:
    """The live fragments for the page that opened the stream (session required)."""
    current = await session.read(request)
    if current is None or not current.user:
        raise ApiError(401, "unauthorized", "sign in to follow the dashboard")
    params = {key: request.query_params.get(key, "") for key in request.query_params}
    last = parse_position(request.headers.get("last-event-id") or None, "Last-Event-ID")
    services = request.app.state.services
    view = View(services, current.csrf, params)
    if view.kind == "approval":
        await service.fetch(services.engine, view.approval_id)  # 404 for an unknown id
    return Stream(
        fragments(view, last or 0, last is not None, services.settings.keepalive_seconds),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
