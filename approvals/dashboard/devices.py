"""Web Push from the dashboard: a reviewer's browser subscribes and unsubscribes itself
(``static/push.js`` on the Settings page), and the Settings page removes a device."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.params import JSONBody
from litestar.response import Redirect

from approvals.auth import audit
from approvals.core.contract import JSON_TYPES, convert
from approvals.core.errors import ApiError
from approvals.core.outbound import parse as destinations
from approvals.dashboard import admit
from approvals.dashboard.admit import change
from approvals.dashboard.pages import signed_in
from approvals.delivery.channels import push
from approvals.delivery.channels.schema import PushSubscribe, PushUnsubscribe


@get("/dashboard/push/key", include_in_schema=False)
async def push_key(request: Request[Any, Any, Any]) -> Response[Any]:
    """The service's VAPID public key (base64url), for ``PushManager.subscribe``."""
    if await signed_in(request) is None:
        raise ApiError(401, "unauthorized", "sign in first")
    services = request.app.state.services
    return Response({"publicKey": await services.pusher.keys.public(services.engine)})


@change("/dashboard/push/subscribe", status_code=201)
async def push_subscribe(
    request: Request[Any, Any, Any], data: JSONBody[PushSubscribe]
) -> Response[Any]:
    """Keep this browser's push subscription for the signed-in reviewer (``PushSubscription``
    as JSON: ``endpoint``, ``keys.p256dh``, ``keys.auth``), audited."""
    user = admit.current(request).user
    assert user is not None
    services = request.app.state.services
    policy = destinations(services.settings.webhook_allowed)
    agent = request.headers.get("user-agent", "")
    async with services.log.transaction(user) as tx:
        device = await push.subscribe(tx.conn, user, data, policy, agent)
        title = f"Reviewer {user!r} turned on notifications on {device['label']}"
        await audit.record(
            tx, "user.updated", f"user:{user}", title, user=user, device=device["id"]
        )
    return Response({"id": device["id"], "label": device["label"]}, status_code=201)


@change("/dashboard/push/unsubscribe", status_code=200)
async def push_unsubscribe(request: Request[Any, Any, Any]) -> Response[Any]:
    """Forget one of the reviewer's devices: by ``endpoint`` or ``id`` as JSON (the browser
    turning notifications off), or by ``id`` from the Settings page's form."""
    user = admit.current(request).user
    assert user is not None
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    from_browser = kind == JSON_TYPES[0] or kind.endswith(JSON_TYPES[1])
    if from_browser:
        wanted = convert(await request.json(), PushUnsubscribe)
        device_id, endpoint = wanted.id, wanted.endpoint
    else:
        device_id, endpoint = str((await request.form()).get("id") or "") or None, None
    services = request.app.state.services
    async with services.log.transaction(user) as tx:
        removed = await push.remove(tx.conn, user, device_id=device_id, endpoint=endpoint)
        for label in removed:
            title = f"Reviewer {user!r} turned off notifications on {label}"
            await audit.record(tx, "user.updated", f"user:{user}", title, user=user)
    if from_browser:
        return Response({"removed": len(removed)})
    return Redirect("/settings#push", status_code=303)


ROUTES = [push_key, push_subscribe, push_unsubscribe]
