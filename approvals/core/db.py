"""Database engines, SQLite pragmas and migrations."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Table, create_engine, event, select, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from approvals.core.config import sqlite_synchronous
from approvals.core.errors import not_found

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
MIGRATION_LOCK = 7_400_001  # pg_advisory_lock key held while migrating


class DatabaseUrlError(ValueError):
    """The configured database URL is not one this service can use."""


def parse_url(raw: str) -> URL:
    """Parse ``sqlite:///…`` or ``postgresql://…`` into a SQLAlchemy URL."""
    try:
        url = make_url(raw)
    except Exception as exc:
        raise DatabaseUrlError(f"APPROVALS_DATABASE_URL is not a URL: {raw!r}") from exc
    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise DatabaseUrlError(
            f"APPROVALS_DATABASE_URL must start with sqlite:/// or postgresql://, got {backend}"
        )
    return url


def is_postgres(url: URL) -> bool:
    """Tell whether the URL names a PostgreSQL database."""
    return url.get_backend_name() == "postgresql"


def sync_url(url: URL) -> URL:
    """The URL with the synchronous driver this service uses."""
    if is_postgres(url):
        return url.set(drivername="postgresql+psycopg")
    return url.set(drivername="sqlite+pysqlite")


def async_url(url: URL) -> URL:
    """The URL with the asyncio driver this service uses."""
    if is_postgres(url):
        return url.set(drivername="postgresql+psycopg")
    return url.set(drivername="sqlite+aiosqlite")


def libpq_dsn(url: URL) -> str:
    """A plain ``postgresql://`` DSN for psycopg's own connections (LISTEN)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL unless the operator opted out: the group commit keeps its cost small.
    cursor.execute(f"PRAGMA synchronous={sqlite_synchronous().upper()}")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    try:  # the figures' histogram buckets (rollup.bucket) need ln and ceil
        cursor.execute("SELECT ln(2.0), ceil(1.5)")
    except Exception:  # an SQLite built without its math functions: Python's, the same libm
        dbapi_connection.create_function("ln", 1, _ln, deterministic=True)
        dbapi_connection.create_function("ceil", 1, _ceil, deterministic=True)
    cursor.close()


def _ln(value: float | None) -> float | None:
    return None if value is None or value <= 0 else math.log(value)


def _ceil(value: float | None) -> int | None:
    return None if value is None else math.ceil(value)


def make_async_engine(url: URL, pool_size: int = 10) -> AsyncEngine:
    """Create the service's asyncio engine (PostgreSQL: up to 3 x ``pool_size`` connections)."""
    if is_postgres(url):
        return create_async_engine(
            async_url(url),
            pool_size=max(pool_size, 1),
            max_overflow=max(pool_size, 1) * 2,
            pool_pre_ping=True,
        )
    # Every write here commits or rolls back explicitly and reads open no SQLite
    # transaction, so skip the rollback-on-checkin (a thread hop per use with aiosqlite).
    engine = create_async_engine(
        async_url(url), pool_size=5, max_overflow=10, pool_reset_on_return=None
    )
    event.listen(engine.sync_engine, "connect", sqlite_pragmas)
    return engine


def make_sync_engine(url: URL) -> Engine:
    """Create a synchronous engine (migrations and the command line)."""
    engine = create_engine(sync_url(url))
    if not is_postgres(url):
        event.listen(engine, "connect", sqlite_pragmas)
    return engine


def migrate(url: URL) -> None:
    """Bring the database schema up to date (safe with several processes)."""
    engine = make_sync_engine(url)
    try:
        with engine.connect() as connection:
            if is_postgres(url):
                connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
                connection.commit()
            try:
                config = Config()
                config.set_main_option("script_location", str(MIGRATIONS))
                config.attributes["connection"] = connection
                # Features add their migrations as branches from a shared base; apply every head.
                command.upgrade(config, "heads")
                connection.commit()
            finally:
                if is_postgres(url):
                    connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
                    connection.commit()
    finally:
        engine.dispose()


async def one_or_404(engine: AsyncEngine, table: Table, row_id: str, what: str) -> Any:
    """The row of ``table`` whose ``id`` is ``row_id``; a 404 naming ``what`` otherwise."""
    async with engine.connect() as conn:
        query = select(table).where(table.c.id == row_id)
        row = (await conn.execute(query)).mappings().first()
    if row is None:
        raise not_found(f"{what} {row_id}")
    return row
