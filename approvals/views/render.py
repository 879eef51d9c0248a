"""Jinja2 rendering (autoescaped) shared by pages, htmx answers and the live stream."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from litestar import Response
from litestar.enums import MediaType

from approvals.core.clock import iso, parse_iso
from approvals.events.schema import EventOut
from approvals.views import desk
from approvals.views.markdown import markdown


def token_text(event: EventOut) -> str:
    """The text a token event carries (``detail.delta``, ``text`` or ``content``, or its title)."""
    detail = event.detail or {}
    for key in ("delta", "text", "content", "token"):
        if isinstance(detail.get(key), str):
            return str(detail[key])
    return event.title or ""


TEMPLATES = Path(__file__).resolve().parents[1] / "templates"  # approvals/templates


def ago(value: str | None, now: datetime | None = None) -> str:
    """``3m ago``-style age of a timestamp."""
    if not value:
        return ""
    seconds = int(((now or datetime.now(UTC)) - parse_iso(value)).total_seconds())
    return f"{span(max(seconds, 0))} ago"


def left(value: str | None, now: datetime | None = None) -> str:
    """Time left until a deadline (``4m left``, ``overdue``)."""
    if not value:
        return ""
    seconds = int((parse_iso(value) - (now or datetime.now(UTC))).total_seconds())
    return f"{span(seconds)} left" if seconds > 0 else "due now"


NEAR = timedelta(minutes=2)  # a time left is red from this long before its deadline on
LAST_PART = 5  # and amber in the last fifth of the time between the request and the deadline


@dataclass(frozen=True)
class Due:
    """How a time left looks now (``tone``: ``""``, ``"warn"`` amber or ``"soon"`` red) and
    the instants it turns amber and red, which the page's clock compares with (static/app.js
    keeps no rule of its own)."""

    tone: str
    warn_at: str
    soon_at: str


def due(created: str, expires: str, now: datetime | None = None) -> Due:
    """The rule for a time left: amber in the last fifth of the time between the request and
    its deadline, red from two minutes before the deadline and once it has passed."""
    start, end = parse_iso(created), parse_iso(expires)
    warn_at, soon_at = end - (end - start) / LAST_PART, end - NEAR
    at = now or datetime.now(UTC)
    tone = "soon" if at >= soon_at else "warn" if at >= warn_at else ""
    return Due(tone=tone, warn_at=iso(warn_at), soon_at=iso(soon_at))


def span(seconds: int) -> str:
    """A short duration: ``45s``, ``12m``, ``3h``, ``2d``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def clock(value: str | None) -> str:
    """``2026-11-20 12:03 UTC`` from a canonical timestamp."""
    if not value:
        return ""
    return parse_iso(value).strftime("%Y-%m-%d %H:%M UTC")


def pretty(value: Any) -> str:
    """JSON indented for reading (escaped by the template like any text)."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def web_url(value: Any) -> str | None:
    """An agent-given link when it is an absolute http(s) URL, else None."""
    if isinstance(value, str) and len(value) <= 2000:
        parts = urlsplit(value)
        if parts.scheme in ("http", "https") and parts.hostname:
            return value
    return None


environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
    # A name or key a template uses that its context lacks is an error, not an empty
    # string: a renamed field fails the tests instead of rendering as nothing. Optional
    # values are tested with ``is defined`` or ``is mapping`` in the templates.
    undefined=StrictUndefined,
)
environment.filters.update(
    ago=ago, left=left, clock=clock, pretty=pretty, markdown=markdown, web_url=web_url
)
environment.globals.update(
    desk=desk.desk,
    due=due,
    kind=desk.kind,
    diff=desk.diff,
    current=desk.current,
    grant_options=desk.grant_options,
    active_claim=desk.active_claim,
    token_text=token_text,
    # What most pages may be given and many are not: the defaults here, so a template
    # tests them plainly (``{% if error %}``) under StrictUndefined.
    oob=False,
    csrf=None,
    user=None,
    error=None,
    nav="",
)


def render(name: str, **context: Any) -> str:
    """Render a template to text."""
    return environment.get_template(name).render(**context)


def page(name: str, status: int = 200, **context: Any) -> Response[str]:
    """Render a template as an HTML response."""
    return Response(render(name, **context), status_code=status, media_type=MediaType.HTML)
