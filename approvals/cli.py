"""The ``approvals`` command line: serve, keys, and the rest."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from sqlalchemy.engine import URL, Connection

from approvals.config import Settings
from approvals.db import DatabaseUrlError, make_sync_engine, migrate, parse_url

app = typer.Typer(help="Human-in-the-loop approvals for AI agents.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
webhooks_app = typer.Typer(help="Webhook settings.", no_args_is_help=True)
app.add_typer(webhooks_app, name="webhooks")
users_app = typer.Typer(help="Dashboard reviewers.", no_args_is_help=True)
app.add_typer(users_app, name="users")
sources_app = typer.Typer(help="Platform streams the service subscribes to.", no_args_is_help=True)
app.add_typer(sources_app, name="sources")


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


def _database() -> tuple[Settings, URL]:
    settings = Settings.from_env()
    try:
        url = parse_url(settings.database_url)
    except DatabaseUrlError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    migrate(url)
    return settings, url


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Migrate the database, then serve the API, streams and dashboard."""
    import uvicorn

    from approvals.app import create_app

    settings, url = _database()
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    typer.echo(f"approvals: database {url.render_as_string(hide_password=True)}", err=True)
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=2,
        proxy_headers=False,
    )
    uvicorn.Server(config).run()


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="A name for the key, shown as resolvedBy.")],
    scope: Annotated[
        list[str],
        typer.Option(
            "--scope",
            help="events:read, events:write, approvals:read, approvals:resolve or admin.",
        ),
    ],
) -> None:
    """Create an API key; the key is the last line printed."""
    from approvals.auth.keys import KeyError_, create_key

    try:
        with _transaction() as (_, conn):
            key = create_key(conn, name, scope)
    except KeyError_ as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"Created key {name!r} with scopes {', '.join(sorted(set(scope)))}.")
    typer.echo("Store it now: it is kept only as a hash and cannot be shown again.")
    typer.echo(key)


@keys_app.command("list")
def keys_list() -> None:
    """List keys: name, prefix, scopes, created and revoked dates."""
    from approvals.auth.keys import list_keys

    with _transaction() as (_, conn):
        rows = list_keys(conn)
    if not rows:
        typer.echo("No keys yet: approvals keys create NAME --scope SCOPE")
    for row in rows:
        state = f"revoked {row['revokedAt']}" if row["revokedAt"] else "active"
        typer.echo(f"{row['name']}\t{row['prefix']}…\t{row['scopes']}\t{row['createdAt']}\t{state}")


@keys_app.command("revoke")
def keys_revoke(name: Annotated[str, typer.Argument(help="The key's name.")]) -> None:
    """Revoke a key; requests with it are refused from now on."""
    from approvals.auth.keys import KeyError_, revoke_key

    try:
        with _transaction() as (_, conn):
            revoke_key(conn, name)
    except KeyError_ as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"Revoked key {name!r}.")


@webhooks_app.command("callback-secret")
def webhooks_callback_secret() -> None:
    """Print the secret that signs approval callbacks (callbackUrl deliveries)."""
    from approvals.webhooks.secrets import callback_secret

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

    from approvals.connectors.routes import new_source, parse_source, sources_table
    from approvals.errors import ApiError
    from approvals.secretbox import service_key

    if token_stdin:
        token = sys.stdin.readline().strip()
    body: dict[str, object] = {"name": name, "dialect": dialect, "url": url, "token": token}
    if resume_url:
        body["resumeUrl"] = resume_url
    if history:
        body["history"] = True
    try:
        values = parse_source(body)
    except ApiError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    with _transaction() as (settings, conn):
        taken = conn.execute(select(sources_table.c.id).where(sources_table.c.name == name))
        if taken.first() is not None:
            typer.echo(f"error: a source named {name!r} exists", err=True)
            raise typer.Exit(2)
        row = new_source(values, service_key(conn, settings.secret_key))
        conn.execute(insert(sources_table).values(**row))
    typer.echo(f"Added source {name!r} ({dialect}); a running service connects within seconds.")
    typer.echo("Resume secret (verifies decisions sent to the resume URL), shown once:")
    typer.echo(row["resume_secret"])


@sources_app.command("list")
def sources_list() -> None:
    """List sources: name, dialect, status, cursor, counts and last error (never tokens)."""
    from sqlalchemy import select

    from approvals.connectors.routes import sources_table

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

    from approvals.connectors.routes import sources_table

    with _transaction() as (_, conn):
        result = conn.execute(delete(sources_table).where(sources_table.c.name == name))
    if result.rowcount == 0:
        typer.echo(f"error: no source named {name!r}", err=True)
        raise typer.Exit(2)
    typer.echo(f"Removed source {name!r}.")


@users_app.command("create")
def users_create(
    name: Annotated[str, typer.Argument(help="The reviewer's username (their resolvedBy).")],
    password_stdin: Annotated[
        bool, typer.Option(help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create a dashboard reviewer; the password is stored as an argon2 hash."""
    import sys

    from approvals.dashboard.users import UserError, create_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        with _transaction() as (_, conn):
            create_user(conn, name, password)
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"Created reviewer {name!r}; they can sign in at /login.")


@app.command()
def demo(
    url: Annotated[str, typer.Option(help="The running service.")] = "http://127.0.0.1:8000",
    key: Annotated[
        str, typer.Option(help="A key with events:write (default: create one locally).")
    ] = "",
    runs: Annotated[int, typer.Option(help="How many agent runs to simulate.")] = 4,
    pace: Annotated[float, typer.Option(help="Seconds between events.")] = 0.3,
) -> None:
    """Simulate agents that stream work and pause on realistic steering requests."""
    from approvals.demo import run_demo

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
