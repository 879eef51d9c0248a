"""The dashboard's SSE stream: rendered fragments that htmx swaps out of band.

Every message is an unnamed SSE message whose data is HTML with
``hx-swap-oob`` elements, rendered from the same partial templates the pages
use. Its ``id`` is the log position, so htmx's reconnect resumes with
``Last-Event-ID``; a connection without one first receives the current state.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from litestar import Request, get

from approvals.auth import sessions as session
from approvals.auth.users import active
from approvals.core.errors import ApiError
from approvals.dashboard import queries
from approvals.dashboard.presence import PRESENCE
from approvals.events.broker import Item
from approvals.events.filters import FIELDS, EventFilter
from approvals.events.follow import Side, connected, follow
from approvals.events.schema import parse_position
from approvals.http.sse import EventStream
from approvals.queue import service
from approvals.views import rows
from approvals.views.render import render

if TYPE_CHECKING:
    from approvals.services import Services

APPROVAL_EVENTS = ("approval.resolved", "approval.expired", "approval.vote")
CLAIM_EVENTS = ("approval.claimed", "approval.released", "approval.assigned")


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
            return self._fragment("_decision.html", approval, oob=True)
        if self.kind == "events":
            events = await self.services.log.tail(
                100, upto=self.services.broker.head, where=self.where
            )
            html = "".join(render("_event_row.html", e=e) for e in rows.events(events[::-1]))
            return f'<div id="events" hx-swap-oob="innerHTML">{html}</div>'
        approvals = await queries.pending(engine, self.filters)
        html = "".join(self._fragment("_approval_row.html", a) for a in approvals)
        return f'<div id="inbox" hx-swap-oob="innerHTML">{html}</div>'

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
            row = render("_event_row.html", e=rows.event(event))
            return f'<div hx-swap-oob="afterbegin:#events">{row}</div>'
        approval_id = event.get("approvalId")
        if not approval_id:
            return ""
        if self.kind == "approval":
            if approval_id != self.approval_id:
                return ""
            if event["type"] in CLAIM_EVENTS:
                approval = await service.fetch(engine, approval_id)
                return self._fragment("_claim.html", approval, oob=True)
            if event["type"] not in APPROVAL_EVENTS:
                return ""
            approval = await service.fetch(engine, approval_id, full=True)
            return self._fragment("_decision.html", approval, oob=True)
        if event["type"] in ("approval.resolved", "approval.expired"):
            return f'<div id="approval-{approval_id}" hx-swap-oob="delete"></div>'
        approval = await service.fetch(engine, approval_id)
        if approval["status"] != "pending" or not queries.matches(approval, self.filters):
            return ""
        if event["type"] == "approval.vote" or event["type"] in CLAIM_EVENTS:
            return self._fragment("_approval_row.html", approval, oob=True)
        row = self._fragment("_approval_row.html", approval)
        return f'<div hx-swap-oob="afterbegin:#inbox">{row}</div>'

    def _fragment(self, template: str, approval: dict[str, Any], oob: bool = False) -> str:
        """One approval's fragment as this page's reviewer sees it."""
        return render(template, a=rows.approval(approval), csrf=self.csrf, user=self.user, oob=oob)

    def describe(self) -> dict[str, Any]:
        """What this page follows, for the ``connected`` message."""
        if self.kind == "approval":
            return {"view": "approval", "id": self.approval_id}
        if self.kind == "events":
            return {"view": "events", **self.where.describe()}
        return {"view": "inbox", **self.filters}

    async def replayed(self, events: list[dict[str, Any]]) -> bytes:
        """The fragments a run of events changes, one message each, ids their positions."""
        out = []
        for event in events:
            html = await self.update(event)
            if html:
                out.append(message(html, int(event["id"])))
        return b"".join(out)

    async def live(self, items: list[Item]) -> bytes:
        """The same, for events from the broker's ring."""
        return await self.replayed([item.event for item in items])


async def fragments(view: View, position: int, origin: str) -> AsyncIterator[bytes]:
    """Yield ``connected``, the current state (unless resuming), then what each event changes."""
    services = view.services
    broker = services.broker
    resume = origin != "live"
    if not resume:
        position = broker.head
    yield connected(
        filters=view.describe(),
        position=position,
        origin=origin,
        head=broker.head,
        retry_ms=services.settings.retry_ms,
    )
    watching = view.kind == "approval" and view.user is not None
    token = PRESENCE.join(view.approval_id, view.user or "") if watching else 0
    side = None
    try:
        if not resume:
            yield message(await view.current(), position)
        if watching:
            side = Side(
                changed=lambda: PRESENCE.changed(view.approval_id),
                message=lambda at: message(view.presence(), at),
            )
        async for chunk in follow(
            log=services.log, broker=broker, position=position, frames=view, side=side
        ):
            yield chunk
    finally:
        if watching:
            PRESENCE.leave(view.approval_id, token)


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
    origin = "last-event-id" if last is not None else "live"
    if last is None:
        # The page says which log position it was rendered at: the stream starts there and
        # sends only later changes, instead of re-rendering the page's live parts (which
        # would throw away a reason the reviewer is typing) when it connects.
        last = parse_position(request.query_params.get("since") or None, "since")
        origin = "since" if last is not None else "live"
    services = request.app.state.services
    view = View(services, current.csrf, params, current.user)
    if view.kind == "approval":
        await service.fetch(services.engine, view.approval_id)  # 404 for an unknown id
    return EventStream(fragments(view, last or 0, origin))
