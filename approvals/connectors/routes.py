"""HTTP handlers for sources: the platform streams the service subscribes to."""

from __future__ import annotations

from typing import Any

from litestar import Request, delete, get, patch, post
from litestar.params import FromPath
from sqlalchemy import delete as sql_delete
from sqlalchemy import insert, select, update

from approvals.auth.guard import requires
from approvals.clock import now_iso
from approvals.connectors.dialects import DIALECTS
from approvals.connectors.models import Source
from approvals.db import one_or_404
from approvals.errors import ApiError, invalid
from approvals.events.log import new_id
from approvals.events.routes import read_json
from approvals.queue.schema import check_url
from approvals.secretbox import encrypt, service_key
from approvals.webhooks.signing import new_secret

sources_table = Source.__table__  # type: ignore[attr-defined]
FIELDS = {"name", "dialect", "url", "token", "resumeUrl", "history"}


def source_json(row: Any, resume_secret: str | None = None) -> dict[str, Any]:
    """The public JSON of a source: never its token; the resume secret only at creation."""
    out = {
        "id": row["id"],
        "name": row["name"],
        "dialect": row["dialect"],
        "url": row["url"],
        "resumeUrl": row["resume_url"],
        "history": row["history"],
        "status": row["status"],
        "cursor": row["cursor"],
        "lastError": row["last_error"],
        "eventsReceived": row["events_received"],
        "eventsSkipped": row["events_skipped"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }
    if resume_secret is not None:
        out["resumeSecret"] = resume_secret
    return out


def parse_source(body: Any, *, partial: bool = False) -> dict[str, Any]:
    """Check a source body; with ``partial`` only the given fields (an update)."""
    if not isinstance(body, dict):
        raise invalid("body", "must be a JSON object")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise invalid(f"body.{unknown[0]}", f"is not a field here ({', '.join(sorted(FIELDS))})")
    out: dict[str, Any] = {}
    if not partial or "name" in body:
        name = body.get("name")
        if not isinstance(name, str) or not name or len(name) > 200 or not name.isprintable():
            raise invalid("body.name", "must be 1 to 200 printable characters")
        out["name"] = name
    if not partial or "dialect" in body:
        if body.get("dialect") not in DIALECTS:
            raise invalid("body.dialect", f"must be one of {', '.join(sorted(DIALECTS))}")
        out["dialect"] = body["dialect"]
    if not partial or "url" in body:
        out["url"] = check_url(body.get("url"), "body.url")
    if not partial or "token" in body:
        token = body.get("token")
        if not isinstance(token, str) or not token or len(token) > 4000:
            raise invalid("body.token", "must be the platform's API token")
        out["token"] = token
    if body.get("resumeUrl") is not None:
        out["resume_url"] = check_url(body["resumeUrl"], "body.resumeUrl")
    elif "resumeUrl" in body:
        out["resume_url"] = None
    if "history" in body:
        if not isinstance(body["history"], bool):
            raise invalid("body.history", "must be true or false")
        out["history"] = body["history"]
    return out


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


def new_source(values: dict[str, Any], key: str) -> dict[str, Any]:
    """The row of a new source from checked values (the token encrypted with ``key``)."""
    values = dict(values)
    token = values.pop("token")
    now = now_iso()
    values.update(
        id=new_id("src"),
        token_encrypted=encrypt(key, token),
        resume_secret=new_secret(),
        history=values.get("history", False),
        resume_url=values.get("resume_url"),
        status="connecting",
        cursor=None,
        last_error=None,
        events_received=0,
        events_skipped=0,
        created_at=now,
        updated_at=now,
    )
    return values


@post("/v1/sources", guards=[requires("admin")], status_code=201)
async def create_source(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Subscribe to a platform stream; the answer carries ``resumeSecret`` once."""
    values = parse_source(await read_json(request))
    await _name_free(request, values["name"])
    row = new_source(values, await _key(request))
    async with request.app.state.services.engine.begin() as conn:
        await conn.execute(insert(sources_table).values(**row))
    request.app.state.services.connectors.wake()
    return source_json(row, row["resume_secret"])


@get("/v1/sources", guards=[requires("admin")])
async def list_sources(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Every source with its status, cursor, last error and counts."""
    async with request.app.state.services.engine.connect() as conn:
        rows = (
            (await conn.execute(select(sources_table).order_by(sources_table.c.created_at)))
            .mappings()
            .all()
        )
    return {"sources": [source_json(row) for row in rows]}


@get("/v1/sources/{source_id:str}", guards=[requires("admin")])
async def get_source(request: Request[Any, Any, Any], source_id: FromPath[str]) -> dict[str, Any]:
    """One source."""
    return source_json(await _load(request, source_id))


@patch("/v1/sources/{source_id:str}", guards=[requires("admin")])
async def update_source(
    request: Request[Any, Any, Any], source_id: FromPath[str]
) -> dict[str, Any]:
    """Change a source (a new token, URL or resumeUrl); a failed source reconnects."""
    await _load(request, source_id)
    values = parse_source(await read_json(request), partial=True)
    if "name" in values:
        await _name_free(request, values["name"], source_id)
    if "token" in values:
        values["token_encrypted"] = encrypt(await _key(request), values.pop("token"))
    values.update(status="connecting", last_error=None, updated_at=now_iso())
    async with request.app.state.services.engine.begin() as conn:
        await conn.execute(
            update(sources_table).where(sources_table.c.id == source_id).values(**values)
        )
    request.app.state.services.connectors.wake()
    return source_json(await _load(request, source_id))


@delete("/v1/sources/{source_id:str}", guards=[requires("admin")], status_code=204)
async def delete_source(request: Request[Any, Any, Any], source_id: FromPath[str]) -> None:
    """Stop subscribing; events already ingested stay in the log."""
    await _load(request, source_id)
    async with request.app.state.services.engine.begin() as conn:
        await conn.execute(sql_delete(sources_table).where(sources_table.c.id == source_id))
    request.app.state.services.connectors.wake()
