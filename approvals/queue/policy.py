"""Policy rules as pure functions: which rule applies, who may decide, when a quorum is met."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

ACTIONS = ("auto_approve", "require", "deny")


@dataclass(frozen=True)
class Rule:
    """A stored policy: for an agent and/or a tool (None means any)."""

    id: str
    agent_id: str | None
    tool: str | None
    action: str
    min_approvals: int = 1
    allow_self_approval: bool = False
    reviewers: tuple[str, ...] | None = None
    created_at: str = ""
    require_reason: bool = False
    require_reason_on_approve: bool = False
    confirm: bool = False
    risk: str = "normal"
    redact: tuple[str, ...] | None = None
    display: str | None = None
    grantable: bool = True
    max_grant_seconds: int | None = None


@dataclass(frozen=True)
class Effective:
    """What governs one request: the action and, for ``require``, who and how many."""

    action: str = "require"
    policy_id: str | None = None
    min_approvals: int = 1
    allow_self_approval: bool = False
    reviewers: tuple[str, ...] | None = None
    require_reason: bool = False
    require_reason_on_approve: bool = False
    confirm: bool = False
    risk: str = "normal"
    redact: tuple[str, ...] | None = None
    display: str | None = None
    grantable: bool = True
    max_grant_seconds: int | None = None


DEFAULT = Effective()


def select(rules: Iterable[Rule], agent_id: str | None, tool: str | None) -> Effective:
    """The most specific matching rule (agent and tool, then tool, then agent, then any).

    Among equally specific rules the newest wins. With no match, one human decides.
    """
    best: tuple[int, str, str] | None = None
    chosen: Rule | None = None
    for rule in rules:
        if rule.agent_id is not None and rule.agent_id != agent_id:
            continue
        if rule.tool is not None and rule.tool != tool:
            continue
        rank = (2 if rule.tool is not None else 0) + (1 if rule.agent_id is not None else 0)
        key = (rank, rule.created_at, rule.id)
        if best is None or key > best:
            best, chosen = key, rule
    if chosen is None:
        return DEFAULT
    return Effective(
        action=chosen.action,
        policy_id=chosen.id,
        min_approvals=max(1, chosen.min_approvals),
        allow_self_approval=chosen.allow_self_approval,
        reviewers=chosen.reviewers,
        require_reason=chosen.require_reason,
        require_reason_on_approve=chosen.require_reason_on_approve,
        confirm=chosen.confirm,
        risk=chosen.risk,
        redact=chosen.redact,
        display=chosen.display,
        grantable=chosen.grantable,
        max_grant_seconds=chosen.max_grant_seconds,
    )


def refusal(
    *,
    principal: str,
    requested_by: str | None,
    allow_self_approval: bool,
    reviewers: Sequence[str] | None,
) -> str | None:
    """Why ``principal`` may not decide this request, or None when it may."""
    if not allow_self_approval and requested_by is not None and principal == requested_by:
        return (
            f"{principal!r} opened this request and may not decide it "
            "(the policy does not allow self-approval)"
        )
    if reviewers and principal not in reviewers:
        return f"{principal!r} is not among this request's reviewers ({', '.join(reviewers)})"
    return None


DECISIONS = ("approve", "reject", "answer")


def allowed(allowed_decisions: Sequence[str] | None) -> tuple[str, ...]:
    """The decisions a request accepts (all three unless its interrupt config narrows them)."""
    if allowed_decisions is None:
        return DECISIONS
    return tuple(d for d in DECISIONS if d in allowed_decisions)


def needs_reason(decision: str, *, require_reason: bool, require_reason_on_approve: bool) -> bool:
    """Tell whether ``decision`` must carry a comment under these policy flags."""
    if decision == "reject":
        return require_reason
    if decision == "approve":
        return require_reason_on_approve
    return False


def tally(min_approvals: int, approvers: Iterable[str]) -> bool:
    """Tell whether enough distinct principals approved."""
    return len(set(approvers)) >= max(1, min_approvals)
