"""``/v1/notifications``: where new approvals are announced (admin)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from litestar import Request, delete, get, post
from litestar.params import JSONBody, PathParameter
from sqlalchemy import delete as sql_delete
from sqlalchemy import insert, select

from approvals.auth import audit
from approvals.auth.users import EMAIL
from approvals.core.clock import now_iso
from approvals.core.contract import WRITE_ERRORS, errors
from approvals.core.errors import invalid, not_found
from approvals.delivery.channels.models import routes_table
from approvals.delivery.channels.notices import REVIEWERS
from approvals.delivery.channels.schema import (
    NotificationCreate,
    NotificationList,
    NotificationPublic,
)
from approvals.events.log import new_id
from approvals.http.guard import requires

SLACK_CHANNEL = re.compile(r"[CGDU][A-Z0-9]{2,30}")
DISCORD_CHANNEL = re.compile(r"[0-9]{15,21}")
# A Bot Framework conversation id: "19:…@thread.tacv2" for a channel, "a:…" for a chat.
TEAMS_CONVERSATION = re.compile(r"[0-9A-Za-z][0-9A-Za-z:@._;=+/-]{2,319}")
TAGS = ["notifications"]
NotificationId = Annotated[str, PathParameter(max_length=200, description="the route's id")]


def public(row: Any) -> NotificationPublic:
    """A stored route as its answer."""
    return NotificationPublic(
        id=row["id"],
        channel=row["channel"],
        target=row["target"],
        agent_id=row["agent_id"],
        tool=row["tool"],
        remind_after_seconds=row["remind_after_seconds"],
        created_by=row["created_by"],
        created_at=row["created_at"],
    )


def check_target(data: NotificationCreate) -> str:
    """The route's target, checked against its channel."""
    target = data.target.strip()
    if target == REVIEWERS:
        return target
    if data.channel == "slack" and not SLACK_CHANNEL.fullmatch(target):
        raise invalid("body.target", "must be a Slack channel id (like C012AB3CD) or 'reviewers'")
    if data.channel == "email" and not EMAIL.fullmatch(target):
        raise invalid("body.target", "must be an email address or 'reviewers'")
    if data.channel == "discord" and not DISCORD_CHANNEL.fullmatch(target):
        raise invalid(
            "body.target",
            "must be a Discord channel id (digits, like 1234567890123456789) or 'reviewers'",
        )
    if data.channel == "teams" and not TEAMS_CONVERSATION.fullmatch(target):
        raise invalid(
            "body.target",
            "must be a Teams conversation id (like 19:abc@thread.tacv2) or 'reviewers'",
        )
    return target


@post(
    "/v1/notifications",
    guards=[requires("admin")],
    status_code=201,
    operation_id="createNotification",
    tags=TAGS,
    summary="Announce matching approvals on Slack, Discord, Teams or by email",
    responses=errors(*WRITE_ERRORS),
)
async def create_notification(
    request: Request[Any, Any, Any], data: JSONBody[NotificationCreate]
) -> NotificationPublic:
    """Announce matching approvals on Slack, Discord, Teams or by email, with an optional
    reminder."""
    values = {
        "id": new_id("ntf"),
        "channel": data.channel,
        "target": check_target(data),
        "agent_id": data.agent_id,
        "tool": data.tool,
        "remind_after_seconds": data.remind_after_seconds,
        "created_by": request.state.principal.name,
        "created_at": now_iso(),
    }
    async with audit.change(request) as trail:
        await trail.conn.execute(insert(routes_table).values(**values))
        trail.note(
            "notification.created",
            f"Notification route {values['id']} created",
            notification=values["id"],
            channel=values["channel"],
            target=values["target"],
        )
    return public(values)


@get(
    "/v1/notifications",
    guards=[requires("admin")],
    operation_id="listNotifications",
    tags=TAGS,
    summary="Every notification route",
    responses=errors(),
)
async def list_notifications(request: Request[Any, Any, Any]) -> NotificationList:
    """Every notification route."""
    async with request.app.state.services.engine.connect() as conn:
        rows = (
            await conn.execute(select(routes_table).order_by(routes_table.c.created_at))
        ).mappings()
        return NotificationList(notifications=[public(r) for r in rows])


@delete(
    "/v1/notifications/{notification_id:str}",
    guards=[requires("admin")],
    status_code=204,
    operation_id="deleteNotification",
    tags=TAGS,
    summary="Stop announcing on a route",
    responses=errors(404),
)
async def delete_notification(
    request: Request[Any, Any, Any], notification_id: NotificationId
) -> None:
    """Stop announcing on a route (notices already queued are still sent)."""
    async with audit.change(request) as trail:
        result = await trail.conn.execute(
            sql_delete(routes_table).where(routes_table.c.id == notification_id)
        )
        if result.rowcount == 0:
            raise not_found(f"notification {notification_id}")
        trail.note(
            "notification.deleted",
            f"Notification route {notification_id} deleted",
            notification=notification_id,
        )
