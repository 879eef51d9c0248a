"""HTTP handler of the queue's figures: ``GET /v1/stats``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from litestar import Request, get
from litestar.params import QueryParameter

from approvals.core.clock import parse_iso
from approvals.core.contract import errors
from approvals.core.errors import invalid
from approvals.http.guard import requires
from approvals.queue import stats
from approvals.queue.stats_schema import Stats

TAGS = ["approvals"]


def _moment(name: str, how: str, default: str) -> Any:
    return QueryParameter(
        name=name,
        max_length=40,
        description=f"approvals requested {how} this time (ISO 8601; {default})",
    )


@get(
    "/v1/stats",
    guards=[requires("approvals:read")],
    operation_id="getStats",
    tags=TAGS,
    summary="Figures of the approvals requested in a window, over all and per group",
    description=(
        "Counts by outcome, time to a person's decision (p50, p90, p99 in seconds, by "
        "nearest rank), the expired share and the auto-approved share (by a policy or a "
        "standing grant) of the approvals requested in `[since, until)`, over all and, with "
        "`groupBy`, per tool, agent, reviewer (who ended it) or UTC day of the request. "
        "The window defaults to the last 30 days."
    ),
    responses=errors(),
)
async def get_stats(
    request: Request[Any, Any, Any],
    since: Annotated[
        str | None, _moment("since", "at or after", "default: 30 days before until")
    ] = None,
    until: Annotated[str | None, _moment("until", "before", "default: now")] = None,
    # named as on the wire: Litestar names a refused value by the parameter
    groupBy: Annotated[
        Literal["tool", "agent", "reviewer", "day"] | None,
        QueryParameter(name="groupBy", description="figures per tool, agent, reviewer or day"),
    ] = None,
) -> Stats:
    """Figures of the approvals requested in a window, over all and per group."""
    start, end = stats.window(
        _moment_value(since, "since"), _moment_value(until, "until"), datetime.now(UTC)
    )
    if end < start:
        raise invalid("query.until", "must not be before since", status=400)
    query = stats.Query(since=start, until=end, group_by=groupBy)
    services = request.app.state.services
    return await stats.compute(services.engine, query, services.settings.stats_exact_limit)


def _moment_value(raw: str | None, name: str) -> datetime | None:
    """A query timestamp (naive means UTC); 400 naming the field when unreadable."""
    if raw is None:
        return None
    try:
        return parse_iso(raw)
    except ValueError:
        raise invalid(
            f"query.{name}",
            "must be an ISO 8601 time such as 2026-12-01 or 2026-12-01T09:30:00Z",
            status=400,
        ) from None
