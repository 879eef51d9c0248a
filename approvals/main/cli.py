"""The ``approvals`` command line: serve, keys, and the rest."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy import inspect
from sqlalchemy.engine import URL, Connection

from approvals.core.config import Settings
from approvals.core.db import DatabaseUrlError, make_sync_engine, migrate, parse_url
from approvals.main import export, terminal
from approvals.main.users_cli import register as register_user_commands
from approvals.mcp import cli as mcp_cli

T = TypeVar("T")
app = typer.Typer(help="Human-in-the-loop approvals for AI agents.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
webhooks_app = typer.Typer(help="Webhook settings.", no_args_is_help=True)
app.add_typer(webhooks_app, name="webhooks")
users_app = typer.Typer(help="Dashboard reviewers.", no_args_is_help=True)
app.add_typer(users_app, name="users")
sources_app = typer.Typer(help="Platform streams the service subscribes to.", no_args_is_help=True)
app.add_typer(sources_app, name="sources")
terminal.register(app)  # pending, show, approve, reject, answer: over the HTTP API
mcp_cli.register(app)  # mcp gate, mcp serve, hook claude-code: over the HTTP API
export.register(app)  # export: the log to NDJSON or CSV, over the HTTP API


@contextmanager
def _transaction() -> Iterator[tuple[Settings, Connection]]:
    """A connection to the migrated database, in a transaction committed on success."""
    settings, url = _database()
    engine = make_sync_engine(url)
    try:
        with engine.begin() as conn:
            yield settings, conn
    finally:
        engine.dispose()


def _database(announce: bool = False) -> tuple[Settings, URL]:
    """Open and migrate the configured database, saying which when it is not the default."""
    settings = Settings.from_env()
    try:
        url = parse_url(settings.database_url)
    except DatabaseUrlError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    shown = url.render_as_string(hide_password=True)
    if announce or settings.database_url != Settings.database_url:
        typer.echo(f"approvals: database {shown}", err=True)
    fresh = _is_new(url)
    migrate(url)
    if fresh:
        typer.echo(
            f"approvals: warning: created a new, empty database at {shown} "
            "(set APPROVALS_DATABASE_URL to use another)",
            err=True,
        )
    return settings, url


def _is_new(url: URL) -> bool:
    """Tell whether the database holds no approvals schema yet (a SQLite file not there)."""
    if url.get_backend_name() == "sqlite":
        path = url.database or ""
        return path in ("", ":memory:") or not os.path.exists(path)
    engine = make_sync_engine(url)
    try:
        with engine.connect() as conn:
            return not inspect(conn).has_table("alembic_version")
    except Exception:
        return False  # migrate() reports an unreachable server itself
    finally:
        engine.dispose()


class _QuietShutdown(logging.Filter):
    """Drop uvicorn's noise about open SSE streams cancelled at shutdown (Ctrl-C)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "timeout graceful shutdown exceeded" in record.getMessage():
            return False
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, asyncio.CancelledError)


def _listen(host: str | None, port: int | None) -> tuple[str, int]:
    """Where ``serve`` listens: the options, else ``APPROVALS_URL`` when it names this
    machine (so one setting points the service, the CLI and the SDK at the same place),
    else 127.0.0.1:8000."""
    from urllib.parse import urlsplit

    from approvals.client.transport import DEFAULT_URL, service_url

    parts = urlsplit(service_url())
    try:
        local = parts.hostname in ("localhost", "127.0.0.1", "::1") and parts.port is not None
    except ValueError:
        local = False
    default = parts if local else urlsplit(DEFAULT_URL)
    return host or default.hostname or "127.0.0.1", port or default.port or 8000


def _point_clients(host: str, port: int) -> None:
    """Say how to aim the CLI and the SDK here when they would look elsewhere."""
    from approvals.client.transport import service_url

    shown = f"[{host}]" if ":" in host else host
    here = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else shown}:{port}"
    configured = os.environ.get("APPROVALS_URL")
    local = configured is None or any(
        configured.startswith(f"{scheme}://{name}")
        for scheme in ("http", "https")
        for name in ("127.0.0.1", "localhost", "[::1]")
    )
    if local and service_url() != here:
        typer.echo(
            f"approvals: clients look for the service at {service_url()}; "
            f"point them here with: export APPROVALS_URL={here}",
            err=True,
        )


@app.command()
def serve(
    host: Annotated[
        str | None,
        typer.Option(
            help="Address to listen on (default: APPROVALS_URL's when it is this machine, "
            "else 127.0.0.1).",
            show_default=False,
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            help="Port to listen on (default: APPROVALS_URL's when it is this machine, else 8000).",
            show_default=False,
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    workers: Annotated[
        int, typer.Option(min=1, help="Server processes sharing the port (one per core).")
    ] = 1,
) -> None:
    """Migrate the database, then serve the API, streams and dashboard."""
    import uvicorn

    from approvals.main.app import create_app

    host, port = _listen(host, port)
    settings, _ = _database(announce=True)
    _point_clients(host, port)
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "timeout_graceful_shutdown": 2,
        # Only a proxy named in APPROVALS_TRUSTED_PROXIES may set the client address and
        # scheme (X-Forwarded-For, X-Forwarded-Proto); nobody by default.
        "proxy_headers": bool(settings.trusted_proxies),
        "forwarded_allow_ips": settings.trusted_proxies or None,
    }
    logging.getLogger("uvicorn.error").addFilter(_QuietShutdown())
    if workers > 1:
        # Each worker process builds its own app from the same environment and
        # coordinates with the others through the database (see docs/deploy.md).
        # A busy machine can take more than uvicorn's default 5 s to start a worker.
        with contextlib.suppress(KeyboardInterrupt):
            uvicorn.run(
                "approvals.main.app:create_app",
                factory=True,
                workers=workers,
                timeout_worker_healthcheck=30,
                **options,
            )
        return
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(uvicorn.Config(create_app(settings), **options)).run()


class CommandError(ValueError):
    """A command cannot do what it was asked; the message says why."""


def _audited(work: Callable[[Connection, Any], T]) -> T:
    """Run a change and the audit events it records in one transaction; exit 2 on errors."""
    from approvals.auth.keys import KeyError_
    from approvals.auth.users import UserError
    from approvals.services import run_audited

    _, url = _database()
    try:
        return run_audited(url, work)
    except (KeyError_, UserError, CommandError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@keys_app.command("create")
def keys_create(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="A name for the key, shown as resolvedBy.")
    ],
    scope: Annotated[
        list[str],
        typer.Option(
            "--scope",
            metavar="SCOPE (repeatable)",
            help="events:read, events:write, approvals:read, approvals:resolve or admin; "
            "give --scope once per scope.",
        ),
    ],
    expires: Annotated[
        str | None,
        typer.Option(metavar="DURATION", help="End the key this long from now: 90d, 12h, 30m, 2w."),
    ] = None,
    rate: Annotated[
        str | None,
        typer.Option(
            "--rate",
            metavar="RATE",
            help="This key's rate limit, like '50/s' or '50/s burst 200' or 'off' "
            "(default: APPROVALS_RATE_LIMIT).",
        ),
    ] = None,
) -> None:
    """Create an API key; the key is the last line printed."""
    from approvals.auth.keys import create_key, parse_duration

    def work(conn: Connection, record: Any) -> str:
        lifetime = parse_duration(expires) if expires is not None else None
        key = create_key(conn, name, scope, lifetime, rate)
        record(
            "key.created",
            f"Key {name!r} created",
            key=name,
            scopes=sorted(set(scope)),
            expires=expires,
            rate=rate,
        )
        return key

    key = _audited(work)
    typer.echo(f"Created key {name!r} with scopes {', '.join(sorted(set(scope)))}.")
    if expires:
        typer.echo(f"It expires in {expires}.")
    typer.echo("Store it now: it is kept only as a hash and cannot be shown again.")
    typer.echo(key)


@keys_app.command("list")
def keys_list() -> None:
    """List keys: name, prefix, scopes, rate, created date and state (expiry, revocation)."""
    from approvals.auth.keys import key_state, list_keys

    with _transaction() as (_, conn):
        rows = list_keys(conn)
    if not rows:
        typer.echo("No keys yet: approvals keys create NAME --scope SCOPE")
    for row in rows:
        typer.echo(
            f"{row['name']}\t{row['prefix']}…\t{row['scopes']}\t{row['rate'] or 'default rate'}\t"
            f"{row['createdAt']}\t{key_state(row)}"
        )


@keys_app.command("revoke")
def keys_revoke(name: Annotated[str, typer.Argument(help="The key's name.")]) -> None:
    """Revoke a key; requests with it are refused from now on."""
    from approvals.auth.keys import revoke_key

    def work(conn: Connection, record: Any) -> None:
        revoke_key(conn, name)
        record("key.revoked", f"Key {name!r} revoked", key=name)

    _audited(work)
    typer.echo(f"Revoked key {name!r}.")


@keys_app.command("rotate")
def keys_rotate(
    name: Annotated[str, typer.Argument(help="The key's name.")],
    grace: Annotated[
        str,
        typer.Option(metavar="DURATION", help="How long the old key keeps working: 24h, 7d."),
    ] = "24h",
) -> None:
    """Issue a new key with the same scopes; the old one works for a grace period."""
    from approvals.auth.keys import parse_duration, rotate_key

    def work(conn: Connection, record: Any) -> str:
        key = rotate_key(conn, name, parse_duration(grace))
        record("key.rotated", f"Key {name!r} rotated", key=name, grace=grace)
        return key

    key = _audited(work)
    typer.echo(f"Rotated key {name!r}: the old key keeps working for {grace}.")
    typer.echo("Store the new key now: it is kept only as a hash and cannot be shown again.")
    typer.echo(key)


@webhooks_app.command("callback-secret")
def webhooks_callback_secret() -> None:
    """Print the secret that signs approval callbacks (callbackUrl deliveries)."""
    from approvals.delivery.secrets import callback_secret

    with _transaction() as (_, conn):
        secret = callback_secret(conn)
    typer.echo(secret)


@sources_app.command("add")
def sources_add(
    name: Annotated[str, typer.Argument(help="A name; ingested events carry it as source.")],
    dialect: Annotated[str, typer.Option(help="prism, agent-events, agui, cerca or brainroad.")],
    url: Annotated[str, typer.Option(help="The platform's full stream URL.")],
    token: Annotated[str, typer.Option(help="The platform API token (stored encrypted).")] = "",
    token_stdin: Annotated[bool, typer.Option(help="Read the token from standard input.")] = False,
    resume_url: Annotated[str, typer.Option(help="Where decisions are sent back.")] = "",
    history: Annotated[bool, typer.Option(help="Ask for history on the first connection.")] = False,
) -> None:
    """Subscribe to a platform stream; prints the resume secret as the last line."""
    import sys

    from sqlalchemy import insert, select

    from approvals.connectors.schema import SourceCreate
    from approvals.connectors.sources import new_source, source_values, sources_table
    from approvals.core.contract import convert
    from approvals.core.errors import ApiError
    from approvals.core.outbound import parse as parse_destinations
    from approvals.core.secretbox import service_key

    if token_stdin:
        token = sys.stdin.readline().strip()
    body: dict[str, object] = {"name": name, "dialect": dialect, "url": url, "token": token}
    if resume_url:
        body["resumeUrl"] = resume_url
    if history:
        body["history"] = True
    try:
        # The resumeUrl is checked against this environment's outbound setting.
        destinations = parse_destinations(Settings.from_env().webhook_allowed)
        values = source_values(convert(body, SourceCreate), destinations)
    except ApiError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    settings = Settings.from_env()

    def work(conn: Connection, record: Any) -> dict[str, Any]:
        taken = conn.execute(select(sources_table.c.id).where(sources_table.c.name == name))
        if taken.first() is not None:
            raise CommandError(f"a source named {name!r} exists")
        row = new_source(values, service_key(conn, settings.secret_key))
        conn.execute(insert(sources_table).values(**row))
        record("source.added", f"Source {name!r} added", source=name, dialect=dialect)
        return row

    row = _audited(work)
    typer.echo(f"Added source {name!r} ({dialect}); a running service connects within seconds.")
    typer.echo("Resume secret (verifies decisions sent to the resume URL), shown once:")
    typer.echo(row["resume_secret"])


@sources_app.command("list")
def sources_list() -> None:
    """List sources: name, dialect, status, cursor, counts and last error (never tokens)."""
    from sqlalchemy import select

    from approvals.connectors.sources import sources_table

    with _transaction() as (_, conn):
        result = conn.execute(select(sources_table).order_by(sources_table.c.created_at))
        rows = [dict(row) for row in result.mappings()]
    if not rows:
        typer.echo("No sources yet: approvals sources add NAME --dialect D --url URL --token T")
    for row in rows:
        typer.echo(
            f"{row['name']}\t{row['dialect']}\t{row['status']}\tcursor={row['cursor']}\t"
            f"received={row['events_received']}\tskipped={row['events_skipped']}\t"
            f"{row['last_error'] or ''}"
        )


@sources_app.command("remove")
def sources_remove(name: Annotated[str, typer.Argument(help="The source's name.")]) -> None:
    """Stop subscribing to a source (its events stay in the log)."""
    from sqlalchemy import delete

    from approvals.connectors.sources import sources_table

    def work(conn: Connection, record: Any) -> None:
        result = conn.execute(delete(sources_table).where(sources_table.c.name == name))
        if result.rowcount == 0:
            raise CommandError(f"no source named {name!r}")
        record("source.removed", f"Source {name!r} removed", source=name)

    _audited(work)
    typer.echo(f"Removed source {name!r}.")


@app.command()
def demo(
    url: Annotated[
        str | None,
        typer.Option(
            envvar="APPROVALS_URL",
            help="The running service (default: APPROVALS_URL, else http://127.0.0.1:8000).",
            show_default=False,
        ),
    ] = None,
    key: Annotated[
        str, typer.Option(help="A key with events:write (default: create one locally).")
    ] = "",
    runs: Annotated[int, typer.Option(help="How many agent runs to simulate.")] = 4,
    pace: Annotated[float, typer.Option(help="Seconds between events.")] = 0.3,
) -> None:
    """Simulate agents that stream work and pause on realistic steering requests."""
    import httpx

    from approvals.client.transport import service_url, transport_error
    from approvals.main.demo import run_demo

    url = service_url(url)
    try:  # reach the service before creating anything
        httpx.get(url + "/healthz", timeout=5).raise_for_status()
    except httpx.HTTPStatusError as exc:
        typer.echo(f"error: {url}/healthz answered {exc.response.status_code}: is that the "
                   "approvals service? Set APPROVALS_URL or pass --url", err=True)  # fmt: skip
        raise typer.Exit(1) from exc
    except httpx.HTTPError as exc:
        typer.echo(f"error: {transport_error(exc).message}", err=True)
        raise typer.Exit(1) from exc
    if not key:
        from approvals.auth.keys import create_key

        with _transaction() as (_, conn):
            import secrets

            key = create_key(conn, f"demo-agent-{secrets.token_hex(2)}", ["events:write"])
        typer.echo("Created a demo key with events:write in the local database.")
    try:
        run_demo(url, key, runs=runs, pace=pace, echo=typer.echo)
    except Exception as exc:  # a clear message, not a traceback, when the service is away
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


register_user_commands(users_app, _transaction, _audited)
