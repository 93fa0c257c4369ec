"""aiosqlite with one thread hop per statement.

aiosqlite runs each sqlite3 call in its connection's thread and hands the result back to
the event loop: SQLAlchemy's adapter makes four such hops per statement (open a cursor,
execute, fetch the rows, close). Each hop is a queue put, a thread wake-up, a
``call_soon_threadsafe`` and a loop iteration, and on a busy worker they were most of a
statement's cost. Here a statement opens its cursor, executes, reads every row and closes
in the connection's thread in one hop; the rows are then handed out from memory, as
SQLAlchemy's adapter does anyway for every result it does not stream. A ``BEGIN`` set on
the connection (``begin``) goes in the hop of the transaction's first statement.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import aiosqlite

Row = tuple[Any, ...]


class _Done:
    """What one statement left behind, taken in the connection's thread."""

    __slots__ = ("description", "lastrowid", "rowcount", "rows")

    def __init__(self, cursor: sqlite3.Cursor, rows: list[Row]) -> None:
        self.rows = rows
        self.description = cursor.description
        self.rowcount = cursor.rowcount
        self.lastrowid = cursor.lastrowid


def _run(
    conn: sqlite3.Connection, begin: str | None, sql: str, parameters: Any, many: bool
) -> _Done:
    """One statement (``many``: for each set of parameters), after ``begin`` if given."""
    cursor = conn.cursor()
    try:
        if begin:
            cursor.execute(begin)
        if many:
            cursor.executemany(sql, parameters)
            done = _Done(cursor, [])
            if sql.startswith("INSERT"):  # sqlite3 leaves lastrowid alone after executemany
                done.lastrowid = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
            return done
        cursor.execute(sql, parameters)
        return _Done(cursor, cursor.fetchall() if cursor.description else [])
    finally:
        cursor.close()


class OneHopCursor:
    """The part of ``aiosqlite.Cursor`` SQLAlchemy uses, each statement in one hop."""

    arraysize = 1

    def __init__(self, conn: OneHopConnection) -> None:
        self._conn = conn
        self._done: _Done | None = None
        self._at = 0

    async def __aenter__(self) -> OneHopCursor:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def execute(self, sql: str, parameters: Any = None) -> OneHopCursor:
        bound = () if parameters is None else parameters
        return await self._run(sql, bound, many=False)

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> OneHopCursor:
        return await self._run(sql, parameters, many=True)

    async def _run(self, sql: str, parameters: Any, many: bool) -> OneHopCursor:
        begin = self._conn.take_begin()
        self._done = await self._conn.run(_run, begin, sql, parameters, many)
        self._at = 0
        return self

    def _take(self, n: int | None) -> list[Row]:
        if self._done is None:
            return []
        rows = self._done.rows
        end = len(rows) if n is None else min(len(rows), self._at + n)
        taken, self._at = rows[self._at : end], end
        return taken

    async def fetchone(self) -> Row | None:
        taken = self._take(1)
        return taken[0] if taken else None

    async def fetchmany(self, size: int | None = None) -> Sequence[Row]:
        return self._take(self.arraysize if size is None else size)

    async def fetchall(self) -> Sequence[Row]:
        return self._take(None)

    async def close(self) -> None:
        # The sqlite3 cursor was closed in its thread already. Its counts stay readable, as a
        # closed sqlite3 cursor's do: SQLAlchemy closes a cursor before it reads rowcount.
        if self._done is not None:
            self._done.rows = []

    @property
    def description(self) -> Any:
        return self._done.description if self._done else None

    @property
    def rowcount(self) -> int:
        return self._done.rowcount if self._done else -1

    @property
    def lastrowid(self) -> int | None:
        return self._done.lastrowid if self._done else None


class OneHopConnection(aiosqlite.Connection):
    begin: str | None = None  # a BEGIN to send with the next statement, in its hop

    def cursor(self) -> OneHopCursor:  # type: ignore[override]  # no hop to open one
        return OneHopCursor(self)

    def take_begin(self) -> str | None:
        begin, self.begin = self.begin, None
        return begin

    async def commit(self) -> None:
        self.begin = None  # a transaction that ran no statement: nothing to begin or end
        if self._conn.in_transaction:
            await super().commit()

    async def rollback(self) -> None:
        # Also the pool's reset of every connection it takes back: mostly nothing to undo,
        # and no hop is needed to know it.
        self.begin = None
        if self._conn.in_transaction:
            await super().rollback()

    async def run(self, fn: Any, *args: Any) -> Any:
        """``fn(sqlite3 connection, *args)`` in the connection's thread."""
        return await self._execute(fn, self._conn, *args)  # type: ignore[no-untyped-call]


def connect(path: str | Path) -> OneHopConnection:
    """As ``aiosqlite.connect(path)``, with the options SQLAlchemy's dialect passes."""

    def connector() -> sqlite3.Connection:
        return sqlite3.connect(str(path), check_same_thread=False)

    conn = OneHopConnection(connector, iter_chunk_size=64)
    conn._thread.daemon = True  # as SQLAlchemy sets it: never hold the interpreter's exit
    return conn
