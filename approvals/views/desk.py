"""What a reviewer may do with one request, and edited arguments: pure functions for templates."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from approvals.core.clock import parse_iso
from approvals.digest import approved_arguments
from approvals.queue import grants, policy
from approvals.queue.schema import ApprovalOut

INT = re.compile(r"-?\d+")


@dataclass(frozen=True)
class Desk:
    """One reviewer's view of one pending request."""

    allowed: tuple[str, ...]
    refusal: str | None
    voted: bool
    voters: tuple[str, ...]
    needed: int
    still: str
    claimed_by: str | None
    mine: bool

    @property
    def can_approve(self) -> bool:
        """Approve is offered: allowed, not refused, and not already voted by this reviewer."""
        return self.refusal is None and "approve" in self.allowed and not self.voted

    def offers(self, decision: str) -> bool:
        """Tell whether the buttons for ``decision`` are shown."""
        if decision == "approve":
            return self.can_approve
        return self.refusal is None and decision in self.allowed


def active_claim(a: ApprovalOut, now: datetime | None = None) -> str | None:
    """Who holds the request's claim, unless it expired."""
    until = a.claimed_until
    if not a.claimed_by or not until:
        return None
    if parse_iso(until) <= (now or datetime.now(UTC)):
        return None
    return a.claimed_by


def desk(a: ApprovalOut, user: str | None) -> Desk:
    """What ``user`` sees of approval ``a``: the decisions offered, or why none are."""
    voters = tuple(v.by for v in a.votes)
    reason = policy.refusal(
        principal=user or "",
        requested_by=a.requested_by,
        allow_self_approval=a.allow_self_approval,
        reviewers=a.reviewers,
    )
    if user is None:
        reason = "sign in to decide"
    reviewers = a.reviewers
    requester = a.requested_by
    self_ok = a.allow_self_approval
    if reviewers:
        left = [r for r in reviewers if r not in voters and (self_ok or r != requester)]
        still = ", ".join(left) if left else "nobody else"
    elif requester and not self_ok:
        still = f"any reviewer except {requester} (the requester)"
    else:
        still = "any reviewer"
    claimed = active_claim(a)
    return Desk(
        allowed=tuple(a.allowed_decisions or policy.DECISIONS),
        refusal=reason,
        voted=user in voters,
        voters=voters,
        needed=a.min_approvals or 1,
        still=still,
        claimed_by=claimed,
        mine=claimed is not None and claimed == user,
    )


def why(a: ApprovalOut, rule: dict[str, Any] | None) -> str:
    """Which policy governs the request and why it needed a human."""
    if not a.policy_id:
        return (
            "No policy matches this agent and tool, so by default one reviewer decides "
            "(an auto-approve or deny policy would have decided without a human)."
        )
    if rule is None:
        scope = "a policy since deleted"
    else:
        parts = [f"tool {rule['tool']}" if rule.get("tool") else "",
                 f"agent {rule['agentId']}" if rule.get("agentId") else ""]  # fmt: skip
        scope = " and ".join(p for p in parts if p) or "every request"
    needs = [f"{a.min_approvals} distinct approvals" if a.min_approvals > 1 else "one approval"]
    if a.reviewers:
        needs.append(f"from {', '.join(a.reviewers)}")
    if a.require_reason:
        needs.append("a reason to reject")
    if a.require_reason_on_approve:
        needs.append("a reason to approve")
    if a.confirm:
        needs.append("a confirmation step before approving")
    if a.risk == "high":
        needs.append("a click, never a single key (high risk)")
    return f"Policy {a.policy_id} ({scope}) requires a human: {', '.join(needs)}."


def kind(value: Any) -> str:
    """The form field for one argument: ``text``, ``number``, ``boolean`` or ``json``."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    return "json"


@dataclass
class Edit:
    """Arguments read back from the generated form: the values, the raw text and any errors."""

    arguments: dict[str, Any] = field(default_factory=dict)
    draft: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def read_form(form: dict[str, str], original: dict[str, Any]) -> Edit:
    """Parse the ``arg:NAME`` fields of the decision form against the original arguments."""
    edit = Edit()
    for key, value in original.items():
        field_kind = kind(value)
        raw = form.get(f"arg:{key}")
        if field_kind == "boolean":
            edit.arguments[key] = raw == "true"
            edit.draft[key] = "true" if raw == "true" else ""
            continue
        if raw is None:
            edit.arguments[key] = value
            continue
        edit.draft[key] = raw
        if field_kind == "text":
            edit.arguments[key] = raw
        elif field_kind == "number":
            text = raw.strip()
            try:
                edit.arguments[key] = int(text) if INT.fullmatch(text) else float(text)
            except ValueError:
                edit.errors[key] = "must be a number"
        else:
            try:
                edit.arguments[key] = json.loads(raw)
            except json.JSONDecodeError as exc:
                edit.errors[key] = (
                    f"not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}"
                )
    return edit


def diff(original: Any, edited: Any) -> list[dict[str, Any]]:
    """The changed top-level arguments: ``{"key", "before", "after", "change"}`` rows."""
    before = original if isinstance(original, dict) else {"(arguments)": original}
    after = edited if isinstance(edited, dict) else {"(arguments)": edited}
    rows = []
    for key in sorted(set(before) | set(after)):
        if key not in after:
            rows.append({"key": key, "before": before[key], "after": None, "change": "removed"})
        elif key not in before:
            rows.append({"key": key, "before": None, "after": after[key], "change": "added"})
        elif before[key] != after[key]:
            rows.append(
                {"key": key, "before": before[key], "after": after[key], "change": "changed"}
            )
    return rows


def current(approval: ApprovalOut) -> dict[str, Any] | None:
    """The arguments a reviewer decides on now: the requested ones with the edits of
    earlier reviewers' votes (under a quorum) laid over them."""
    return approved_arguments(approval.arguments, approval.edited_arguments)


@dataclass(frozen=True)
class GrantOption:
    """One choice of the decision form's standing grant: ``scope:seconds`` and its words."""

    value: str
    label: str


GRANT_SPANS = ((15 * 60, "15 minutes"), (3600, "1 hour"), (8 * 3600, "8 hours"))


def grant_options(approval: ApprovalOut) -> list[GrantOption]:
    """The standing grants the decision form offers for this request, within its
    policy's cap: this run, or this agent, for a while."""
    limit = approval.max_grant_seconds or grants.DEFAULT_CAP
    options = []
    for scope, name in (("run", "this run"), ("agent", "this agent")):
        if (approval.run_id if scope == "run" else approval.agent_id) is None:
            continue
        for seconds, words in GRANT_SPANS:
            if seconds <= limit:
                options.append(GrantOption(f"{scope}:{seconds}", f"Yes, for {name} for {words}"))
    return options


# What a reviewer reads when the arguments changed after their page or message showed them.
STALE = (
    "The arguments changed while you were looking (another reviewer edited them): "
    "nothing was decided. Check them below and decide again."
)
