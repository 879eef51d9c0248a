"""HTTP handlers of standing grants: list them, revoke one."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, delete, get
from litestar.params import PathParameter, QueryParameter

from approvals.auth import audit
from approvals.core.contract import errors
from approvals.http.guard import requires
from approvals.queue import grants

TAGS = ["grants"]


@get(
    "/v1/grants",
    guards=[requires("approvals:resolve")],
    operation_id="listGrants",
    tags=TAGS,
    summary="Standing grants in force (or every grant), newest first",
    responses=errors(),
)
async def list_grants(
    request: Request[Any, Any, Any],
    status: Annotated[
        str,
        QueryParameter(
            pattern="^(active|all)$", description="active (in force, the default) or all"
        ),
    ] = "active",
) -> grants.GrantList:
    """Standing grants in force (or every grant), newest first."""
    async with request.app.state.services.engine.connect() as conn:
        found = await grants.listed(conn, everything=status == "all")
    return grants.GrantList(grants=found)


@delete(
    "/v1/grants/{grant_id:str}",
    guards=[requires("approvals:resolve")],
    status_code=204,
    operation_id="revokeGrant",
    tags=TAGS,
    summary="Revoke a standing grant: the next matching request asks a human again",
    responses=errors(404, 409),
)
async def revoke_grant(
    request: Request[Any, Any, Any],
    grant_id: Annotated[str, PathParameter(max_length=200)],
) -> None:
    """Revoke a standing grant; 404 when there is none, 409 when it already ended."""
    async with audit.change(request) as trail:
        ended = await grants.revoke(trail.tx, grant_id, request.state.principal.name)
        trail.note(
            "grant.revoked",
            f"Grant {grant_id} of {ended.tool} revoked",
            grant=grant_id,
            tool=ended.tool,
        )
