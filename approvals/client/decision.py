"""The outcome of an approval as the agent sees it, and the exceptions that carry it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from approvals.digest import approved_arguments

PENDING = "pending"
# An approved decision whose execution receipt the service refused: the call must not run.
NOT_EXECUTABLE = "not_executable"


@dataclass(frozen=True)
class Decision:
    """An approval's state: pending, or resolved with who decided what."""

    approval_id: str
    status: str
    approved: bool
    arguments: dict[str, Any] | None
    comment: str | None = None
    answer: str | None = None
    resolved_by: str | None = None
    resolved_at: str | None = None
    title: str | None = None
    tool: str | None = None
    edited: bool = False
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def edits(self) -> dict[str, Any] | None:
        """A reviewer's edits of the arguments, by name (None when none were made)."""
        edited = self.raw.get("editedArguments")
        return edited if isinstance(edited, dict) else None

    @property
    def pending(self) -> bool:
        """True while no one has decided and the approval has not expired."""
        return self.status == PENDING

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Decision:
        """Read the JSON of ``GET /v1/approvals/{id}``."""
        edited = body.get("editedArguments")
        arguments = approved_arguments(body.get("arguments"), edited)
        return cls(
            approval_id=body["id"],
            status=body["status"],
            approved=body.get("decision") == "approve" and body["status"] != PENDING,
            arguments=arguments,
            comment=body.get("comment"),
            answer=body.get("answer"),
            resolved_by=body.get("resolvedBy"),
            resolved_at=body.get("resolvedAt"),
            title=body.get("title"),
            tool=body.get("tool"),
            edited=isinstance(edited, dict),
            raw=body,
        )


class ApprovalsError(Exception):
    """A transport or API error: the service's ``error`` code, ``message`` and ``field``."""

    def __init__(
        self,
        message: str,
        *,
        error: str = "transport",
        field: str | None = None,
        status: int | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.error = error
        self.message = message
        self.field = field
        self.status = status
        self.body = body

    def __str__(self) -> str:
        where = f" [{self.status} {self.error}]" if self.status else f" [{self.error}]"
        return f"{self.message}{where}"


class NotApproved(Exception):
    """Base of ``Rejected``, ``Answered``, ``Expired`` and ``Withdrawn``: the call did not
    run."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        self.approval_id = decision.approval_id
        self.comment = decision.comment
        self.answer = decision.answer
        self.resolved_by = decision.resolved_by
        super().__init__(self._describe())

    def _describe(self) -> str:
        return f"approval {self.approval_id} was {self.decision.status}"


class Rejected(NotApproved):
    """A reviewer rejected the call; ``comment`` holds the reason."""

    def _describe(self) -> str:
        reason = f": {self.comment}" if self.comment else ""
        return f"rejected by {self.resolved_by}{reason}"


class Answered(NotApproved):
    """A reviewer answered with text (``answer``) instead of approving."""

    def _describe(self) -> str:
        return f"answered by {self.resolved_by}: {self.answer}"


class Expired(NotApproved):
    """Nobody decided in time and the timeout rejects."""

    def _describe(self) -> str:
        return f"approval {self.approval_id} expired without a decision"


class Withdrawn(NotApproved):
    """The approval was withdrawn (by the key that requested it) before anyone decided."""

    def _describe(self) -> str:
        return (
            f"approval {self.approval_id} was withdrawn by {self.resolved_by} before anyone "
            "decided; the call did not run"
        )


class InvalidWebhook(ValueError):
    """A webhook delivery whose signature, timestamp or body does not check out."""
