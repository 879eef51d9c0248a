"""``POST /slack/interactions``: Approve and Reject clicks, and the reject reason modal."""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qs

from litestar import Request, Response, post
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import select

from approvals.dashboard.users import users_table
from approvals.errors import ApiError
from approvals.queue import policy, service

log = logging.getLogger("approvals.notify")
REASON_CALLBACK = "reject_reason"
NOT_LINKED = (
    "Your Slack account is not linked to an approvals reviewer, so nothing was decided. "
    "An admin can link it: approvals users update NAME --slack-user YOUR_SLACK_ID"
)


def verified(settings: Any, body: bytes, headers: Any) -> bool:
    """Tell whether Slack signed this body (``v0=`` HMAC) within five minutes of now."""
    if not settings.slack_signing_secret:
        return False
    timestamp = headers.get("x-slack-request-timestamp")
    signature = headers.get("x-slack-signature")
    if not timestamp or not timestamp.strip().lstrip("-").isdigit():
        return False
    verifier = SignatureVerifier(settings.slack_signing_secret)
    return verifier.is_valid(
        body=body.decode("utf-8", "replace"), timestamp=timestamp, signature=signature
    )


async def reviewer_for(engine: Any, slack_user: str) -> str | None:
    """The one active reviewer linked to a Slack user id, or None."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(users_table.c.username)
                .where(users_table.c.slack_user_id == slack_user, users_table.c.disabled.is_(False))
                .limit(2)
            )
        ).all()
    return rows[0][0] if len(rows) == 1 else None


@post("/slack/interactions", include_in_schema=False, status_code=200)
async def slack_interactions(request: Request[Any, Any, Any]) -> Response[Any]:
    """Act on a signed Slack interaction; 401 and nothing decided when the signature fails."""
    services = request.app.state.services
    body = await request.body()
    if not verified(services.settings, body, request.headers):
        return Response(
            {"error": "unauthorized", "message": "the Slack signature or timestamp is not valid"},
            status_code=401,
        )
    try:
        payload = json.loads(parse_qs(body.decode())["payload"][0])
    except (KeyError, IndexError, ValueError):
        return Response({"error": "invalid", "message": "no payload"}, status_code=400)
    kind = payload.get("type")
    if kind == "block_actions":
        await _clicked(services, payload)
        return Response(b"", status_code=200)
    if kind == "view_submission":
        return await _submitted(services, payload)
    return Response(b"", status_code=200)


async def _ephemeral(services: Any, payload: dict[str, Any], text: str) -> None:
    channel = (payload.get("channel") or {}).get("id") or (payload.get("container") or {}).get(
        "channel_id"
    )
    user = (payload.get("user") or {}).get("id")
    if not channel or not user:
        return
    try:
        await services.webhooks.check_destination(services.settings.slack_api_url)
        await services.notifier.slack.chat_postEphemeral(channel=channel, user=user, text=text)
    except (SlackApiError, PermissionError, OSError, TimeoutError) as exc:
        log.warning("Slack ephemeral message to %s failed: %s", user, exc)


async def _clicked(services: Any, payload: dict[str, Any]) -> None:
    actions = payload.get("actions") or []
    if not actions or actions[0].get("action_id") not in ("approve", "reject"):
        return
    action = actions[0]
    approval_id = str(action.get("value") or "")
    slack_user = str((payload.get("user") or {}).get("id") or "")
    reviewer = await reviewer_for(services.engine, slack_user)
    if reviewer is None:
        await _ephemeral(services, payload, NOT_LINKED)
        return
    if action["action_id"] == "reject":
        reason = await _refusal(services, approval_id, reviewer)
        if reason is not None:
            await _ephemeral(services, payload, reason)
            return
        await _open_modal(services, payload, approval_id)
        return
    try:
        async with services.log.transaction(reviewer) as tx:
            await service.decide(tx, approval_id, decision="approve", principal=reviewer)
    except ApiError as exc:
        await _ephemeral(services, payload, f"Nothing was decided: {exc.message}")
        return
    approval = await service.fetch(services.engine, approval_id)
    if approval["status"] == "pending":
        votes = len(approval["votes"])
        await _ephemeral(
            services,
            payload,
            f"Your approval counts: {votes} of {approval['minApprovals']} so far.",
        )


async def _refusal(services: Any, approval_id: str, reviewer: str) -> str | None:
    """Why ``reviewer`` may not decide now (checked again when the modal is submitted)."""
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


async def _open_modal(services: Any, payload: dict[str, Any], approval_id: str) -> None:
    view = {
        "type": "modal",
        "callback_id": REASON_CALLBACK,
        "private_metadata": approval_id,
        "title": {"type": "plain_text", "text": "Reject request"},
        "submit": {"type": "plain_text", "text": "Reject"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": "reason",
                "optional": True,
                "label": {"type": "plain_text", "text": "Reason (sent back to the agent)"},
                "element": {"type": "plain_text_input", "action_id": "reason", "multiline": True},
            }
        ],
    }
    try:
        await services.webhooks.check_destination(services.settings.slack_api_url)
        await services.notifier.slack.views_open(trigger_id=payload.get("trigger_id"), view=view)
    except (SlackApiError, PermissionError, OSError, TimeoutError) as exc:
        log.warning("Slack views.open failed: %s", exc)
        await _ephemeral(services, payload, "Slack could not open the reject form; try again.")


async def _submitted(services: Any, payload: dict[str, Any]) -> Response[Any]:
    view = payload.get("view") or {}
    if view.get("callback_id") != REASON_CALLBACK:
        return Response(b"", status_code=200)
    approval_id = str(view.get("private_metadata") or "")
    values = (view.get("state") or {}).get("values") or {}
    reason = ((values.get("reason") or {}).get("reason") or {}).get("value") or None
    slack_user = str((payload.get("user") or {}).get("id") or "")
    reviewer = await reviewer_for(services.engine, slack_user)
    problem = NOT_LINKED if reviewer is None else None
    if reviewer is not None:
        try:
            async with services.log.transaction(reviewer) as tx:
                await service.decide(
                    tx,
                    approval_id,
                    decision="reject",
                    principal=reviewer,
                    comment=reason.strip() if reason and reason.strip() else None,
                )
        except ApiError as exc:
            problem = f"Nothing was decided: {exc.message}"
    if problem is not None:
        return Response(
            {"response_action": "errors", "errors": {"reason": problem[:150]}}, status_code=200
        )
    return Response(b"", status_code=200)
