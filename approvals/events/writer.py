"""SQLite's group-commit transactions in one thread hop.

Through aiosqlite every statement is several hand-offs to its thread and back
(about 70-90 µs each on a 2-core VM), and a single-event append made about
twenty of them. Here the whole transaction (head, keys, inserts, the append
hooks, commit) runs in a dedicated thread on a plain ``sqlite3`` connection,
one hand-off per batch.

The append hooks and decisions are ``async`` code that awaits
``tx.conn.execute``. ``ThreadConnection`` gives them a connection whose
awaitables complete at once, and ``drive`` runs such a coroutine to the end
without an event loop. Code that waits on anything else (a real future)
raises ``Suspended``: the transaction rolls back and the caller redoes the
batch on the ordinary async path, so correctness never depends on this path.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar, cast

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.pool import StaticPool

T = TypeVar("T")


class Suspended(RuntimeError):
    """Code run in the writer thread awaited something other than the database."""


def drive(awaitable: Awaitable[T]) -> T:
    """Run a coroutine that never suspends to its result, without an event loop."""
    coro = cast(Coroutine[Any, Any, T], awaitable)
    try:
        coro.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    coro.close()
    raise Suspended("the write awaited something other than the database")


class ThreadConnection:
    """What the log's transaction code needs of a connection, on a sync one."""

    def __init__(self, sync: Connection) -> None:
        self.sync_connection = sync
        self.raw: Any = sync.connection.driver_connection  # the sqlite3 connection

    def insert_rows(self, table: Any, rows: list[dict[str, Any]]) -> None:
        """INSERT rows through the sqlite3 cursor, with the columns' own bind processing.

        The hottest statement of the write path: SQLAlchemy's per-execution work
        costs several times what SQLite does for it.
        """
        sql, columns = _insert_plan(table, self.sync_connection.dialect)
        self.raw.executemany(
            sql,
            [
                tuple(
                    value if value is None or process is None else process(value)
                    for value, process in (
                        (row.get(name, default), process) for name, process, default in columns
                    )
                )
                for row in rows
            ],
        )

    def scalar_sql(self, sql: str, parameters: tuple[Any, ...] = ()) -> Any:
        """The first column of the first row of a raw query."""
        row = self.raw.execute(sql, parameters).fetchone()
        return None if row is None else row[0]

    def run_sql(self, sql: str, parameters: tuple[Any, ...] = ()) -> None:
        """Run one raw statement."""
        self.raw.execute(sql, parameters)

    async def execute(self, statement: Any, parameters: Any = None) -> Any:
        """Execute at once (no thread hop) and return the buffered result.

        A statement marked with ``prepared`` runs through the sqlite3 cursor.
        """
        if id(statement) in _PREPARED and (parameters is None or isinstance(parameters, dict)):
            plan = _plan(statement, parameters or {}, self.sync_connection.dialect)
            return plan.run(self.raw, parameters or {})
        return self.sync_connection.execute(statement, parameters)

    async def exec_driver_sql(self, statement: str, parameters: Any = None) -> Any:
        """Execute raw SQL at once."""
        return self.sync_connection.exec_driver_sql(statement, parameters)

    async def run_sync(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``fn`` with the sync connection, as ``AsyncConnection.run_sync`` does."""
        return fn(self.sync_connection, *args, **kwargs)


_PLANS: dict[str, tuple[str, list[tuple[str, Any, Any]]]] = {}
S = TypeVar("S")
# Statements the writer thread runs through the sqlite3 cursor: id -> the statement.
_PREPARED: dict[int, Any] = {}
_STATEMENT_PLANS: dict[tuple[int, frozenset[str]], _Plan] = {}


def prepared(statement: S) -> S:
    """Mark a statement built once (a module constant) for the writer thread's raw path.

    In SQLite's writer thread such a statement is compiled once per set of
    parameter names and then run straight through the sqlite3 cursor, with its
    columns' own bind and result processing: SQLAlchemy's per-execution work
    costs several times what SQLite spends on the statement. Its result offers
    what the write path uses: ``first``, ``all``, ``scalar``, ``scalar_one``,
    ``mappings()``, iteration and ``rowcount``. A statement with an expanding
    ``IN`` cannot be marked. Elsewhere the statement runs as usual.
    """
    _PREPARED[id(statement)] = statement
    return statement


class _Plan:
    """One compiled statement: its SQL, its parameters in order, its result columns."""

    def __init__(self, statement: Any, names: frozenset[str], dialect: Any) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=sorted(names))
        if compiled.positiontup is None or compiled.post_compile_params:
            raise TypeError("a prepared statement needs plain positional parameters")
        self.sql = compiled.string
        # Per parameter: its name, whether the caller must give it, its value otherwise
        # (a literal of the statement), its bind processing.
        self.binds: list[tuple[str, bool, Any, Any]] = []
        for name in compiled.positiontup:
            bind = compiled.binds[name]
            if bind.callable is not None:
                raise TypeError(f"{name}: a prepared statement takes no callable defaults")
            given = bind.required or name in names
            value = None if given else bind.value
            self.binds.append((name, given, value, bind.type.bind_processor(dialect)))
        self.keys: list[str] = []
        self.processors: list[Any] = []
        if getattr(statement, "is_select", False) or compiled.effective_returning:
            for key, _name, _objects, kind in compiled._result_columns:
                self.keys.append(key)
                self.processors.append(kind.result_processor(dialect, None))
        self.returns = bool(self.keys)

    def run(self, raw: Any, parameters: dict[str, Any]) -> _RawResult:
        values = []
        for name, given, literal, process in self.binds:
            if given and name not in parameters:
                raise KeyError(f"a value is required for the parameter {name!r}")
            value = parameters[name] if given else literal
            values.append(value if value is None or process is None else process(value))
        cursor = raw.execute(self.sql, values)
        if not self.returns:
            return _RawResult([], [], cursor.rowcount)
        processors = self.processors
        rows = [
            tuple(
                value if process is None or value is None else process(value)
                for value, process in zip(row, processors, strict=True)
            )
            for row in cursor.fetchall()
        ]
        return _RawResult(self.keys, rows, cursor.rowcount)


def _plan(statement: Any, parameters: dict[str, Any], dialect: Any) -> _Plan:
    key = (id(statement), frozenset(parameters))
    plan = _STATEMENT_PLANS.get(key)
    if plan is None:
        plan = _STATEMENT_PLANS[key] = _Plan(statement, key[1], dialect)
    return plan


class _RawResult:
    """A buffered result: the part of SQLAlchemy's ``Result`` the write path uses."""

    def __init__(self, keys: list[str], rows: list[tuple[Any, ...]], rowcount: int) -> None:
        self._keys = keys
        self._rows = rows
        self.rowcount = rowcount

    def __iter__(self) -> Any:
        return iter(self._rows)

    def all(self) -> list[tuple[Any, ...]]:
        return list(self._rows)

    def first(self) -> tuple[Any, ...] | None:
        return self._rows[0] if self._rows else None

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        if len(self._rows) != 1:
            raise LookupError(f"expected one row, got {len(self._rows)}")
        return self._rows[0][0]

    def mappings(self) -> _RawMappings:
        return _RawMappings([dict(zip(self._keys, row, strict=True)) for row in self._rows])


class _RawMappings:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self._rows = rows

    def __iter__(self) -> Any:
        return iter(self._rows)

    def all(self) -> list[dict[str, Any]]:
        return list(self._rows)

    def first(self) -> dict[str, Any] | None:
        return self._rows[0] if self._rows else None


def _insert_plan(table: Any, dialect: Any) -> tuple[str, list[tuple[str, Any, Any]]]:
    """The INSERT of every column, and per column its bind processing and default."""
    plan = _PLANS.get(table.name)
    if plan is None:
        columns = []
        for column in table.columns:
            default = column.default
            if default is not None and not default.is_scalar:
                raise TypeError(f"{table.name}.{column.name}: only scalar defaults are supported")
            value = default.arg if default is not None else None
            columns.append((column.name, column.type.bind_processor(dialect), value))
        marks = ", ".join("?" * len(columns))
        names = ", ".join(name for name, _, _ in columns)
        plan = (f"INSERT INTO {table.name} ({names}) VALUES ({marks})", columns)
        _PLANS[table.name] = plan
    return plan


def _engine(url: URL, pragmas: Callable[[Any, Any], None]) -> Engine:
    from sqlalchemy import create_engine

    engine = create_engine(
        url.set(drivername="sqlite+pysqlite"),
        poolclass=StaticPool,
        connect_args={"check_same_thread": False},
    )

    def connect(dbapi_connection: Any, record: Any) -> None:
        pragmas(dbapi_connection, record)
        dbapi_connection.isolation_level = None  # transactions begin where we say

    def begin(conn: Connection) -> None:
        # Take the write lock up front, as the log head update does on the async path.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(engine, "connect", connect)
    event.listen(engine, "begin", begin)
    return engine


class SqliteWriter:
    """One thread and one connection that run whole write transactions."""

    def __init__(self, url: URL, pragmas: Callable[[Any, Any], None]) -> None:
        self.engine = _engine(url, pragmas)
        self.thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._conn: Connection | None = None

    def connection(self) -> Connection:
        """The writer's connection (only ever used from the writer thread)."""
        if self._conn is None:
            self._conn = self.engine.connect()
        return self._conn

    def close(self) -> None:
        """Close the connection and stop the thread."""

        def shut() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self.engine.dispose()

        self.thread.submit(shut).result(10)
        self.thread.shutdown(wait=True)
