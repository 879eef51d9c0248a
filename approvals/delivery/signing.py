"""Standard Webhooks signatures (via the ``standardwebhooks`` library) and secrets."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime

from standardwebhooks.webhooks import Webhook

PREFIX = "whsec_"


def new_secret() -> str:
    """A signing secret: ``whsec_`` and the base64 of 32 random bytes."""
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def headers(msg_id: str, moment: datetime, body: str, signing: list[str]) -> dict[str, str]:
    """The three Standard Webhooks headers; one signature per secret, space-separated."""
    signatures = " ".join(Webhook(secret).sign(msg_id, moment, body) for secret in signing)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
        "user-agent": "approvals-webhooks/1",
    }
