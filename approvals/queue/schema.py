"""Typed bodies and answers of the approval queue, decisions and policies."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from approvals.core.contract import Body, Out
from approvals.core.errors import invalid
from approvals.core.outbound import Policy, unsendable
from approvals.core.outbound import check_url as check_destination
from approvals.digest import unsignable
from approvals.events.redaction import check_paths
from approvals.events.schema import EventOut, Short, Timestamp, check_request_detail
from approvals.queue.display import check_template
from approvals.queue.grants import GrantIn

MAX_TIMEOUT = 30 * 24 * 3600
MAX_GRANT = 30 * 24 * 3600  # the longest a standing grant may last
MAX_TEXT = 10_000
Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT)]
Url = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=2000,
        description="an absolute http:// or https:// URL",
        extra_json_schema={"format": "uri"},
    ),
]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Path = Annotated[
    str, msgspec.Meta(min_length=1, max_length=500, description="e.g. headers.authorization")
]
Status = Literal["pending", "approved", "rejected", "answered", "expired", "withdrawn"]
Decision = Literal["approve", "reject", "answer"]
Risk = Literal["normal", "high"]
Digest = Annotated[
    str,
    msgspec.Meta(
        pattern="^sha256:[0-9a-f]{64}$",
        description="sha256: and the hex SHA-256 of the arguments' canonical JSON (RFC 8785)",
    ),
]


def check_url(value: str, field: str) -> str:
    """An absolute http(s) URL the sender can call, or a 422 naming ``field``."""
    reason = unsendable(value)
    if reason is not None:
        raise invalid(field, reason)
    return value


class ApprovalCreate(Body):
    """``POST /v1/approvals``: what the human is asked, and how the run resumes."""

    title: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TEXT)]
    detail: dict[str, Any] | None = None
    run_id: Short | None = None
    thread_id: Short | None = None
    agent_id: Short | None = None
    callback_url: Url | None = None
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=MAX_TIMEOUT)] | None = None
    on_timeout: Literal["reject", "approve"] = "reject"
    external_id: Annotated[str, msgspec.Meta(max_length=500)] | None = None
    source: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None


class DecisionIn(Body):
    """A decision: ``approve`` (maybe with edited arguments), ``reject`` or ``answer``."""

    decision: Decision
    comment: Text | None = None
    answer: Text | None = None
    arguments: dict[str, Any] | None = None
    arguments_digest: Digest | None = None
    grant: GrantIn | None = None


class DecisionItem(DecisionIn, kw_only=True):
    """One decision of a batch, naming its approval."""

    id: Name


class AssignIn(Body):
    """``POST /v1/approvals/{id}/assign``: hand a pending request to a reviewer."""

    to: Annotated[str, msgspec.Meta(min_length=1, max_length=100, description="a username")]


class PageStep(Body):
    """A step that pages through PagerDuty's Events API v2."""

    routing_key: Annotated[
        str,
        msgspec.Meta(min_length=1, max_length=64, description="the integration's routing key"),
    ]
    severity: Literal["critical", "error", "warning", "info"] = "critical"


class EscalationStep(Body):
    """One rung of a ladder: if the approval is still pending ``afterSeconds`` after it
    opened, notify a route (or ``reviewers``: every reviewer who may decide it) or page."""

    after_seconds: Annotated[int, msgspec.Meta(ge=1, le=MAX_TIMEOUT)]
    notify: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    page: PageStep | None = None


class PolicyCreate(Body):
    """``POST /v1/policies``: a rule for an agent and/or a tool."""

    action: Literal["auto_approve", "require", "deny"]
    agent_id: Short | None = None
    tool: Short | None = None
    min_approvals: Annotated[int, msgspec.Meta(ge=1, le=20)] = 1
    allow_self_approval: bool = False
    reviewers: Annotated[list[Name], msgspec.Meta(min_length=1, max_length=100)] | None = None
    require_reason: bool = False
    require_reason_on_approve: bool = False
    confirm: bool = False
    risk: Annotated[
        Risk,
        msgspec.Meta(
            description="high: the dashboard marks the request and never decides it on one key"
        ),
    ] = "normal"
    redact: (
        Annotated[list[Annotated[str, msgspec.Meta(max_length=500)]], msgspec.Meta(max_length=50)]
        | None
    ) = None
    display: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)] | None = None
    grantable: bool = True
    max_grant_seconds: Annotated[int, msgspec.Meta(ge=1, le=MAX_GRANT)] | None = None
    escalation: (
        Annotated[list[EscalationStep], msgspec.Meta(min_length=1, max_length=10)] | None
    ) = None
    warn_before_seconds: Annotated[int, msgspec.Meta(ge=1, le=MAX_TIMEOUT)] | None = None


class Vote(Out):
    """One reviewer's vote towards a quorum."""

    by: str
    decision: str
    at: Timestamp


class Execution(Out):
    """The receipt of an approved call's run: when, by which key, with which arguments."""

    at: Timestamp
    by: str
    arguments_digest: str


class ExecutionIn(Body):
    """``POST /v1/approvals/{id}/execution``: the digest of the arguments about to run."""

    arguments_digest: Digest


class ApprovalOut(Out):
    """An approval: the request, its state, and its resolution once decided."""

    id: str
    status: Status
    title: str | None
    tool: str | None
    arguments: dict[str, Any] | None
    agent_id: str | None
    thread_id: str | None
    run_id: str | None
    source: str | None
    request_event_id: str
    requested_by: str | None
    callback_url: str | None
    expires_at: Timestamp | None
    on_timeout: str
    policy_id: str | None
    min_approvals: int
    allow_self_approval: bool
    reviewers: list[str] | None
    created_at: Timestamp
    resolved_at: Timestamp | None
    resolved_by: str | None
    decision: str | None
    comment: str | None
    answer: str | None
    edited_arguments: dict[str, Any] | None
    arguments_digest: str | None
    redact: list[str] | None
    headline: str | None
    grant_id: str | None
    grantable: bool
    max_grant_seconds: int | None
    execution: Execution | None
    resolution_event_id: str | None
    votes: list[Vote]
    require_reason: bool
    require_reason_on_approve: bool
    confirm: bool
    risk: Risk
    allowed_decisions: list[Decision]
    allow_edit: bool
    claimed_by: str | None
    claimed_until: Timestamp | None
    assigned_to: str | None = None
    assigned_by: str | None = None
    delegated_from: str | None = None
    request: EventOut | None = None
    resolution: EventOut | None = None


class ApprovalPage(Out):
    """A page of the queue; pass ``nextCursor`` as ``cursor`` for the next one."""

    approvals: list[ApprovalOut]
    next_cursor: str | None


class DecisionResult(Out):
    """The outcome of one decision of a batch: the approval, or the error."""

    id: str | None
    status: int
    approval: ApprovalOut | None = None
    error: str | None = None
    message: str | None = None


class DecisionResults(Out):
    """Each decision's outcome, in the order sent."""

    results: list[DecisionResult]


class PolicyOut(Out):
    """A stored policy."""

    id: str
    agent_id: str | None
    tool: str | None
    action: str
    min_approvals: int
    allow_self_approval: bool
    reviewers: list[str] | None
    require_reason: bool
    require_reason_on_approve: bool
    confirm: bool
    risk: Risk
    redact: list[str] | None
    display: str | None
    grantable: bool
    max_grant_seconds: int | None
    escalation: list[EscalationStep] | None
    warn_before_seconds: int | None
    created_at: Timestamp


class PolicyList(Out):
    """Every policy, oldest first."""

    policies: list[PolicyOut]


def request_row(
    body: ApprovalCreate, destinations: Policy
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``steering_request`` row and approval options of a checked request (its
    ``callbackUrl`` checked against the outbound ``destinations``)."""
    check_request_detail(body.detail, "body")
    row: dict[str, Any] = {
        "type": "steering_request",
        "category": "approval",
        "status": "pending_approval",
        "title": body.title,
        "detail": body.detail,
        "run_id": body.run_id,
        "thread_id": body.thread_id,
        "agent_id": body.agent_id,
        "external_id": body.external_id,
    }
    if body.source:
        row["source"] = body.source
    options: dict[str, Any] = {"on_timeout": body.on_timeout}
    if body.callback_url is not None:
        url = check_url(body.callback_url, "body.callbackUrl")
        options["callback_url"] = check_destination(url, "body.callbackUrl", destinations)
    if body.timeout_seconds is not None:
        options["timeout_seconds"] = float(body.timeout_seconds)
    return row, options


def check_decision(body: DecisionIn, where: str = "body") -> dict[str, Any]:
    """The rules across a decision's fields; its values as keyword arguments."""
    if body.decision == "answer" and not body.answer:
        raise invalid(f"{where}.answer", "is required with decision 'answer'")
    if body.decision != "answer" and body.answer is not None:
        raise invalid(f"{where}.answer", "goes only with decision 'answer'")
    if body.arguments is not None and body.decision != "approve":
        raise invalid(f"{where}.arguments", "edited arguments go only with 'approve'")
    if body.grant is not None and body.decision != "approve":
        raise invalid(f"{where}.grant", "a standing grant goes only with 'approve'")
    if body.arguments is not None and (reason := unsignable(body.arguments)):
        raise invalid(f"{where}.arguments", reason)
    return {
        "decision": body.decision,
        "comment": body.comment,
        "answer": body.answer,
        "arguments": body.arguments,
        "arguments_digest": body.arguments_digest,
        "grant": body.grant,
    }


def policy_values(body: PolicyCreate) -> dict[str, Any]:
    """The column values of a checked policy."""
    if body.min_approvals > 1 and body.action != "require":
        raise invalid("body.minApprovals", "applies only to action 'require'")
    if body.reviewers is not None and len(set(body.reviewers)) < body.min_approvals:
        raise invalid("body.reviewers", "must name at least minApprovals distinct reviewers")
    if body.warn_before_seconds is not None and body.action != "require":
        raise invalid("body.warnBeforeSeconds", "applies only to action 'require'")
    return {
        "agent_id": body.agent_id,
        "tool": body.tool,
        "action": body.action,
        "min_approvals": body.min_approvals,
        "allow_self_approval": body.allow_self_approval,
        "reviewers": sorted(set(body.reviewers)) if body.reviewers else None,
        "require_reason": body.require_reason,
        "require_reason_on_approve": body.require_reason_on_approve,
        "confirm": body.confirm,
        "risk": body.risk,
        "redact": check_paths(body.redact, "body.redact") if body.redact else None,
        "display": check_template(body.display, "body.display") if body.display else None,
        "grantable": body.grantable,
        "max_grant_seconds": body.max_grant_seconds,
        "escalation": _ladder(body),
        "warn_before_seconds": body.warn_before_seconds,
    }


def _ladder(body: PolicyCreate) -> list[dict[str, Any]] | None:
    """A policy's escalation steps as stored (camelCase JSON), checked: one action each,
    in the order they fire, only where requests wait for a human."""
    if body.escalation is None:
        return None
    if body.action != "require":
        raise invalid("body.escalation", "applies only to action 'require'")
    previous = 0
    for index, step in enumerate(body.escalation):
        field = f"body.escalation[{index}]"
        if (step.notify is None) == (step.page is None):
            raise invalid(field, "needs exactly one of notify (a route id or 'reviewers') and page")
        if step.after_seconds <= previous:
            raise invalid(f"{field}.afterSeconds", "steps must come in order of afterSeconds")
        previous = step.after_seconds
    return [msgspec.to_builtins(step) for step in body.escalation]
