"""Opening, deciding and expiring approvals, each in the transaction that logs it."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from approvals.core.clock import iso, now_iso, parse_iso
from approvals.core.errors import ApiError, invalid, not_found
from approvals.core.metrics import TIME_TO_DECISION
from approvals.digest import Unsignable, approved_arguments, arguments_digest
from approvals.events import redaction
from approvals.events.log import EventLog, LogTransaction, events_table, new_id
from approvals.events.schema import to_json
from approvals.events.writer import prepared
from approvals.queue import display, grants, policy
from approvals.queue.models import Approval, Policy, Vote

logger = logging.getLogger("approvals.queue")

approvals_table = Approval.__table__  # type: ignore[attr-defined]
votes_table = Vote.__table__  # type: ignore[attr-defined]
policies_table = Policy.__table__  # type: ignore[attr-defined]

OPENED = "approvals.opened"  # tx.extras: approval id -> full JSON of approvals opened in it
OPTIONS_KEY = "_approval"  # per-row options set by POST /v1/approvals, removed before insert
EFFECTIVE = "effective"  # the policy that governs a request, chosen in prepare
FINAL = {"approve": "approved", "reject": "rejected", "answer": "answered"}
SYSTEM_POLICY = "system:policy"
SYSTEM_TIMEOUT = "system:timeout"
WITHDRAWN = "withdrawn"  # the status of an approval its requester withdrew

# The statements of the decision path, built once: building and cache-keying a new
# statement per call cost more CPU than SQLite spends running it.
APPROVAL_BY_ID = select(approvals_table).where(approvals_table.c.id == bindparam("approval_id"))
# An approval and its request event in one statement (the event's columns prefixed).
APPROVAL_WITH_REQUEST = prepared(
    select(approvals_table, *(c.label(f"request_{c.name}") for c in events_table.columns))
    .join(events_table, events_table.c.id == approvals_table.c.event_id)
    .where(approvals_table.c.id == bindparam("approval_id"))
)
EVENTS_BY_IDS = select(events_table).where(
    events_table.c.id.in_(bindparam("event_ids", expanding=True))
)
VOTES_OF = prepared(
    select(votes_table)
    .where(votes_table.c.approval_id == bindparam("approval_id"))
    .order_by(votes_table.c.id)
)
# SET takes the columns the parameters name; only a pending approval is resolved.
RESOLVE = prepared(
    update(approvals_table).where(
        approvals_table.c.id == bindparam("approval_id"), approvals_table.c.status == "pending"
    )
)
ALL_POLICIES = prepared(select(policies_table))


def is_request(row: dict[str, Any]) -> bool:
    """Tell whether an event asks for a human: a steering request or a pending approval."""
    return row.get("type") == "steering_request" or row.get("status") == "pending_approval"


class OpenApprovals:
    """The append hook that opens one approval per request event."""

    async def before(self, tx: LogTransaction, rows: list[dict[str, Any]]) -> None:
        """Read the policies when a request is among the rows (``prepare`` needs them)."""
        if any(row.get("approval_id") is None and is_request(row) for row in rows):
            await load_rules(tx)

    def prepare(self, tx: LogTransaction, rows: list[dict[str, Any]]) -> None:
        """Give each request event its approval id, pending status and the policy that
        governs it (whose redaction paths the event keeps)."""
        opening = tx.extras.setdefault("opening", {})
        rules = tx.extras.get("policies") or []
        for row in rows:
            options = row.pop(OPTIONS_KEY, None)
            if row.get("approval_id") is None and is_request(row):
                row["approval_id"] = new_id("apr")
                row["status"] = "pending_approval"
                effective = policy.select(rules, row.get("agent_id"), _tool(row))
                row["redact"] = list(effective.redact) if effective.redact else None
                opening[row["id"]] = {**(options or {}), EFFECTIVE: effective}

    async def after(self, tx: LogTransaction, rows: list[dict[str, Any]]) -> None:
        """Insert the approvals, then apply auto-approve and deny policies."""
        opening = tx.extras.get("opening", {})
        opened = [row for row in rows if row["id"] in opening]
        if not opened:
            return
        answers = tx.extras.setdefault(OPENED, {})
        for row in opened:
            options = opening.pop(row["id"])
            detail = row.get("detail") or {}
            tool = _tool(row)
            effective: policy.Effective = options[EFFECTIVE]
            timeout = options.get("timeout_seconds")
            approval = {
                "id": row["approval_id"],
                "event_id": row["id"],
                "status": "pending",
                "title": row.get("title"),
                "tool": tool,
                "arguments": detail.get("arguments"),
                "agent_id": row.get("agent_id"),
                "thread_id": row.get("thread_id"),
                "run_id": row.get("run_id"),
                "source": row["source"],
                "requested_by": tx.actor,
                "callback_url": options.get("callback_url"),
                "timeout_at": iso(datetime.now(UTC) + timedelta(seconds=timeout))
                if timeout
                else None,
                "on_timeout": options.get("on_timeout", "reject"),
                "policy_id": effective.policy_id,
                "min_approvals": effective.min_approvals,
                "allow_self_approval": effective.allow_self_approval,
                "reviewers": list(effective.reviewers) if effective.reviewers else None,
                "require_reason": effective.require_reason,
                "require_reason_on_approve": effective.require_reason_on_approve,
                "confirm": effective.confirm,
                "risk": effective.risk,
                "allowed_decisions": _allowed(detail.get("allowedDecisions")),
                "allow_edit": detail.get("allowEdit") is not False,
                "claimed_by": None,
                "claimed_until": None,
                "assigned_to": None,
                "assigned_by": None,
                "delegated_from": None,
                "created_at": row["created_at"],
                "resolved_at": None,
                "resolved_by": None,
                "decision": None,
                "comment": None,
                "answer": None,
                "edited_arguments": None,
                "resolution_event_id": None,
                "executed_at": None,
                "executed_by": None,
                "executed_digest": None,
                "redact": list(effective.redact) if effective.redact else None,
                "display": effective.display,
                "grantable": effective.grantable,
                "max_grant_seconds": effective.max_grant_seconds,
                "grant_id": None,
            }
            await tx.insert(approvals_table, [approval])
            if effective.action == "auto_approve":
                answer = await finish(
                    tx,
                    row["approval_id"],
                    "approve",
                    SYSTEM_POLICY,
                    request_row=row,
                    approval_row=approval,
                )
            elif effective.action == "deny":
                reason = f"denied by policy {effective.policy_id}"
                answer = await finish(
                    tx,
                    row["approval_id"],
                    "reject",
                    SYSTEM_POLICY,
                    comment=reason,
                    request_row=row,
                    approval_row=approval,
                )
            elif (grant := await grants.matching(tx, approval)) is not None:
                await grants.used(tx, grant)
                answer = await finish(
                    tx,
                    row["approval_id"],
                    "approve",
                    f"grant:{grant['id']}",
                    comment=f"approved by a standing grant of {grant['granted_by']}",
                    grant={
                        "id": grant["id"],
                        "grantedBy": grant["granted_by"],
                        "scope": grant["scope"],
                        "expiresAt": grant["expires_at"],
                        "approvalId": grant["approval_id"],
                    },
                    grant_id=grant["id"],
                    request_row=row,
                    approval_row=approval,
                )
            else:
                answer = approval_json(approval)
                answer["request"] = to_json(row)
                answer["resolution"] = None
            answers[row["approval_id"]] = answer


def _tool(row: dict[str, Any]) -> str | None:
    detail = row.get("detail") or {}
    tool = detail.get("tool") if isinstance(detail, dict) else None
    return tool if isinstance(tool, str) else None


def _allowed(raw: Any) -> list[str] | None:
    if not isinstance(raw, list):
        return None
    return list(policy.allowed([d for d in raw if isinstance(d, str)]))


async def load_rules(tx: LogTransaction) -> list[policy.Rule]:
    """Every stored policy as a pure rule (read once per transaction)."""
    cached: list[policy.Rule] | None = tx.extras.get("policies")
    if cached is None:
        cached = tx.extras["policies"] = await _read_rules(tx)
    return cached


async def _read_rules(tx: LogTransaction) -> list[policy.Rule]:
    rows = (await tx.conn.execute(ALL_POLICIES)).mappings().all()
    return [
        policy.Rule(
            id=r["id"],
            agent_id=r["agent_id"],
            tool=r["tool"],
            action=r["action"],
            min_approvals=r["min_approvals"],
            allow_self_approval=r["allow_self_approval"],
            reviewers=tuple(r["reviewers"]) if r["reviewers"] else None,
            created_at=r["created_at"],
            require_reason=r["require_reason"],
            require_reason_on_approve=r["require_reason_on_approve"],
            confirm=r["confirm"],
            risk=r["risk"],
            redact=tuple(r["redact"]) if r["redact"] else None,
            display=r["display"],
            grantable=r["grantable"],
            max_grant_seconds=r["max_grant_seconds"],
        )
        for r in rows
    ]


async def _decide(
    tx: LogTransaction,
    approval_id: str,
    *,
    decision: str,
    principal: str,
    comment: str | None = None,
    answer: str | None = None,
    arguments: Any = None,
    arguments_digest: str | None = None,
    grant: grants.GrantIn | None = None,
) -> dict[str, Any] | None:
    """Record one reviewer's decision; raise 404, 403 or 409 without changing anything.

    ``arguments_digest`` is the digest of the arguments the reviewer was shown: when
    they have changed since (another reviewer's edit), the answer is 409 ``stale``.
    Returns the resolved approval's full JSON (as ``fetch_in`` gives it), or None
    when the decision was a vote and the approval stays pending.
    """
    row, request = await _load_with_request(tx, approval_id)
    if row["status"] != "pending":
        raise _conflict(row)
    if arguments_digest is not None:
        check_digest(row, arguments_digest, "body.argumentsDigest")
    if arguments is not None and row["redact"]:
        # A reviewer was shown "[redacted]" for these values: sent back, they stay as are.
        arguments = redaction.restore(arguments, current_arguments(row), row["redact"])
    detail = request.get("detail") or {}
    allowed = detail.get("allowedDecisions")
    if isinstance(allowed, list) and decision not in allowed:
        raise invalid("body.decision", f"this request allows only {', '.join(allowed)}")
    if arguments is not None and detail.get("allowEdit") is False:
        raise invalid("body.arguments", "this request does not allow edited arguments")
    if not (comment or "").strip() and policy.needs_reason(
        decision,
        require_reason=row["require_reason"],
        require_reason_on_approve=row["require_reason_on_approve"],
    ):
        verb = "a reject" if decision == "reject" else "an approval"
        raise invalid("body.comment", f"the policy requires a reason: {verb} needs a comment")
    reason = policy.refusal(
        principal=principal,
        requested_by=row["requested_by"],
        allow_self_approval=row["allow_self_approval"],
        reviewers=row["reviewers"],
    )
    if reason is not None:
        raise ApiError(403, "forbidden", reason)
    asked = grants.check(row, grant) if grant is not None else None
    if decision == "approve" and row["min_approvals"] > 1:
        votes = await _votes(tx, approval_id)
        if principal in [v["principal"] for v in votes]:
            raise ApiError(
                409,
                "conflict",
                f"{principal!r} already approved; {len(votes)} of "
                f"{row['min_approvals']} approvals so far",
            )
        voters = [v["principal"] for v in votes] + [principal]
        if arguments is not None:
            # A pending edit: the next reviewers are shown (and sign) the edited call.
            edits = {**(_object(row["edited_arguments"]) or {}), **arguments}
            await tx.conn.execute(
                update(approvals_table)
                .where(approvals_table.c.id == approval_id)
                .values(edited_arguments=edits)
            )
            row = {**row, "edited_arguments": edits}
            arguments = None  # laid over the call already
        vote_event = (
            await tx.append(
                [
                    _derived(
                        request,
                        "approval.vote",
                        status="pending_approval",
                        title=f"{principal} approved ({len(voters)} of {row['min_approvals']})",
                        detail={
                            "approvalId": approval_id,
                            "requestEventId": str(row["event_id"]),
                            "by": principal,
                            "decision": "approve",
                            "comment": comment,
                            "approvals": len(voters),
                            "needed": row["min_approvals"],
                        },
                    )
                ],
            )
        )[0]
        await tx.insert(
            votes_table,
            [
                {
                    "approval_id": approval_id,
                    "principal": principal,
                    "decision": "approve",
                    "comment": comment,
                    "created_at": vote_event["createdAt"],
                    "event_id": int(vote_event["id"]),
                }
            ],
        )
        if not policy.tally(row["min_approvals"], voters):
            return None
    granted = await grants.create(tx, row, asked, principal) if asked is not None else None
    return await finish(
        tx,
        approval_id,
        decision,
        principal,
        comment=comment,
        answer=answer,
        arguments=arguments,
        grant=granted,
        request_row=request,
        approval_row=row,
    )


async def decide(
    log: EventLog,
    approval_id: str,
    principal: str,
    values: dict[str, Any],
    *,
    confirm: str | None = None,
    also: Callable[[LogTransaction], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    """Decide in a group-committed transaction: the one way every channel decides.

    ``values`` are ``decision`` and optionally ``comment``, ``answer`` and ``arguments``
    (the API checks them with ``check_decision``; the dashboard, Slack and email links
    build them). ``also`` runs in the same transaction after the decision (an email link
    marks itself used), so both land or neither. ``confirm`` re-checks a cached API key
    in the transaction. Raises 404, 403, 409 or 422 without changing anything; returns
    the approval's full JSON as it stands after the decision.
    """

    async def work(tx: LogTransaction) -> dict[str, Any]:
        resolved = await _decide(tx, approval_id, principal=principal, **values)
        if also is not None:
            await also(tx)
        if resolved is not None:
            return resolved  # built from the rows in hand
        # A vote toward a quorum: the approval as it now stands, read in the same transaction.
        return await fetch_in(tx.conn, approval_id, full=True)

    # Group-committed with appends and other decisions (one thread hop on SQLite).
    return observed(await log.run(work, principal, confirm))


def observed(approval: dict[str, Any]) -> dict[str, Any]:
    """Record a committed resolution's time to decision in ``/metrics``; return it."""
    if approval["status"] != "pending" and approval.get("resolvedAt"):
        waited = parse_iso(approval["resolvedAt"]) - parse_iso(approval["createdAt"])
        seconds = waited.total_seconds()
        TIME_TO_DECISION.labels(outcome=approval["status"]).observe(max(seconds, 0.0))
    return approval


async def open_one(
    log: EventLog,
    row: dict[str, Any],
    options: dict[str, Any],
    principal: str,
    confirm: str | None,
) -> dict[str, Any]:
    """Open an approval (``row`` and ``options`` from ``request_row``) in a group commit.

    Returns the approval's full JSON; with the ``externalId`` of an earlier request,
    that request's approval as it stands; 409 when that earlier event is no request.
    """

    async def work(tx: LogTransaction) -> tuple[dict[str, Any], dict[str, Any] | None]:
        (stored,) = await tx.append([{**row, OPTIONS_KEY: options}])
        if stored["approvalId"] is None:
            return stored, None
        answer = tx.extras.get(OPENED, {}).get(stored["approvalId"])
        if answer is not None:
            return stored, answer  # opened now: built from the rows in hand
        # An earlier request with this externalId: read in the same transaction.
        return stored, await fetch_in(tx.conn, stored["approvalId"], full=True)

    event, approval = await log.run(work, principal, confirm)
    if approval is None:
        # The source and externalId name an earlier event that is not an approval request.
        raise ApiError(
            409,
            "conflict",
            f"externalId {row.get('external_id')!r} is already used by event {event['id']}, "
            "which is not an approval request; choose another externalId",
            field="body.externalId",
        )
    return approval


async def finish(
    tx: LogTransaction,
    approval_id: str,
    decision: str | None,
    resolved_by: str,
    *,
    comment: str | None = None,
    answer: str | None = None,
    arguments: Any = None,
    expired: bool = False,
    grant: dict[str, Any] | None = None,
    grant_id: str | None = None,
    request_row: dict[str, Any],
    approval_row: dict[str, Any],
) -> dict[str, Any]:
    """Resolve an approval: its row, its request event, and a new resolution event.

    ``decision`` None is a withdrawal by its requester (status ``withdrawn``).
    Returns the approval's full JSON, built from the rows in hand.
    """
    row, request = approval_row, request_row
    status = WITHDRAWN if decision is None else "expired" if expired else FINAL[decision]
    pending_edits = _object(row["edited_arguments"])
    if pending_edits is not None:  # edits of earlier votes, under this decision's own
        arguments = {**pending_edits, **(arguments or {})}
    signed = current_digest({**row, "edited_arguments": arguments})
    at = now_iso()
    votes = await _votes(tx, approval_id) if row["min_approvals"] > 1 else []
    event_type = "approval.expired" if expired else "approval.resolved"
    verb = {"approved": "Approved", "rejected": "Rejected", "answered": "Answered"}
    verb[WITHDRAWN] = "Withdrawn"
    title = (
        f"Expired ({'approved' if decision == 'approve' else 'rejected'} on timeout)"
        if expired
        else f"{verb[status]} by {resolved_by}"
    )
    resolution = (
        await tx.append(
            [
                _derived(
                    request,
                    event_type,
                    status=status,
                    title=f"{title}: {row['title'] or ''}".rstrip(": "),
                    detail={
                        "approvalId": approval_id,
                        "requestEventId": str(row["event_id"]),
                        "decision": decision,
                        "outcome": status if status != "expired" else FINAL[decision or ""],
                        "comment": comment,
                        "answer": answer,
                        "arguments": arguments,
                        "originalArguments": row["arguments"],
                        "edited": arguments is not None
                        and approved_arguments(row["arguments"], arguments) != row["arguments"],
                        "argumentsDigest": signed,
                        "votes": [v["principal"] for v in votes],
                        "tool": row["tool"],
                        **({"grant": grant} if grant is not None else {}),
                        **_assignment(row),
                    },
                    resolved_at=at,
                    resolved_by=resolved_by,
                )
            ],
        )
    )[0]
    resolved = {
        "status": status,
        "resolved_at": at,
        "resolved_by": resolved_by,
        "decision": decision,
        "comment": comment,
        "answer": answer,
        "edited_arguments": arguments,
        "resolution_event_id": int(resolution["id"]),
        "claimed_by": None,
        "claimed_until": None,
    }
    if grant_id is not None:
        resolved["grant_id"] = grant_id
    await tx.conn.execute(RESOLVE, {"approval_id": approval_id, **resolved})
    await tx.update_event(row["event_id"], status=status, resolved_at=at, resolved_by=resolved_by)
    request.update(status=status, resolved_at=at, resolved_by=resolved_by)
    for hook in tx.hooks:
        on_resolved = getattr(hook, "resolved", None)
        if on_resolved is not None:
            await on_resolved(tx, row, resolution)
    out = approval_json({**row, **resolved}, votes)
    out["request"] = to_json(request)
    out["resolution"] = resolution
    return out


async def withdraw(
    log: EventLog, approval_id: str, principal: str, *, confirm: str | None = None
) -> dict[str, Any]:
    """End a pending approval as ``withdrawn`` at its requester's wish, in a group commit.

    Only the key that requested it may (403 for any other); 404 when there is none; 409
    when it is already resolved or expired. Returns the approval's full JSON.
    """

    async def work(tx: LogTransaction) -> dict[str, Any]:
        row, request = await _load_with_request(tx, approval_id)
        _requester_only(row, principal, "withdraw it")
        if row["status"] != "pending":
            raise _conflict(row)
        return await finish(tx, approval_id, None, principal, request_row=request, approval_row=row)

    return observed(await log.run(work, principal, confirm))


def _requester_only(row: dict[str, Any], principal: str, what: str) -> None:
    """403 unless ``principal`` is the key that requested the approval ``row``."""
    if row["requested_by"] != principal:
        raise ApiError(
            403,
            "forbidden",
            f"only the key that requested approval {row['id']} "
            f"({row['requested_by']!r}) may {what}; this key is {principal!r}",
        )


def approved(row: Any) -> bool:
    """Tell whether an approval lets its call run: approved by a reviewer, a policy,
    a grant, or on timeout."""
    return row["decision"] == "approve" and row["status"] in ("approved", "expired")


async def record_execution(
    log: EventLog, approval_id: str, principal: str, digest: str, *, confirm: str | None = None
) -> dict[str, Any]:
    """Record that the approved call of ``approval_id`` runs now, with arguments whose
    digest is ``digest``: once only (``approval.executed`` in the log).

    Only the requesting key may (403); 409 ``not_approved`` unless it was approved,
    ``already_executed`` the second time, ``stale`` for arguments other than the
    approved ones. Returns the approval's full JSON.
    """

    async def work(tx: LogTransaction) -> dict[str, Any]:
        row, request = await _load_with_request(tx, approval_id)
        _requester_only(row, principal, "record its execution")
        if not approved(row):
            raise ApiError(
                409,
                "not_approved",
                f"approval {approval_id} is {row['status']}"
                + (
                    f" ({row['decision']})"
                    if row["decision"] and row["status"] == "expired"
                    else ""
                )
                + "; only an approved call may run",
                status=row["status"],
            )
        if row["executed_at"] is not None:
            raise ApiError(
                409,
                "already_executed",
                f"approval {approval_id} was already executed at {row['executed_at']} by "
                f"{row['executed_by']}; an approval runs its call once",
                executedAt=row["executed_at"],
            )
        check_digest(row, digest, "body.argumentsDigest")
        at = now_iso()
        done = await tx.conn.execute(
            update(approvals_table)
            .where(approvals_table.c.id == approval_id, approvals_table.c.executed_at.is_(None))
            .values(executed_at=at, executed_by=principal, executed_digest=digest)
        )
        if done.rowcount != 1:  # pragma: no cover - the transaction serialises writers
            raise ApiError(409, "already_executed", f"approval {approval_id} was just executed")
        await tx.append(
            [
                _derived(
                    request,
                    "approval.executed",
                    status=row["status"],
                    title=f"Executed: {row['title'] or row['tool'] or approval_id}",
                    detail={
                        "approvalId": approval_id,
                        "requestEventId": str(row["event_id"]),
                        "tool": row["tool"],
                        "argumentsDigest": digest,
                        "by": principal,
                    },
                )
            ]
        )
        return await fetch_in(tx.conn, approval_id, full=True)

    return await log.run(work, principal, confirm)


CLAIM_SECONDS = 15 * 60
ASSIGN_SECONDS = 24 * 3600  # an assignment holds the claim this long (or to the timeout)


def _assignment(row: Any) -> dict[str, Any]:
    """Who handed the request to whom, for its resolution (nothing when nobody did)."""
    if row["assigned_by"] is None:
        return {}
    return {
        "assignedTo": row["assigned_to"],
        "assignedBy": row["assigned_by"],
        "delegatedFrom": row["delegated_from"],
    }


async def assign(
    tx: LogTransaction,
    approval_id: str,
    to: str,
    by: str,
    *,
    delegated_from: str | None = None,
) -> dict[str, Any]:
    """Hand a pending request to reviewer ``to`` (claimed by them) on ``by``'s word; log it.
    ``delegated_from`` names the away reviewer it was meant for. Returns the approval row."""
    row, request = await _load_with_request(tx, approval_id)
    if row["status"] != "pending":
        raise _conflict(row)
    reason = policy.refusal(
        principal=to,
        requested_by=row["requested_by"],
        allow_self_approval=row["allow_self_approval"],
        reviewers=row["reviewers"],
    )
    if reason is not None:
        raise invalid("body.to", reason)
    until = datetime.now(UTC) + timedelta(seconds=ASSIGN_SECONDS)
    if row["timeout_at"]:
        until = min(until, parse_iso(row["timeout_at"]))
    values = {
        "assigned_to": to,
        "assigned_by": by,
        "delegated_from": delegated_from,
        "claimed_by": to,
        "claimed_until": iso(until),
    }
    for_whom = f" for {delegated_from}, who is away" if delegated_from else ""
    await tx.append(
        [
            _derived(
                request,
                "approval.assigned",
                title=f"{by} handed the request to {to}{for_whom}",
                detail={
                    "approvalId": approval_id,
                    "requestEventId": str(row["event_id"]),
                    "by": by,
                    "to": to,
                    "delegatedFrom": delegated_from,
                    "until": values["claimed_until"],
                    "previous": row["assigned_to"],
                },
            )
        ]
    )
    await tx.conn.execute(
        update(approvals_table).where(approvals_table.c.id == approval_id).values(**values)
    )
    return {**row, **values}


async def claim(
    tx: LogTransaction, approval_id: str, principal: str, *, release: bool = False
) -> None:
    """Claim a pending request for ``principal`` (or release its claim); log it."""
    row, request = await _load_with_request(tx, approval_id)
    if row["status"] != "pending":
        raise _conflict(row)
    holder = row["claimed_by"] if (row["claimed_until"] or "") > now_iso() else None
    if release and holder != principal:
        raise ApiError(409, "conflict", f"{principal!r} holds no claim on approval {approval_id}")
    until = None if release else iso(datetime.now(UTC) + timedelta(seconds=CLAIM_SECONDS))
    await tx.append(
        [
            _derived(
                request,
                "approval.released" if release else "approval.claimed",
                title=f"{principal} released the request" if release else f"{principal} is on it",
                detail={
                    "approvalId": approval_id,
                    "requestEventId": str(row["event_id"]),
                    "by": principal,
                    "until": until,
                    "previous": holder,
                },
            )
        ]
    )
    await tx.conn.execute(
        update(approvals_table)
        .where(approvals_table.c.id == approval_id)
        .values(claimed_by=None if release else principal, claimed_until=until)
    )


def _derived(request: dict[str, Any], event_type: str, **values: Any) -> dict[str, Any]:
    return {
        "type": event_type,
        "category": "approval",
        "source": "approvals",
        "agent_id": request.get("agent_id"),
        "thread_id": request.get("thread_id"),
        "run_id": request.get("run_id"),
        "approval_id": request.get("approval_id"),
        "redact": request.get("redact"),
        **values,
    }


async def _load_with_request(
    tx: LogTransaction, approval_id: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """An approval's row and its request event's, in one statement; 404 when there is none."""
    found = (
        (await tx.conn.execute(APPROVAL_WITH_REQUEST, {"approval_id": approval_id}))
        .mappings()
        .first()
    )
    if found is None:
        raise not_found(f"approval {approval_id}")
    row = {c.name: found[c.name] for c in approvals_table.columns}
    request = {c.name: found[f"request_{c.name}"] for c in events_table.columns}
    return row, request


async def _votes(tx: LogTransaction, approval_id: str) -> list[dict[str, Any]]:
    rows = await tx.conn.execute(VOTES_OF, {"approval_id": approval_id})
    return [dict(r) for r in rows.mappings()]


def _conflict(row: dict[str, Any]) -> ApiError:
    by = row["resolved_by"]
    if row["status"] == "expired":
        message = f"approval {row['id']} expired at {row['resolved_at']}"
    else:
        message = (
            f"approval {row['id']} was already {row['status']} by {by} at {row['resolved_at']}"
        )
    return ApiError(
        409,
        "conflict",
        message,
        status=row["status"],
        resolvedBy=by,
        resolvedAt=row["resolved_at"],
    )


EXPIRY_RETRY = 30.0  # seconds before an approval whose expiry failed is tried again


class Held:
    """Approvals whose expiry failed, held back for ``retry`` seconds while the others
    expire: one approval that cannot be resolved never stops the rest."""

    def __init__(self, retry: float | None = None) -> None:
        self.retry = EXPIRY_RETRY if retry is None else retry
        self._until: dict[str, float] = {}  # approval id -> monotonic time of the next try

    def hold(self, approval_id: str) -> None:
        """Hold ``approval_id`` back until ``retry`` seconds from now."""
        self._until[approval_id] = time.monotonic() + self.retry

    def current(self) -> list[str]:
        """The approvals still held back; those whose time has come are let go."""
        clock = time.monotonic()
        self._until = {a: until for a, until in self._until.items() if until > clock}
        return list(self._until)

    def next_try(self) -> float | None:
        """Seconds until the first held approval may be tried again (None: none held)."""
        if not self._until:
            return None
        return max(min(self._until.values()) - time.monotonic(), 0.0)


async def expire_due(log: EventLog, now: str | None = None, held: Held | None = None) -> int:
    """Resolve every pending approval whose deadline has passed; return how many.

    With ``held``, an approval whose expiry fails is logged and held back while the
    others go on (and held ones are left out of the query, so they cannot crowd out
    the rest of a batch); without it the failure is raised.
    """
    moment = now or now_iso()
    skip = held.current() if held is not None else []
    query = (
        select(approvals_table.c.id, approvals_table.c.on_timeout)
        .where(
            approvals_table.c.status == "pending",
            approvals_table.c.timeout_at.is_not(None),
            approvals_table.c.timeout_at <= moment,
        )
        .order_by(approvals_table.c.timeout_at)
        .limit(500)
    )
    if skip:
        query = query.where(approvals_table.c.id.not_in(skip))
    async with log.engine.connect() as conn:
        due = (await conn.execute(query)).all()
    done = 0
    for approval_id, on_timeout in due:
        try:
            done += await _expire_one(log, approval_id, on_timeout)
        except Exception:
            if held is None:
                raise
            logger.exception("approval %s: expiring it failed; trying again later", approval_id)
            held.hold(approval_id)
    return done


async def _expire_one(log: EventLog, approval_id: str, on_timeout: str) -> int:
    async with log.transaction(SYSTEM_TIMEOUT) as tx:
        row, request = await _load_with_request(tx, approval_id)
        if row["status"] != "pending":
            return 0  # another process, or a human, got there first
        decision = "approve" if on_timeout == "approve" else "reject"
        expired = await finish(
            tx,
            approval_id,
            decision,
            SYSTEM_TIMEOUT,
            expired=True,
            request_row=request,
            approval_row=row,
        )
    observed(expired)  # committed
    return 1


async def next_deadline(engine: AsyncEngine) -> datetime | None:
    """The earliest deadline of a pending approval, if any has one."""
    async with engine.connect() as conn:
        earliest = (
            await conn.execute(
                select(func.min(approvals_table.c.timeout_at)).where(
                    approvals_table.c.status == "pending",
                    approvals_table.c.timeout_at.is_not(None),
                )
            )
        ).scalar()
    return parse_iso(earliest) if earliest else None


def opens_approval(event: dict[str, Any]) -> bool:
    """Tell whether a stored event opened an approval (which may bring a new deadline)."""
    return event.get("approvalId") is not None and event.get("status") == "pending_approval"


def _object(value: Any) -> dict[str, Any] | None:
    """Arguments as every reader serves them: an object, or null. Ingest refuses anything
    else; a row stored before that check is served with null (its request event keeps
    what the agent sent)."""
    return value if isinstance(value, dict) else None


def current_arguments(row: Any) -> dict[str, Any] | None:
    """The arguments an approval stands for now: the request's, with reviewers' edits
    (a quorum's pending ones, or the approved ones) laid over them."""
    return approved_arguments(_object(row["arguments"]), _object(row["edited_arguments"]))


def current_digest(row: Any) -> str | None:
    """``argumentsDigest``: the digest of ``current_arguments`` (None only for a row
    stored before ingest refused arguments that cannot be signed)."""
    return _signed(current_arguments(row))


def _signed(arguments: dict[str, Any] | None) -> str | None:
    try:
        return arguments_digest(arguments)
    except Unsignable:
        return None


def _headline(row: Any, arguments: dict[str, Any] | None) -> str | None:
    """The request's headline: its policy's display template over ``arguments`` (the
    current ones) as people see them (redacted), or its title."""
    if not row["display"]:
        return row["title"]
    values = {
        "arguments": redaction.redact(arguments or {}, row["redact"]),
        "tool": row["tool"],
        "agent": row["agent_id"],
        "run": row["run_id"],
        "title": row["title"],
    }
    return display.headline(row["display"], values, row["title"])


def check_digest(row: Any, shown: str, field: str) -> None:
    """409 ``stale`` when ``shown`` is not the digest of the approval's arguments now."""
    now = current_digest(row)
    if shown != now:
        raise ApiError(
            409,
            "stale",
            f"the arguments of approval {row['id']} changed after they were shown "
            f"(shown {shown}, now {now}); reload it and decide on what it asks now",
            field=field,
            argumentsDigest=now,
        )


def approval_json(row: Any, votes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The public JSON of an approval."""
    current = current_arguments(row)
    return {
        "id": row["id"],
        "status": row["status"],
        "title": row["title"],
        "tool": row["tool"],
        "arguments": _object(row["arguments"]),
        "agentId": row["agent_id"],
        "threadId": row["thread_id"],
        "runId": row["run_id"],
        "source": row["source"],
        "requestEventId": str(row["event_id"]),
        "requestedBy": row["requested_by"],
        "callbackUrl": row["callback_url"],
        "expiresAt": row["timeout_at"],
        "onTimeout": row["on_timeout"],
        "policyId": row["policy_id"],
        "minApprovals": row["min_approvals"],
        "allowSelfApproval": row["allow_self_approval"],
        "reviewers": row["reviewers"],
        "requireReason": row["require_reason"],
        "requireReasonOnApprove": row["require_reason_on_approve"],
        "confirm": row["confirm"],
        "risk": row["risk"],
        "allowedDecisions": list(policy.allowed(row["allowed_decisions"])),
        "allowEdit": row["allow_edit"],
        "claimedBy": row["claimed_by"],
        "claimedUntil": row["claimed_until"],
        "assignedTo": row["assigned_to"],
        "assignedBy": row["assigned_by"],
        "delegatedFrom": row["delegated_from"],
        "createdAt": row["created_at"],
        "resolvedAt": row["resolved_at"],
        "resolvedBy": row["resolved_by"],
        "decision": row["decision"],
        "comment": row["comment"],
        "answer": row["answer"],
        "editedArguments": _object(row["edited_arguments"]),
        "argumentsDigest": _signed(current),
        "redact": row["redact"],
        "headline": _headline(row, current),
        "grantId": row["grant_id"],
        "grantable": row["grantable"],
        "maxGrantSeconds": row["max_grant_seconds"],
        "execution": {
            "at": row["executed_at"],
            "by": row["executed_by"],
            "argumentsDigest": row["executed_digest"],
        }
        if row["executed_at"] is not None
        else None,
        "resolutionEventId": str(row["resolution_event_id"])
        if row["resolution_event_id"] is not None
        else None,
        "votes": [
            {"by": v["principal"], "decision": v["decision"], "at": v["created_at"]}
            for v in (votes or [])
        ],
    }


async def fetch(engine: AsyncEngine, approval_id: str, *, full: bool = False) -> dict[str, Any]:
    """One approval as JSON; with ``full``, its request and resolution events too."""
    async with engine.connect() as conn:
        return await fetch_in(conn, approval_id, full=full)


async def fetch_in(conn: Any, approval_id: str, *, full: bool = False) -> dict[str, Any]:
    """``fetch`` on a connection already open (a write transaction's, say)."""
    row = (await conn.execute(APPROVAL_BY_ID, {"approval_id": approval_id})).mappings().first()
    if row is None:
        raise not_found(f"approval {approval_id}")
    votes = [
        dict(v) for v in (await conn.execute(VOTES_OF, {"approval_id": approval_id})).mappings()
    ]
    out = approval_json(row, votes)
    if full:
        ids = [row["event_id"]]
        if row["resolution_event_id"] is not None:
            ids.append(row["resolution_event_id"])
        events = {
            r["id"]: to_json(r)
            for r in (await conn.execute(EVENTS_BY_IDS, {"event_ids": ids})).mappings()
        }
        out["request"] = events.get(row["event_id"])
        out["resolution"] = events.get(row["resolution_event_id"])
    return out
