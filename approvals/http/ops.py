"""Liveness, readiness and metrics endpoints."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.openapi.datastructures import ResponseSpec
from sqlalchemy import text

from approvals.core.beats import STALE_SECONDS
from approvals.core.metrics import render


@get("/healthz", operation_id="healthz", tags=["operations"])
async def healthz() -> dict[str, str]:
    """Answer while the process is alive."""
    return {"status": "ok"}


@get(
    "/readyz",
    operation_id="readyz",
    tags=["operations"],
    responses={
        503: ResponseSpec(
            data_container=dict[str, str], description="The database or a background loop is down"
        )
    },
)
async def readyz(request: Request[Any, Any, Any]) -> Response[Any]:
    """Answer 200 when the database answers and every background loop is turning, 503
    otherwise (naming the loops that stalled)."""
    services = request.app.state.services
    try:
        async with services.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        return Response(
            {"status": "unavailable", "error": "unavailable", "message": str(exc)[:200]},
            status_code=503,
        )
    stalled = services.beats.stalled()
    if stalled:
        return Response(
            {
                "status": "unavailable",
                "error": "unavailable",
                "message": f"background loop stalled: {', '.join(stalled)} "
                f"(no progress for {STALE_SECONDS:g}s or stopped); see the service log",
                "stalled": ", ".join(stalled),
            },
            status_code=503,
        )
    return Response({"status": "ready"})


@get(
    "/metrics", media_type="text/plain; version=0.0.4", operation_id="metrics", tags=["operations"]
)
async def metrics() -> bytes:
    """Prometheus metrics in text format."""
    return render()
