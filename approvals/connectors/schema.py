"""Typed bodies and answers of sources (the platform streams the service follows)."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

import msgspec

from approvals.connectors.dialects import DIALECTS
from approvals.core.contract import Body, Out
from approvals.events.schema import Timestamp
from approvals.queue.schema import Name, Url

Dialect = Literal["prism", "agent-events", "agui", "cerca", "brainroad"]
assert set(get_args(Dialect)) == set(DIALECTS), "Dialect must list every dialect"
Token = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=4000,
        pattern=r"^[!-~]+$",
        description="the platform's API token (printable ASCII, sent as a bearer token)",
    ),
]
UNSET = msgspec.UNSET


class SourceCreate(Body):
    """``POST /v1/sources``: a platform stream to follow."""

    name: Name
    dialect: Dialect
    url: Url
    token: Token
    resume_url: Url | msgspec.UnsetType | None = UNSET
    history: bool | msgspec.UnsetType = UNSET


class SourceUpdate(Body):
    """``PATCH /v1/sources/{id}``: only the fields given change (``resumeUrl: null`` clears)."""

    name: Name | msgspec.UnsetType = UNSET
    dialect: Dialect | msgspec.UnsetType = UNSET
    url: Url | msgspec.UnsetType = UNSET
    token: Token | msgspec.UnsetType = UNSET
    resume_url: Url | msgspec.UnsetType | None = UNSET
    history: bool | msgspec.UnsetType = UNSET


class SourceOut(Out, omit_defaults=True):
    """A source and its connection state; never its token."""

    id: str
    name: str
    dialect: str
    url: str
    resume_url: str | None
    history: bool
    status: Literal["connecting", "connected", "backoff", "failed", "finished"]
    cursor: str | None
    last_error: str | None
    events_received: int
    events_skipped: int
    created_at: Timestamp
    updated_at: Timestamp | None
    resume_secret: str | None = None


class SourceList(Out):
    """Every source, oldest first."""

    sources: list[SourceOut]
