"""Liveness, readiness and metrics endpoints."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.openapi.datastructures import ResponseSpec
from sqlalchemy import text

from approvals.metrics import render


@get("/healthz", operation_id="healthz", tags=["operations"])
async def healthz() -> dict[str, str]:
    """Answer while the process is alive."""
    return {"status": "ok"}


@get(
    "/readyz",
    operation_id="readyz",
    tags=["operations"],
    responses={503: ResponseSpec(data_container=dict[str, str], description="Database down")},
)
async def readyz(request: Request[Any, Any, Any]) -> Response[Any]:
    """Answer 200 when the database answers, 503 otherwise."""
    try:
        async with request.app.state.services.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        return Response(
            {"status": "unavailable", "error": "unavailable", "message": str(exc)[:200]},
            status_code=503,
        )
    return Response({"status": "ready"})


@get(
    "/metrics", media_type="text/plain; version=0.0.4", operation_id="metrics", tags=["operations"]
)
async def metrics() -> bytes:
    """Prometheus metrics in text format."""
    return render()
