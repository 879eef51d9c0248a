"""Checking a webhook delivery from the service (Standard Webhooks signatures)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from approvals.client.decision import InvalidWebhook


def verify_webhook(secret: str, body: bytes | str, headers: Mapping[str, str]) -> Any:
    """Return the decoded payload of a genuine delivery; raise ``InvalidWebhook`` otherwise."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        return Webhook(secret).verify(body, lowered)
    except WebhookVerificationError as exc:
        raise InvalidWebhook(f"webhook rejected: {exc}") from exc
    except ValueError as exc:  # a body that is not JSON, a malformed secret
        raise InvalidWebhook(f"webhook rejected: {exc}") from exc
