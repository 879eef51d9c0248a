"""The dashboard's SSE stream: rendered fragments that htmx swaps out of band.

Every message is an unnamed SSE message whose data is HTML with
``hx-swap-oob`` elements, rendered from the same partial templates the pages
use. Its ``id`` is the log position, so htmx's reconnect resumes with
``Last-Event-ID``; a connection without one first receives the current state.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from litestar import Request, get

from approvals.auth import sessions as session
from approvals.auth.users import active
from approvals.core.errors import ApiError
from approvals.dashboard import queries
from approvals.dashboard.presence import PRESENCE
from approvals.events.filters import FIELDS, EventFilter
from approvals.events.schema import parse_position
from approvals.http.sse import EventStream
from approvals.queue import service
from approvals.views.render import render

if TYPE_CHECKING:
    from approvals.services import Services

APPROVAL_EVENTS = ("approval.resolved", "approval.expired", "approval.vote")
CLAIM_EVENTS = ("approval.claimed", "approval.released")


def message(html: str, position: int) -> bytes:
    """One SSE message carrying HTML (one ``data:`` line per line)."""
    lines = "".join(f"data: {line}\n" for line in html.replace("\r", "").split("\n"))
    return f"id: {position}\n{lines}\n".encode()


class View:
    """What one open page shows, and the fragments that keep it current."""

    def __init__(
        self, services: Services, csrf: str, params: dict[str, str], user: str | None = None
    ) -> None:
        self.services = services
        self.csrf = csrf
        self.user = user
        self.kind = params.get("view", "inbox")
        self.approval_id = params.get("id", "")
        self.where = EventFilter.from_params({k: params.get(k) for k in FIELDS})
        self.filters = queries.inbox_filters(params)

    async def current(self) -> str:
        """The whole state, for a connection that cannot resume."""
        engine = self.services.engine
        if self.kind == "approval":
            approval = await service.fetch(engine, self.approval_id, full=True)
            return render("_decision.html", a=approval, csrf=self.csrf, user=self.user, oob=True)
        if self.kind == "events":
            events = await self.services.log.tail(
                100, upto=self.services.broker.head, where=self.where
            )
            rows = "".join(render("_event_row.html", e=e) for e in events[::-1])
            return f'<div id="events" hx-swap-oob="innerHTML">{rows}</div>'
        approvals = await queries.pending(engine, self.filters)
        rows = "".join(
            render("_approval_row.html", a=a, csrf=self.csrf, user=self.user) for a in approvals
        )
        return f'<div id="inbox" hx-swap-oob="innerHTML">{rows}</div>'

    def presence(self) -> str:
        """Who else has this request page open (an out-of-band fragment)."""
        others = [u for u in PRESENCE.viewers(self.approval_id) if u != self.user]
        return render("_presence.html", approval_id=self.approval_id, others=others, oob=True)

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
            if approval_id != self.approval_id:
                return ""
            if event["type"] in CLAIM_EVENTS:
                approval = await service.fetch(engine, approval_id)
                return render("_claim.html", a=approval, csrf=self.csrf, user=self.user, oob=True)
            if event["type"] not in APPROVAL_EVENTS:
                return ""
            approval = await service.fetch(engine, approval_id, full=True)
            return render("_decision.html", a=approval, csrf=self.csrf, user=self.user, oob=True)
        if event["type"] in ("approval.resolved", "approval.expired"):
            return f'<div id="approval-{approval_id}" hx-swap-oob="delete"></div>'
        approval = await service.fetch(engine, approval_id)
        if approval["status"] != "pending" or not queries.matches(approval, self.filters):
            return ""
        row = render("_approval_row.html", a=approval, csrf=self.csrf, user=self.user)
        if event["type"] == "approval.vote" or event["type"] in CLAIM_EVENTS:
            return render(
                "_approval_row.html", a=approval, csrf=self.csrf, user=self.user, oob=True
            )
        return f'<div hx-swap-oob="afterbegin:#inbox">{row}</div>'


async def fragments(view: View, position: int, resume: bool) -> AsyncIterator[bytes]:
    """Yield the current state (unless resuming), then a message per relevant event."""
    services = view.services
    broker = services.broker
    yield f"retry: {services.settings.retry_ms}\n\n".encode()
    watching = view.kind == "approval" and view.user is not None
    token = PRESENCE.join(view.approval_id, view.user or "") if watching else 0
    try:
        if not resume:
            position = broker.head
            yield message(await view.current(), position)
        async for chunk in _follow(view, position, watching):
            yield chunk
    finally:
        if watching:
            PRESENCE.leave(view.approval_id, token)


async def _follow(view: View, position: int, watching: bool) -> AsyncIterator[bytes]:
    services = view.services
    broker, log = services.broker, services.log
    changed = PRESENCE.changed(view.approval_id) if watching else None
    if watching:
        yield message(view.presence(), position)
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
        if changed is None:
            if not await broker.next(position):
                yield b": keepalive\n\n"
            continue
        waiting = asyncio.ensure_future(broker.next(position))
        viewers = asyncio.ensure_future(changed.wait())
        done, _ = await asyncio.wait({waiting, viewers}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        viewers.cancel()
        if viewers in done:
            changed = PRESENCE.changed(view.approval_id)
            yield message(view.presence(), position)
        elif waiting in done and not waiting.result():
            yield b": keepalive\n\n"


# The page that opens the stream names its view in the query (see View).
@get(
    "/dashboard/stream",
    include_in_schema=False,
    media_type="text/event-stream",
    opt={"any_query": True},
)
async def stream(request: Request[Any, Any, Any]) -> EventStream:
    """The live fragments for the page that opened the stream (session required)."""
    current = await session.read(request)
    engine = request.app.state.services.engine
    if (
        current is None
        or not current.user
        or not await active(engine, current.user, current.generation)
    ):
        raise ApiError(401, "unauthorized", "sign in to follow the dashboard")
    params = {key: request.query_params.get(key, "") for key in request.query_params}
    last = parse_position(request.headers.get("last-event-id") or None, "Last-Event-ID")
    if last is None:
        # The page says which log position it was rendered at: the stream starts there and
        # sends only later changes, instead of re-rendering the page's live parts (which
        # would throw away a reason the reviewer is typing) when it connects.
        last = parse_position(request.query_params.get("since") or None, "since")
    services = request.app.state.services
    view = View(services, current.csrf, params, current.user)
    if view.kind == "approval":
        await service.fetch(services.engine, view.approval_id)  # 404 for an unknown id
    return EventStream(fragments(view, last or 0, last is not None))
