"""Sources as data: checking what a source sets and building a new source's row.

Shared by the HTTP routes and the command line (``approvals sources add``).
"""

from __future__ import annotations

from typing import Any

import msgspec

from approvals.connectors.models import Source
from approvals.connectors.schema import SourceCreate, SourceUpdate
from approvals.core.clock import now_iso
from approvals.core.errors import invalid
from approvals.core.outbound import Policy
from approvals.core.outbound import check_url as check_destination
from approvals.core.secretbox import encrypt
from approvals.delivery.signing import new_secret
from approvals.events.log import new_id
from approvals.queue.schema import check_url

sources_table = Source.__table__  # type: ignore[attr-defined]


def source_values(body: SourceCreate | SourceUpdate, destinations: Policy) -> dict[str, Any]:
    """The column values a checked body sets (an update: only the fields it names); the
    ``resumeUrl`` is checked against the outbound ``destinations``."""
    out: dict[str, Any] = {}
    if body.name is not msgspec.UNSET:
        if not body.name.isprintable():
            raise invalid("body.name", "must be 1 to 200 printable characters")
        out["name"] = body.name
    if body.dialect is not msgspec.UNSET:
        out["dialect"] = body.dialect
    if body.url is not msgspec.UNSET:
        out["url"] = check_url(body.url, "body.url")
    if body.token is not msgspec.UNSET:
        out["token"] = body.token
    if body.resume_url is not msgspec.UNSET:
        out["resume_url"] = (
            None
            if body.resume_url is None
            else check_destination(
                check_url(body.resume_url, "body.resumeUrl"), "body.resumeUrl", destinations
            )
        )
    if body.history is not msgspec.UNSET:
        out["history"] = body.history
    return out


def new_source(values: dict[str, Any], key: str) -> dict[str, Any]:
    """The row of a new source from checked values (the token encrypted with ``key``)."""
    values = dict(values)
    token = values.pop("token")
    now = now_iso()
    values.update(
        id=new_id("src"),
        token_encrypted=encrypt(key, token),
        resume_secret=new_secret(),
        history=values.get("history", False),
        resume_url=values.get("resume_url"),
        status="connecting",
        cursor=None,
        last_error=None,
        events_received=0,
        events_skipped=0,
        created_at=now,
        updated_at=now,
    )
    return values
