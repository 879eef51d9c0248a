"""The Insights page: the queue's figures as charts, each with its data as a table."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

import msgspec
from litestar import Request, Response, get

from approvals.dashboard.pages import signed_in, to_login
from approvals.queue import stats
from approvals.queue.stats_schema import GroupStats
from approvals.views.render import page

FILTERS = ("agent", "tool", "since", "until")
DEFAULT_DAYS = 30


def _day(raw: str) -> date | None:
    try:
        return date.fromisoformat(raw) if raw else None
    except ValueError:
        return None


def _filters(params: Any, today: date) -> tuple[dict[str, str], list[str]]:
    """The page's filters (``since`` and ``until`` are days, both included) and what was
    refused of them."""
    out = {key: str(params.get(key) or "").strip()[:200] for key in FILTERS}
    refused = []
    until = _day(out["until"])
    if out["until"] and until is None:
        refused.append(f"To: {out['until']!r} is not a date")
    until = until or today
    since = _day(out["since"])
    if out["since"] and since is None:
        refused.append(f"From: {out['since']!r} is not a date")
    since = since or until - timedelta(days=DEFAULT_DAYS - 1)
    if until < since:
        refused.append("To is before From: showing the 30 days up to To")
        since = until - timedelta(days=DEFAULT_DAYS - 1)
    out["since"], out["until"] = since.isoformat(), until.isoformat()
    return out, refused


def _row(group: GroupStats) -> dict[str, Any]:
    return msgspec.to_builtins(group)


@get("/insights", include_in_schema=False, opt={"query": FILTERS})
async def insights_page(request: Request[Any, Any, Any]) -> Response[Any]:
    """Time to decision, outcomes by tool, expiries, auto-approvals and reviewers' load."""
    current = await signed_in(request)
    if current is None:
        return to_login(request)
    filters, refused = _filters(request.query_params, datetime.now(UTC).date())
    since = datetime.combine(date.fromisoformat(filters["since"]), time(), UTC)
    until = datetime.combine(date.fromisoformat(filters["until"]), time(), UTC) + timedelta(1)
    services = request.app.state.services
    figures = {}
    for group_by in ("day", "tool", "reviewer", "agent"):
        query = stats.Query(
            since, until, group_by, agent=filters["agent"] or None, tool=filters["tool"] or None
        )
        figures[group_by] = await stats.compute(
            services.engine, query, services.settings.stats_exact_limit
        )
    days = [_row(g) for g in figures["day"].groups]
    tools = [_row(g) for g in figures["tool"].groups]
    reviewers = [_row(g) for g in figures["reviewer"].groups if g.key is not None]
    facets = {
        "agents": sorted(
            {str(g.key) for g in figures["agent"].groups if g.key} | _given(filters, "agent")
        ),
        "tools": sorted(
            {str(g.key) for g in figures["tool"].groups if g.key} | _given(filters, "tool")
        ),
    }
    data = {"days": days, "tools": tools, "reviewers": reviewers}
    return page(
        "insights.html",
        user=current.user,
        csrf=current.csrf,
        filters=filters,
        refused=refused,
        query=urlencode({k: v for k, v in filters.items() if v and k in ("agent", "tool")}),
        total=_row(figures["day"].total),
        days=days,
        tools=tools,
        reviewers=reviewers,
        facets=facets,
        # In a <script type="application/json"> block: "<" is escaped so no value ends it.
        data=json.dumps(data, separators=(",", ":")).replace("<", "\\u003c"),
        nav="insights",
    )


def _given(filters: dict[str, str], name: str) -> set[str]:
    return {filters[name]} if filters[name] else set()
