"""Engines for SQLite (WAL, foreign keys on) and PostgreSQL, from one database URL.

Users give plain URLs (``sqlite:///path`` or ``postgresql://...``); the driver for
synchronous work (migrations, CLI) and for the asyncio daemon is chosen here. Also
``insert_many``, the bulk insert of the indexer's backfill.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Dialect, Engine, Table, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from inftd.store.errors import DatabaseUrlError

SQLITE_BUSY_TIMEOUT_MS = 5000  # writers wait this long for the WAL lock before failing


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


def create_sync_engine(url: str) -> Engine:
    target = sync_url(url)
    if target.get_backend_name() != "sqlite":
        return create_engine(target, pool_pre_ping=True)
    _ensure_sqlite_dir(target)
    engine = create_engine(target, poolclass=NullPool)
    event.listen(engine, "connect", _on_sqlite_connect)
    return engine


def create_async(url: str) -> AsyncEngine:
    target = async_url(url)
    if target.get_backend_name() != "sqlite":
        return create_async_engine(target, pool_pre_ping=True)
    _ensure_sqlite_dir(target)
    engine = create_async_engine(target)
    event.listen(engine.sync_engine, "connect", _on_sqlite_connect)
    return engine


# -- bulk inserts ---------------------------------------------------------------------------

Processor = Callable[[Any], Any]


def _bind_processor(column: Column[Any], dialect: Dialect) -> Processor | None:
    """What SQLAlchemy does to a Python value of ``column`` before the driver gets it."""
    processor: Processor | None = column.type.dialect_impl(dialect).bind_processor(dialect)
    return processor


def _bind(column: Column[Any], dialect: Dialect, value: Any) -> Any:
    process = _bind_processor(column, dialect)
    return process(value) if process else value


def _row_maker(
    table: Table, dialect: Dialect, keys: list[str], constants: list[Any]
) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """Turns a row into the driver's parameters: ``keys`` in order, then ``constants``."""
    processors = [
        (i, process)
        for i, key in enumerate(keys)
        if (process := _bind_processor(table.c[key], dialect)) is not None
    ]

    def make(row: Mapping[str, Any]) -> tuple[Any, ...]:
        values = [row[key] for key in keys]
        for i, process in processors:
            values[i] = process(values[i])
        values.extend(constants)
        return tuple(values)

    return make


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


async def _insert_sqlite(
    conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]], skip_conflicts: bool
) -> int:
    keys = list(rows[0])
    fixed = _batch_defaults(table, keys)
    dialect = conn.dialect
    constants = [_bind(table.c[k], dialect, v) for k, v in fixed.items()]
    make = _row_maker(table, dialect, keys, constants)
    names = ", ".join(dialect.identifier_preparer.quote(n) for n in [*keys, *fixed])
    marks = ", ".join("?" for _ in range(len(keys) + len(fixed)))
    conflict = " ON CONFLICT DO NOTHING" if skip_conflicts else ""
    sql = f"INSERT INTO {dialect.identifier_preparer.format_table(table)} ({names}) "
    sql += f"VALUES ({marks}){conflict}"
    result = await conn.exec_driver_sql(sql, [make(row) for row in rows])
    return max(result.rowcount, 0)  # sqlite3 sums executemany's changes: skipped rows add 0


def _postgres_sql(table: Table, dialect: Dialect, keys: list[str], fixed: list[str]) -> str:
    def sql_type(name: str) -> str:
        return str(table.c[name].type.compile(dialect=dialect))

    # Arrays travel in binary (%b): psycopg escapes text-format arrays element by element.
    arrays = ", ".join(f"%(r{i})b::{sql_type(k)}[]" for i, k in enumerate(keys))
    scalars = [f"%(f{i})s::{sql_type(k)}" for i, k in enumerate(fixed)]
    aliases = [f"c{i}" for i in range(len(keys))]
    names = ", ".join(dialect.identifier_preparer.quote(n) for n in [*keys, *fixed])
    return (
        f"INSERT INTO {dialect.identifier_preparer.format_table(table)} ({names}) "
        f"SELECT {', '.join([*aliases, *scalars])} FROM unnest({arrays}) AS r({', '.join(aliases)})"
    )


async def _insert_postgres(
    conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]], skip_conflicts: bool
) -> int:
    keys = list(rows[0])
    fixed = _batch_defaults(table, keys)
    dialect = conn.dialect
    params: dict[str, Any] = {}
    for i, key in enumerate(keys):
        process = _bind_processor(table.c[key], dialect)
        values = [row[key] for row in rows]
        params[f"r{i}"] = [process(v) for v in values] if process else values
    for i, (key, value) in enumerate(fixed.items()):
        params[f"f{i}"] = _bind(table.c[key], dialect, value)
    sql = _postgres_sql(table, dialect, keys, list(fixed))
    if skip_conflicts:
        sql += " ON CONFLICT DO NOTHING"
    result = await conn.exec_driver_sql(sql, params)
    return max(result.rowcount, 0)  # one statement: its rowcount counts the rows inserted


async def insert_many(
    conn: AsyncConnection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    skip_conflicts: bool = False,
) -> int:
    """INSERT ``rows`` (dicts with the same keys) in one statement; returns how many went in.

    The rows come out as SQLAlchemy's own executemany would write them: values go through
    the columns' types, missing columns get their Python-side defaults (evaluated once for
    the batch), server defaults and autoincrement keys are left to the database. It skips
    SQLAlchemy's per-row work, which dominates a backfill: SQLite gets one prepared
    statement run by ``executemany``, PostgreSQL an ``INSERT ... SELECT FROM unnest(...)``
    over one array per column. ``skip_conflicts`` adds ON CONFLICT DO NOTHING.
    """
    if not rows:
        return 0
    if conn.dialect.name == "postgresql":
        return await _insert_postgres(conn, table, rows, skip_conflicts)
    return await _insert_sqlite(conn, table, rows, skip_conflicts)
