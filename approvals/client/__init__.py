"""The agent SDK: ask a human before a tool runs, and report a run's events.

``import approvals.client`` loads only httpx, httpx-sse and standardwebhooks; the
framework adapters live in ``approvals.client.langgraph``, ``.openai_agents`` and
``.pydantic_ai`` and need their extras.
"""

from approvals.client.aio import AsyncApprovals
from approvals.client.calls import CannotSerialize
from approvals.client.context import RunIds
from approvals.client.decision import (
    Answered,
    ApprovalsError,
    Decision,
    Expired,
    InvalidWebhook,
    NotApproved,
    Rejected,
    Withdrawn,
)
from approvals.client.sync import Approvals
from approvals.client.webhook import verify_webhook

__all__ = [
    "Answered",
    "Approvals",
    "ApprovalsError",
    "AsyncApprovals",
    "CannotSerialize",
    "Decision",
    "Expired",
    "InvalidWebhook",
    "NotApproved",
    "Rejected",
    "RunIds",
    "Withdrawn",
    "verify_webhook",
]
