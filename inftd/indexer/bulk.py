"""PostgreSQL COPY for the fast path: new rows in binary, with the ids chosen beforehand.

``INSERT ... SELECT FROM unnest(...)`` (``insert_columns``) runs every row through the
executor and casts it; ``COPY ... FROM STDIN (FORMAT BINARY)`` hands the server ready values,
which costs PostgreSQL about half the CPU time a row and the driver less too. COPY has no
ON CONFLICT and no RETURNING: the ids are taken from the table's sequence first, and a row
that exists already fails the statement with a unique violation, which the caller turns into
a rollback (``StoredMeanwhile``). Small batches (following the head) keep the INSERT: one
round trip instead of two.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import orjson
import psycopg
from psycopg import AsyncConnection as DriverConnection
from psycopg.adapt import Dumper
from psycopg.pq import Format
from sqlalchemy import Table, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from inftd.store.db import Columns, _batch_defaults, insert_many

COPY_MIN_ROWS = 500  # rows from which COPY beats one INSERT despite its extra round trip
DIALECT = postgresql.psycopg.dialect()  # type: ignore[no-untyped-call]


def copies(conn: AsyncConnection, rows: int) -> bool:
    """Whether ``rows`` new rows go in by COPY."""
    return conn.dialect.name == "postgresql" and rows >= COPY_MIN_ROWS


def _jsonb(value: Any) -> bytes:
    """A value in jsonb's binary format: format version 1, then the JSON text (orjson's, or
    the standard module's for what orjson refuses: an integer beyond 64 bits)."""
    try:
        return b"\x01" + orjson.dumps(value)
    except TypeError:
        return b"\x01" + json.dumps(value).encode()


class _JsonbBytes(Dumper):
    """jsonb already in its binary format (``_jsonb``): written as it is. psycopg's own
    dumper would serialize each value again, through several Python calls."""

    format = Format.BINARY
    oid = psycopg.adapters.types["jsonb"].oid  # COPY's set_types looks dumpers up by oid

    def dump(self, obj: Any) -> bytes:
        return bytes(obj)


def _type_name(table: Table, column: str) -> str:
    """The PostgreSQL type name psycopg knows the column's binary format by."""
    return str(table.c[column].type.compile(dialect=DIALECT)).split("(")[0].strip().lower()


def _encoded(table: Table, column: str, values: Sequence[Any]) -> list[Any]:
    """``values`` as COPY gets them: jsonb pre-encoded, the rest as they are."""
    if _type_name(table, column) == "jsonb":
        return [_jsonb(v) for v in values]
    return list(values)


async def _driver(conn: AsyncConnection) -> DriverConnection[Any]:
    raw = await conn.get_raw_connection()
    driver: DriverConnection[Any] = raw.driver_connection  # type: ignore[assignment]
    return driver


async def next_ids(conn: AsyncConnection, table: Table, count: int) -> list[int]:
    """``count`` new values of the table's id sequence, ascending."""
    sequence = await conn.scalar(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table.name})
    ids = await conn.scalars(
        text("SELECT nextval(CAST(:s AS regclass)) FROM generate_series(1, :n)"),
        {"s": sequence, "n": count},
    )
    return sorted(ids)


async def copy_columns(conn: AsyncConnection, table: Table, columns: Columns) -> None:
    """COPY rows given column by column (lists of equal length) into ``table``, inside the
    connection's transaction. Columns left out get their Python-side default, as with
    ``insert_columns``; JSON is written by orjson."""
    fixed = _batch_defaults(table, list(columns))
    names = [*columns, *fixed]
    count = len(next(iter(columns.values())))
    values = [_encoded(table, k, v) for k, v in columns.items()]
    values += [[_encoded(table, k, [v])[0]] * count for k, v in fixed.items()]
    quote = DIALECT.identifier_preparer.quote
    sql = f"COPY {quote(table.name)} ({', '.join(map(quote, names))}) FROM STDIN (FORMAT BINARY)"
    driver = await _driver(conn)
    async with driver.cursor() as cursor:
        cursor.adapters.register_dumper(bytes, _JsonbBytes)  # only this cursor's, for jsonb
        async with cursor.copy(sql) as copy:
            copy.set_types([_type_name(table, name) for name in names])
            for row in zip(*values, strict=True):
                await copy.write_row(row)


async def insert_new(
    conn: AsyncConnection, table: Table, rows: Sequence[dict[str, Any]], *, skip_conflicts: bool
) -> None:
    """Rows of the fast path (dicts with the same keys): COPY when it pays, else one INSERT.
    COPY cannot skip conflicts: it fails on the first, and the caller rolls back."""
    if not copies(conn, len(rows)):
        await insert_many(conn, table, rows, skip_conflicts=skip_conflicts)
        return
    await copy_columns(conn, table, {key: [row[key] for row in rows] for key in rows[0]})
