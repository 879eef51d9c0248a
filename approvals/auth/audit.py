"""The audit trail: admin changes and sign-ins appended to the log as ``audit.*`` events.

An audit event is an ordinary event (it streams, filters and exports like any
other) written in the same transaction as the change it records, so a change
never lands without its trace. ``detail.actor`` names who did it: ``key:NAME``
for an API key, ``user:NAME`` for a reviewer, ``cli:USER`` for the command line.
Secrets never go into an audit event; callers pass names, ids and scopes only.
"""

from __future__ import annotations

import getpass
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from approvals.auth.keys import Principal
from approvals.events.log import LogTransaction

PREFIX = "audit."
SOURCE = "audit"
Record = Callable[..., None]


def actor_of(principal: Principal) -> str:
    """The ``detail.actor`` of an API caller: ``key:NAME`` or ``user:NAME``."""
    return f"{'user' if principal.kind == 'user' else 'key'}:{principal.name}"


def cli_actor() -> str:
    """The ``detail.actor`` of a command-line change: ``cli:`` and the OS user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry for this uid (some containers)
        return "cli:unknown"


def row(action: str, actor: str, title: str, /, **detail: Any) -> dict[str, Any]:
    """A log row for ``audit.<action>``; ``detail`` must never hold a secret."""
    return {
        "type": PREFIX + action,
        "category": "audit",
        "source": SOURCE,
        "title": title,
        "detail": {"actor": actor, **{k: v for k, v in detail.items() if v is not None}},
    }


async def record(tx: LogTransaction, action: str, actor: str, title: str, /, **detail: Any) -> None:
    """Append one audit event inside an open log transaction."""
    await tx.append([row(action, actor, title, **detail)])


class Trail:
    """An admin change in progress: its connection and the audit events it records."""

    def __init__(self, tx: LogTransaction, actor: str) -> None:
        self.tx = tx
        self.conn = tx.conn
        self.actor = actor
        self.rows: list[dict[str, Any]] = []

    def note(self, action: str, title: str, /, **detail: Any) -> None:
        """Record ``audit.<action>``; appended when the change commits."""
        self.rows.append(row(action, self.actor, title, **detail))


@asynccontextmanager
async def change(request: Any) -> AsyncIterator[Trail]:
    """A transaction for an API caller's admin change that commits with its audit events."""
    principal = request.state.principal
    async with request.app.state.services.log.transaction(principal.name) as tx:
        trail = Trail(tx, actor_of(principal))
        yield trail
        if trail.rows:
            await tx.append(trail.rows)
