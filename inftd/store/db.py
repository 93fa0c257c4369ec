"""Engines for SQLite (WAL, foreign keys on) and PostgreSQL, from one database URL.

Users give plain URLs (``sqlite:///path`` or ``postgresql://...``); the driver for
synchronous work (migrations, CLI) and for the asyncio daemon is chosen here. Also
``insert_many``, the bulk insert of the indexer's backfill.

PostgreSQL connections are pinged before use only when they sat in the pool for
``IDLE_PING`` seconds or more (a restart or an idle timeout drops those), not on every
checkout: a busy worker checks a connection out a dozen times per job, and a ping each time
was a round trip each. A connection that drops while busy fails the one statement it was
running (SQLAlchemy then replaces every pooled connection made before the drop), and the
daemon's loops retry at their edges: a claim on the next wake-up, a run by the lease.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    Column,
    Connection,
    CursorResult,
    Dialect,
    Engine,
    Table,
    create_engine,
    event,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from inftd.store import sqlite_async
from inftd.store.errors import DatabaseUrlError

SQLITE_BUSY_TIMEOUT_MS = 5000  # writers wait this long for the WAL lock before failing
IDLE_PING = 10.0  # seconds in the pool after which a connection is pinged before its use
POOL_RECYCLE = 1800  # seconds: connections older than this are replaced at checkout
IDLE_SINCE = "inftd.idle_since"  # connection record info key: when it went back to the pool


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise DatabaseUrlError(url) from exc
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise DatabaseUrlError(url)
    return parsed


def is_sqlite(url: str) -> bool:
    return _parse(url).get_backend_name() == "sqlite"


def sync_url(url: str) -> URL:
    parsed = _parse(url)
    driver = "sqlite" if parsed.get_backend_name() == "sqlite" else "postgresql+psycopg"
    return parsed.set(drivername=driver)


def async_url(url: str) -> URL:
    parsed = _parse(url)
    driver = "sqlite+aiosqlite" if parsed.get_backend_name() == "sqlite" else "postgresql+psycopg"
    return parsed.set(drivername=driver)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


def _ensure_sqlite_dir(url: URL) -> None:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)


def _on_sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def ping_when_idle(engine: Engine, idle: float = IDLE_PING) -> None:
    """Ping a pooled connection before its use if it was idle ``idle`` seconds or more; a
    dead one is replaced (the pool retries the checkout on ``DisconnectionError``)."""

    def checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info[IDLE_SINCE] = time.monotonic()

    def checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop(IDLE_SINCE, None)
        if since is None or time.monotonic() - since < idle:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError(f"a pooled connection was dropped: {exc}") from exc

    event.listen(engine, "checkin", checkin)
    event.listen(engine, "checkout", checkout)


def create_sync_engine(url: str) -> Engine:
    target = sync_url(url)
    if target.get_backend_name() != "sqlite":
        engine = create_engine(target, pool_recycle=POOL_RECYCLE)
        ping_when_idle(engine)
        return engine
    _ensure_sqlite_dir(target)
    engine = create_engine(target, poolclass=NullPool)
    event.listen(engine, "connect", _on_sqlite_connect)
    return engine


def create_async(url: str, idle_ping: float = IDLE_PING) -> AsyncEngine:
    target = async_url(url)
    if target.get_backend_name() != "sqlite":
        engine = create_async_engine(target, pool_recycle=POOL_RECYCLE)
        ping_when_idle(engine.sync_engine, idle_ping)
        return engine
    _ensure_sqlite_dir(target)
    path = target.database or ":memory:"
    engine = create_async_engine(target, async_creator=lambda: sqlite_async.connect(path))
    event.listen(engine.sync_engine, "connect", _on_sqlite_connect)
    event.listen(engine.sync_engine, "begin", _begin_sqlite)
    engine.__class__ = SQLiteEngine  # the same engine, with ``begin()`` taking the write lock
    return engine


WRITES = "inftd_writes"  # execution option: this transaction will write (SQLite: lock now)


class SQLiteEngine(AsyncEngine):
    """``begin()`` takes SQLite's write lock as the transaction begins (``BEGIN IMMEDIATE``).

    The sqlite3 module begins a transaction only at its first write: what a transaction
    read before that came from other snapshots, and a writer on another connection could
    commit in between, so a decision read early was stale by the time it was written (a
    reorg's rollback read the signed mints, a relayer then committed one, and the rollback
    deleted it with its nonce unrecorded: bench.chaos found it). Holding the lock from the
    start makes the transaction's reads and writes one. ``connect()`` is for reads and
    keeps the module's behaviour: no lock, each statement a fresh snapshot."""

    __slots__ = ()

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        async with self.connect() as conn:
            await conn.execution_options(**{WRITES: True})
            async with conn.begin():
                yield conn


def _begin_sqlite(conn: Connection) -> None:
    if conn.get_execution_options().get(WRITES):
        driver = conn.connection.driver_connection
        assert isinstance(driver, sqlite_async.OneHopConnection)
        driver.begin = "BEGIN IMMEDIATE"  # sent with the first statement, in its hop


# -- bulk inserts ---------------------------------------------------------------------------

Processor = Callable[[Any], Any]
Columns = Mapping[str, Sequence[Any]]  # column name → its values, one per row


def _bind_processor(column: Column[Any], dialect: Dialect) -> Processor | None:
    """What SQLAlchemy does to a Python value of ``column`` before the driver gets it."""
    processor: Processor | None = column.type.dialect_impl(dialect).bind_processor(dialect)
    return processor


def _json_processor(process: Processor | None) -> Processor:
    """JSON text of a value, as SQLAlchemy's own processor would store it, but with orjson.

    Containers go through orjson (several times faster than json); what orjson refuses
    (an integer beyond 64 bits), and anything else, goes the standard way."""

    def standard(value: Any) -> Any:
        return process(value) if process else json.dumps(value)

    def text(value: Any) -> Any:
        if type(value) is dict or type(value) is list:
            try:
                return orjson.dumps(value).decode()
            except TypeError:
                return json.dumps(value)
        return standard(value)

    return text


def _driver_values(column: Column[Any], dialect: Dialect, values: Sequence[Any]) -> Sequence[Any]:
    """``values`` of ``column`` as the driver gets them; JSON as text (cast on PostgreSQL)."""
    process = _bind_processor(column, dialect)
    if isinstance(column.type, JSON):
        text = _json_processor(process if dialect.name != "postgresql" else None)
        return [text(v) for v in values]
    return [process(v) for v in values] if process else values


def _batch_default(column: Column[Any]) -> Any:
    """The column's Python-side default, evaluated once for a whole batch."""
    default: Any = column.default
    if default.is_scalar:
        return default.arg
    if default.is_callable:
        return default.arg(None)  # SQLAlchemy wraps zero-argument callables to take a context
    raise ValueError(f"insert_many cannot evaluate the default of {column}")


def _batch_defaults(table: Table, keys: Sequence[str]) -> dict[str, Any]:
    """The columns the rows leave out that have a Python-side default, with its value.

    The others left out (server defaults, autoincrement keys) are the database's to fill."""
    return {
        c.name: _batch_default(c)
        for c in table.columns
        if c.name not in keys and c.default is not None
    }


def _names(table: Table, dialect: Dialect, names: Sequence[str]) -> str:
    return ", ".join(dialect.identifier_preparer.quote(n) for n in names)


async def _insert_sqlite(
    conn: AsyncConnection, table: Table, columns: Columns, rows: int, skip_conflicts: bool
) -> CursorResult[Any]:
    dialect = conn.dialect
    fixed = _batch_defaults(table, list(columns))
    values = [_driver_values(table.c[k], dialect, v) for k, v in columns.items()]
    values += [list(_driver_values(table.c[k], dialect, [v])) * rows for k, v in fixed.items()]
    marks = ", ".join("?" for _ in values)
    conflict = " ON CONFLICT DO NOTHING" if skip_conflicts else ""
    sql = f"INSERT INTO {dialect.identifier_preparer.format_table(table)} "
    sql += f"({_names(table, dialect, [*columns, *fixed])}) VALUES ({marks}){conflict}"
    return await conn.exec_driver_sql(sql, list(zip(*values, strict=True)))


def _postgres_sql(
    table: Table, dialect: Dialect, keys: list[str], fixed: list[str], first: str | None
) -> str:
    def sql_type(name: str) -> str:
        return str(table.c[name].type.compile(dialect=dialect))

    def array_type(name: str) -> str:  # JSON travels as text (orjson's), cast in the query
        return "text" if isinstance(table.c[name].type, JSON) else sql_type(name)

    # Arrays travel in binary (%b): psycopg escapes text-format arrays element by element.
    arrays = ", ".join(f"%(r{i})b::{array_type(k)}[]" for i, k in enumerate(keys))
    scalars = [f"%(f{i})s::{sql_type(k)}" for i, k in enumerate(fixed)]
    aliases = [f"c{i}" for i in range(len(keys))]
    selected = [
        f"{a}::{sql_type(k)}" if isinstance(table.c[k].type, JSON) else a
        for a, k in zip(aliases, keys, strict=True)
    ]
    sql = (
        f"INSERT INTO {dialect.identifier_preparer.format_table(table)} "
        f"({_names(table, dialect, [*keys, *fixed])}) SELECT {', '.join([*selected, *scalars])} "
        f"FROM unnest({arrays}) AS r({', '.join(aliases)})"
    )
    if first is None:
        return sql
    # Every row comes out of the join with ``first``, so it has run before any row (and
    # its defaults: a sequence's next value) is made.
    return f"WITH first AS MATERIALIZED ({first}) {sql} CROSS JOIN first"


def _postgres_statement(
    conn: AsyncConnection,
    table: Table,
    columns: Columns,
    skip_conflicts: bool,
    first: str | None = None,
) -> tuple[str, dict[str, Any]]:
    dialect = conn.dialect
    fixed = _batch_defaults(table, list(columns))
    params: dict[str, Any] = {
        f"r{i}": list(_driver_values(table.c[k], dialect, v))
        for i, (k, v) in enumerate(columns.items())
    }
    for i, (key, value) in enumerate(fixed.items()):
        process = _bind_processor(table.c[key], dialect)
        params[f"f{i}"] = process(value) if process else value
    sql = _postgres_sql(table, dialect, list(columns), list(fixed), first)
    if skip_conflicts:
        sql += " ON CONFLICT DO NOTHING"
    return sql, params


def _row_count(columns: Columns) -> int:
    counts = {len(values) for values in columns.values()}
    if len(counts) != 1:
        raise ValueError(f"bulk inserts need columns of one length, got {sorted(counts)}")
    return counts.pop()


async def insert_columns(
    conn: AsyncConnection,
    table: Table,
    columns: Columns,
    *,
    skip_conflicts: bool = False,
    first: str | None = None,
) -> int:
    """INSERT rows given column by column (lists of equal length); returns how many went in.

    The rows come out as SQLAlchemy's own executemany would write them: values go through
    the columns' types, missing columns get their Python-side defaults (evaluated once for
    the batch), server defaults and autoincrement keys are left to the database. It skips
    SQLAlchemy's per-row work, which dominates a backfill: SQLite gets one prepared
    statement run by ``executemany``, PostgreSQL an ``INSERT ... SELECT FROM unnest(...)``
    over one array per column; JSON is written by orjson. ``skip_conflicts`` adds
    ON CONFLICT DO NOTHING. ``first`` (PostgreSQL only): a SELECT of constants run in the
    same statement before any row is made, such as taking a lock.
    """
    rows = _row_count(columns)
    if not rows:
        return 0
    if conn.dialect.name != "postgresql":
        if first is not None:
            raise ValueError("insert_columns(first=...) needs PostgreSQL")
        result = await _insert_sqlite(conn, table, columns, rows, skip_conflicts)
        return max(result.rowcount, 0)  # sqlite3 sums executemany's changes: skipped add 0
    sql, params = _postgres_statement(conn, table, columns, skip_conflicts, first)
    result = await conn.exec_driver_sql(sql, params)
    return max(result.rowcount, 0)  # one statement: its rowcount counts the rows inserted


async def insert_returning(
    conn: AsyncConnection,
    table: Table,
    columns: Columns,
    returning: Sequence[str],
    *,
    skip_conflicts: bool = False,
    first: str | None = None,
) -> list[tuple[Any, ...]]:
    """``insert_columns`` on PostgreSQL, returning ``returning`` of each row inserted (in no
    promised order). SQLite has no RETURNING for executemany: callers choose keys there."""
    if conn.dialect.name != "postgresql":
        raise ValueError("insert_returning needs PostgreSQL")
    if not _row_count(columns):
        return []
    sql, params = _postgres_statement(conn, table, columns, skip_conflicts, first)
    sql += f" RETURNING {_names(table, conn.dialect, returning)}"
    return [tuple(row) for row in await conn.exec_driver_sql(sql, params)]


async def insert_numbered(
    conn: AsyncConnection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    also: str,
    *,
    first: str | None = None,
) -> list[tuple[int, Any]]:
    """INSERT ``rows`` (as ``insert_many``) into a table whose key the database numbers;
    returns (key, value of column ``also``) of each row written. One statement on either
    database: on SQLite the driver reads ``last_insert_rowid()`` in the statement's own hop
    (the rows of one statement, under the write lock, get consecutive keys in order)."""
    if not rows:
        return []
    columns = {key: [row[key] for row in rows] for key in rows[0]}
    if conn.dialect.name == "postgresql":
        (key,) = table.primary_key.columns.keys()
        written = await insert_returning(conn, table, columns, [key, also], first=first)
        return [(int(number), value) for number, value in written]
    if first is not None:
        raise ValueError("insert_numbered(first=...) needs PostgreSQL")
    result = await _insert_sqlite(conn, table, columns, len(rows), skip_conflicts=False)
    start = int(result.lastrowid) - len(rows) + 1
    return [(start + i, value) for i, value in enumerate(columns[also])]


async def insert_many(
    conn: AsyncConnection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    skip_conflicts: bool = False,
    first: str | None = None,
) -> int:
    """INSERT ``rows`` (dicts with the same keys) in one statement: ``insert_columns``."""
    if not rows:
        return 0
    columns = {key: [row[key] for row in rows] for key in rows[0]}
    return await insert_columns(conn, table, columns, skip_conflicts=skip_conflicts, first=first)
