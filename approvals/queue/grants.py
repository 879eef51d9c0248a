"""Standing grants: a reviewer approving a call may also allow its tool for the same run
(or agent) for a while; later requests in that scope are approved by the grant.

Every rule of grants lives here: what may be granted (``check``), which grant answers a
new request (``matching``), and listing and revoking them. A grant never outlives its
policy's cap (``maxGrantSeconds``, 24 hours when the policy says nothing) nor its scope,
never stands in for a quorum, and never lets through a request its reviewer could not
have decided (the policy's reviewers, self-approval).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import msgspec
from sqlalchemy import select, update

from approvals.core.clock import iso, now_iso
from approvals.core.contract import Body, Out
from approvals.core.errors import ApiError, invalid, not_found
from approvals.events.log import LogTransaction, new_id
from approvals.queue import policy
from approvals.queue.models import Grant

grants_table = Grant.__table__  # type: ignore[attr-defined]

DEFAULT_CAP = 24 * 3600  # the longest grant when the policy sets no maxGrantSeconds
MAX_SECONDS = 30 * 24 * 3600
ACTIVE = "grants.active"  # tx.extras: the grants in force, read once per transaction


class GrantIn(Body):
    """``grant`` on an approving decision: allow this tool for this run or agent."""

    scope: Literal["run", "agent"]
    seconds: int = msgspec.field(default=3600)


class GrantOut(Out):
    """A standing grant: who allowed which tool, for which run or agent, until when."""

    id: str
    tool: str
    scope: str
    run_id: str | None
    agent_id: str | None
    granted_by: str
    approval_id: str
    created_at: str
    expires_at: str
    revoked_at: str | None
    revoked_by: str | None
    uses: int


class GrantList(Out):
    """Grants, newest first."""

    grants: list[GrantOut]


@dataclass(frozen=True)
class Asked:
    """A checked grant request: its scope and how long it lasts."""

    scope: str
    seconds: int


def check(row: dict[str, Any], grant: GrantIn, where: str = "body.grant") -> Asked:
    """What may be granted on approving the approval ``row``; 422 naming why not."""
    if not row["grantable"]:
        raise invalid(where, "the policy of this request does not allow standing grants")
    if not row["tool"]:
        raise invalid(where, "only a tool call can be granted (this request names no tool)")
    if row["min_approvals"] > 1:
        raise invalid(where, "a grant cannot stand in for a quorum of approvals")
    if grant.scope == "run" and not row["run_id"]:
        raise invalid(f"{where}.scope", "this request has no runId to grant for")
    if grant.scope == "agent" and not row["agent_id"]:
        raise invalid(f"{where}.scope", "this request has no agentId to grant for")
    cap = row["max_grant_seconds"] or DEFAULT_CAP
    if not 1 <= grant.seconds <= min(cap, MAX_SECONDS):
        raise invalid(
            f"{where}.seconds",
            f"must be between 1 and {min(cap, MAX_SECONDS)} (the policy's cap)",
        )
    return Asked(grant.scope, grant.seconds)


async def create(tx: LogTransaction, row: dict[str, Any], asked: Asked, by: str) -> dict[str, Any]:
    """Store the grant a reviewer made on approving ``row``; its JSON for the resolution."""
    now = datetime.now(UTC)
    values = {
        "id": new_id("grt"),
        "tool": row["tool"],
        "scope": asked.scope,
        "run_id": row["run_id"] if asked.scope == "run" else None,
        "agent_id": row["agent_id"],
        "granted_by": by,
        "approval_id": row["id"],
        "created_at": iso(now),
        "expires_at": iso(now + timedelta(seconds=asked.seconds)),
        "revoked_at": None,
        "revoked_by": None,
        "uses": 0,
    }
    await tx.insert(grants_table, [values])
    tx.extras.pop(ACTIVE, None)  # in force from the next request on
    return {
        "id": values["id"],
        "scope": asked.scope,
        "seconds": asked.seconds,
        "expiresAt": values["expires_at"],
        "grantedBy": by,
    }


async def matching(tx: LogTransaction, approval: dict[str, Any]) -> dict[str, Any] | None:
    """The grant in force that approves the new ``approval`` (a row being opened under a
    ``require`` policy), or None. The most recent one wins."""
    if not approval["tool"] or not approval["grantable"] or approval["min_approvals"] > 1:
        return None
    active: list[dict[str, Any]] | None = tx.extras.get(ACTIVE)
    if active is None:
        query = select(grants_table).where(
            grants_table.c.revoked_at.is_(None), grants_table.c.expires_at > now_iso()
        )
        rows = (await tx.conn.execute(query)).mappings().all()
        active = tx.extras[ACTIVE] = sorted(
            (dict(r) for r in rows), key=lambda g: g["created_at"], reverse=True
        )
    now = now_iso()
    for grant in active:
        if grant["tool"] != approval["tool"] or grant["expires_at"] <= now:
            continue
        if grant["scope"] == "run":
            if grant["run_id"] is None or grant["run_id"] != approval["run_id"]:
                continue
        elif grant["agent_id"] is None or grant["agent_id"] != approval["agent_id"]:
            continue
        refused = policy.refusal(
            principal=grant["granted_by"],
            requested_by=approval["requested_by"],
            allow_self_approval=approval["allow_self_approval"],
            reviewers=approval["reviewers"],
        )
        if refused is None:
            return grant
    return None


async def used(tx: LogTransaction, grant: dict[str, Any]) -> None:
    """Count one approval decided by ``grant``."""
    await tx.conn.execute(
        update(grants_table)
        .where(grants_table.c.id == grant["id"])
        .values(uses=grants_table.c.uses + 1)
    )
    grant["uses"] += 1


def out(row: Any) -> GrantOut:
    """A grant row as its JSON."""
    return GrantOut.from_row(row)


async def listed(conn: Any, *, everything: bool = False) -> list[GrantOut]:
    """The grants in force (or every grant), newest first."""
    query = select(grants_table).order_by(grants_table.c.created_at.desc()).limit(1000)
    if not everything:
        query = query.where(
            grants_table.c.revoked_at.is_(None), grants_table.c.expires_at > now_iso()
        )
    return [out(r) for r in (await conn.execute(query)).mappings()]


async def revoke(tx: LogTransaction, grant_id: str, by: str) -> GrantOut:
    """End a grant now; 404 when there is none, 409 when it already ended."""
    found = (
        (await tx.conn.execute(select(grants_table).where(grants_table.c.id == grant_id)))
        .mappings()
        .first()
    )
    if found is None:
        raise not_found(f"grant {grant_id}")
    now = now_iso()
    if found["revoked_at"] is not None or found["expires_at"] <= now:
        ended = found["revoked_at"] or found["expires_at"]
        raise ApiError(409, "conflict", f"grant {grant_id} already ended at {ended}")
    await tx.conn.execute(
        update(grants_table)
        .where(grants_table.c.id == grant_id)
        .values(revoked_at=now, revoked_by=by)
    )
    tx.extras.pop(ACTIVE, None)
    return out({**found, "revoked_at": now, "revoked_by": by})
