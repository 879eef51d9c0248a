"""What every channel does with a click, once its platform's signature has been checked:
refuse a replay, find the linked reviewer, say why they may not decide, decide.

The platform modules (``http/api/slack.py``, ``discord.py``, ``teams.py``) verify and
parse; the answers they show people come from here, so every channel says the same.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from approvals.auth.users import users_table
from approvals.core.errors import ApiError
from approvals.delivery.channels.catalog import CHANNELS
from approvals.delivery.channels.models import interaction_receipts_table as receipts
from approvals.queue import policy, service

log = logging.getLogger("approvals.notify")

# Each platform's option to link an account, for the refusal that names it.
LINK_OPTION = {"slack": "--slack-user", "discord": "--discord-user", "teams": "--teams-user"}


def not_linked(channel: str, user_id: str | None = None) -> str:
    """What an unlinked account is told: nothing was decided, and how an admin links it."""
    label = CHANNELS[channel].label
    shown = (
        user_id
        if user_id and user_id.isascii() and len(user_id) <= 64
        else f"YOUR_{label.upper()}_ID"
    )
    return (
        f"Your {label} account is not linked to an approvals reviewer, so nothing was decided. "
        f"An admin can link it: approvals users update NAME {LINK_OPTION[channel]} {shown}"
    )


async def first_seen(services: Any, material: bytes, keep_seconds: float) -> bool:
    """Record a signed interaction by the SHA-256 of ``material`` (what identifies it);
    False when any instance recorded it before (a replay). Receipts older than
    ``keep_seconds`` (past which no replay passes the signature check) are forgotten."""
    digest = hashlib.sha256(material).hexdigest()
    now = time.time()
    try:
        async with services.log.writer(), services.engine.begin() as conn:
            await conn.execute(insert(receipts).values(digest=digest, seen_at=now))
    except IntegrityError:
        return False
    try:  # forget receipts no replay can match any more; another instance may do it too
        async with services.log.writer(), services.engine.begin() as conn:
            await conn.execute(delete(receipts).where(receipts.c.seen_at < now - keep_seconds))
    except SQLAlchemyError as exc:
        log.warning("forgetting old interaction receipts failed (retried later): %s", exc)
    return True


async def reviewer_for(engine: Any, channel: str, user_id: str) -> str | None:
    """The one active reviewer linked to ``user_id`` on ``channel``, or None."""
    column = users_table.c[CHANNELS[channel].contact]
    if channel == "teams":
        user_id = user_id.lower()  # AAD object ids are stored lower-case
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(users_table.c.username)
                .where(column == user_id, users_table.c.disabled.is_(False))
                .limit(2)
            )
        ).all()
    return rows[0][0] if len(rows) == 1 else None


async def refusal(services: Any, approval_id: str, reviewer: str) -> str | None:
    """Why ``reviewer`` may not decide the approval now (the policy's one rule), or None.
    Asked before a form opens; the decision checks again."""
    try:
        approval = await service.fetch(services.engine, approval_id)
    except ApiError as exc:
        return exc.message
    if approval["status"] != "pending":
        return (
            f"Nothing was decided: it was already {approval['status']} by {approval['resolvedBy']}."
        )
    reason = policy.refusal(
        principal=reviewer,
        requested_by=approval["requestedBy"],
        allow_self_approval=approval["allowSelfApproval"],
        reviewers=approval["reviewers"],
    )
    return f"Nothing was decided: {reason}" if reason else None


async def decide(
    services: Any,
    approval_id: str,
    reviewer: str,
    decision: str,
    *,
    digest: str | None = None,
    comment: str | None = None,
) -> str | None:
    """Decide as ``reviewer`` through the one decision path. Returns what to tell them
    when it was not the end of it (refused, or one vote of several), else None."""
    values: dict[str, Any] = {"decision": decision}
    if digest is not None:
        values["arguments_digest"] = digest
    if comment is not None:
        values["comment"] = comment
    try:
        await service.decide(services.log, approval_id, reviewer, values)
    except ApiError as exc:
        return f"Nothing was decided: {exc.message}"
    if decision != "approve":
        return None
    approval = await service.fetch(services.engine, approval_id)
    if approval["status"] == "pending":
        return (
            f"Your approval counts: {len(approval['votes'])} of {approval['minApprovals']} so far."
        )
    return None
