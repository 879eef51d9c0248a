"""HTTP handlers for sources: the platform streams the service subscribes to."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, delete, get, patch, post
from litestar.params import JSONBody, PathParameter
from sqlalchemy import delete as sql_delete
from sqlalchemy import insert, select, update

from approvals.auth import audit
from approvals.connectors.schema import SourceCreate, SourceList, SourceOut, SourceUpdate
from approvals.connectors.sources import new_source, source_values, sources_table
from approvals.core.clock import now_iso
from approvals.core.contract import WRITE_ERRORS, errors
from approvals.core.db import one_or_404
from approvals.core.errors import ApiError
from approvals.core.outbound import Policy
from approvals.core.outbound import parse as parse_destinations
from approvals.core.secretbox import encrypt, service_key
from approvals.http.guard import requires

TAGS = ["sources"]
SourceId = Annotated[str, PathParameter(max_length=200, description="the source's id")]


def source_json(row: Any, resume_secret: str | None = None) -> SourceOut:
    """The public form of a source: never its token; the resume secret only at creation."""
    return SourceOut.from_row(row, resume_secret=resume_secret)


def _destinations(request: Request[Any, Any, Any]) -> Policy:
    return parse_destinations(request.app.state.services.settings.webhook_allowed)


async def _key(request: Request[Any, Any, Any]) -> str:
    services = request.app.state.services
    async with services.engine.begin() as conn:
        key: str = await conn.run_sync(lambda sync: service_key(sync, services.settings.secret_key))
    return key


async def _load(request: Request[Any, Any, Any], source_id: str) -> Any:
    return await one_or_404(request.app.state.services.engine, sources_table, source_id, "source")


async def _name_free(request: Request[Any, Any, Any], name: str, source_id: str = "") -> None:
    async with request.app.state.services.engine.connect() as conn:
        taken = (
            await conn.execute(
                select(sources_table.c.id).where(
                    sources_table.c.name == name, sources_table.c.id != source_id
                )
            )
        ).first()
    if taken is not None:
        raise ApiError(409, "conflict", f"a source named {name!r} exists", field="body.name")


@post(
    "/v1/sources",
    guards=[requires("admin")],
    status_code=201,
    operation_id="createSource",
    tags=TAGS,
    summary="Subscribe to a platform stream; the answer carries resumeSecret once",
    responses=errors(409, *WRITE_ERRORS),
)
async def create_source(request: Request[Any, Any, Any], data: JSONBody[SourceCreate]) -> SourceOut:
    """Subscribe to a platform stream; the answer carries ``resumeSecret`` once."""
    values = source_values(data, _destinations(request))
    await _name_free(request, values["name"])
    row = new_source(values, await _key(request))
    async with audit.change(request) as trail:
        await trail.conn.execute(insert(sources_table).values(**row))
        trail.note(
            "source.added",
            f"Source {row['name']!r} added",
            source=row["name"],
            sourceId=row["id"],
            dialect=row["dialect"],
        )
    request.app.state.services.connectors.wake()
    return source_json(row, row["resume_secret"])


@get(
    "/v1/sources",
    guards=[requires("admin")],
    operation_id="listSources",
    tags=TAGS,
    summary="Every source with its status, cursor, last error and counts",
    responses=errors(),
)
async def list_sources(request: Request[Any, Any, Any]) -> SourceList:
    """Every source with its status, cursor, last error and counts."""
    async with request.app.state.services.engine.connect() as conn:
        rows = (
            (await conn.execute(select(sources_table).order_by(sources_table.c.created_at)))
            .mappings()
            .all()
        )
    return SourceList(sources=[source_json(row) for row in rows])


@get(
    "/v1/sources/{source_id:str}",
    guards=[requires("admin")],
    operation_id="getSource",
    tags=TAGS,
    summary="One source",
    responses=errors(404),
)
async def get_source(request: Request[Any, Any, Any], source_id: SourceId) -> SourceOut:
    """One source."""
    return source_json(await _load(request, source_id))


@patch(
    "/v1/sources/{source_id:str}",
    guards=[requires("admin")],
    operation_id="updateSource",
    tags=TAGS,
    summary="Change a source (a new token, URL or resumeUrl); a failed source reconnects",
    responses=errors(404, 409, *WRITE_ERRORS),
)
async def update_source(
    request: Request[Any, Any, Any], source_id: SourceId, data: JSONBody[SourceUpdate]
) -> SourceOut:
    """Change a source (a new token, URL or resumeUrl); a failed source reconnects."""
    await _load(request, source_id)
    values = source_values(data, _destinations(request))
    if "name" in values:
        await _name_free(request, values["name"], source_id)
    if "token" in values:
        values["token_encrypted"] = encrypt(await _key(request), values.pop("token"))
    values.update(status="connecting", last_error=None, updated_at=now_iso())
    async with audit.change(request) as trail:
        await trail.conn.execute(
            update(sources_table).where(sources_table.c.id == source_id).values(**values)
        )
        changed = sorted(
            name for name in values if name not in ("status", "last_error", "updated_at")
        )
        trail.note(
            "source.changed",
            f"Source {source_id} changed",
            sourceId=source_id,
            changed=[name.removesuffix("_encrypted") for name in changed],
        )
    request.app.state.services.connectors.wake()
    return source_json(await _load(request, source_id))


@delete(
    "/v1/sources/{source_id:str}",
    guards=[requires("admin")],
    status_code=204,
    operation_id="deleteSource",
    tags=TAGS,
    summary="Stop subscribing; events already ingested stay in the log",
    responses=errors(404),
)
async def delete_source(request: Request[Any, Any, Any], source_id: SourceId) -> None:
    """Stop subscribing; events already ingested stay in the log."""
    row = await _load(request, source_id)
    async with audit.change(request) as trail:
        await trail.conn.execute(sql_delete(sources_table).where(sources_table.c.id == source_id))
        trail.note(
            "source.removed",
            f"Source {row['name']!r} removed",
            source=row["name"],
            sourceId=source_id,
        )
    request.app.state.services.connectors.wake()
