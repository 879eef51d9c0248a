"""The Litestar application: routes, error handlers and the service lifecycle."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from litestar import Litestar, Response
from litestar.static_files import create_static_files_router
from litestar.types import Message, Scope

from approvals.core.config import Settings
from approvals.core.contract import ApiRequest, refuse_unknown_query
from approvals.core.db import parse_url
from approvals.core.errors import exception_handlers
from approvals.dashboard import admit, devices, insights, links, live, oidc_pages, pages, shell
from approvals.http import fastpath
from approvals.http.api import approvals as queue
from approvals.http.api import discord as discord_api
from approvals.http.api import grants, hooks, notifications, sources, stats, webhooks
from approvals.http.api import slack as interactions
from approvals.http.api import teams as teams_api
from approvals.http.api.events import get_event, get_events, post_events
from approvals.http.asgi import HSTS, SECURITY_HEADERS, App
from approvals.http.openapi import config as openapi_config
from approvals.http.openapi import docs_page
from approvals.http.ops import healthz, metrics, readyz
from approvals.services import Services

STATIC = Path(__file__).resolve().parents[1] / "static"  # a link to ../static in the repository


async def security_headers(response: Response[Any]) -> Response[Any]:
    """Add CSP (no inline scripts), framing and sniffing protection to every answer."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


async def strict_transport(message: Message, scope: Scope) -> None:
    """Tell browsers to use https only, on answers served over https (directly or via a proxy
    that uvicorn trusts for ``X-Forwarded-Proto``)."""
    if message["type"] == "http.response.start" and scope.get("scheme") == "https":
        headers = list(message.get("headers", []))
        headers.append(HSTS)
        message["headers"] = headers


def create_app(settings: Settings | None = None) -> Litestar:
    """Build the application for ``settings`` (the environment by default)."""
    settings = settings or Settings.from_env()
    url = parse_url(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        services = Services.build(settings, url)
        app.state.services = services
        await services.start()
        # Thousands of long-lived stream objects make full collections stall the
        # loop for hundreds of milliseconds; freeze start-up objects and collect less often.
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 50, 100)
        try:
            yield
        finally:
            await services.stop()

    handlers: list[Any] = [
        post_events,
        get_events,
        get_event,
        queue.open_approval,
        queue.list_approvals,
        queue.stream_approvals,
        queue.get_approval,
        queue.decide,
        queue.withdraw,
        queue.assign,
        queue.record_execution,
        grants.list_grants,
        grants.revoke_grant,
        stats.get_stats,
        hooks.claude_code,
        queue.decide_many,
        queue.create_policy,
        queue.list_policies,
        queue.delete_policy,
        webhooks.create_endpoint,
        webhooks.list_endpoints,
        webhooks.get_endpoint,
        webhooks.delete_endpoint,
        webhooks.rotate_secret,
        webhooks.list_deliveries,
        webhooks.retry_delivery,
        sources.create_source,
        sources.list_sources,
        sources.get_source,
        sources.update_source,
        sources.delete_source,
        notifications.create_notification,
        notifications.list_notifications,
        notifications.delete_notification,
        interactions.slack_interactions,
        discord_api.discord_interactions,
        teams_api.teams_messages,
        links.email_link_page,
        links.email_link_decide,
        healthz,
        readyz,
        metrics,
        pages.login_page,
        pages.login,
        pages.logout,
        oidc_pages.oidc_start,
        oidc_pages.oidc_callback,
        pages.inbox,
        pages.approval_page,
        pages.decide,
        *pages.DESK,
        *devices.ROUTES,
        pages.history_page,
        pages.events_page,
        insights.insights_page,
        pages.webhooks_page,
        pages.grants_page,
        pages.revoke_grant,
        pages.audit_page,
        pages.retry_from_page,
        live.stream,
        shell.service_worker,
        shell.manifest,
        shell.offline_page,
        docs_page,
        create_static_files_router(
            path="/static", directories=[STATIC], include_in_schema=False, opt={"any_query": True}
        ),
    ]
    admit.check_routes(handlers)  # every dashboard form post goes through the one rule
    app = App(
        route_handlers=handlers,
        lifespan=[lifespan],
        exception_handlers=exception_handlers,
        before_request=refuse_unknown_query,
        after_request=security_headers,
        before_send=[strict_transport],
        request_class=ApiRequest,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=openapi_config(),
    )
    app.fast = fastpath.table(handlers)  # the routes declared cached, served ahead
    return app
