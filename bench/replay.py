"""The database's own floor under a workload: the SQL an engine sent, replayed through the
bare driver.

``Capture`` records every statement an engine hands its driver (text, bound parameters,
executemany or not) and every commit and rollback, per DBAPI connection, job by job.
``replay`` sends the same operations, in the same order, through plain ``sqlite3`` or
synchronous ``psycopg`` to a copy of the database taken before the workload ran (``copy``),
and times each job. What is left is the database's and the driver's own work: no
SQLAlchemy, no asyncio, no domain code. A job's time beyond it is the pipeline's.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.store.db import SQLITE_BUSY_TIMEOUT_MS

STATEMENT_TIMEOUT_MS = 10_000  # a replay that would wait on a lock fails, not hangs


@dataclass(frozen=True)
class Op:
    connection: int  # which of the workload's DBAPI connections
    kind: str  # "execute", "executemany", "commit" or "rollback"
    statement: str = ""
    parameters: Any = None


@dataclass
class Capture:
    """The operations of an engine's connections, grouped into jobs (``next_job``)."""

    jobs: list[list[Op]] = field(default_factory=list)

    def watch(self, engine: AsyncEngine) -> None:
        sync = engine.sync_engine
        event.listen(sync, "before_cursor_execute", self._statement)
        event.listen(sync, "commit", lambda conn: self._end(conn, "commit"))
        event.listen(sync, "rollback", lambda conn: self._end(conn, "rollback"))
        # A connection given back to the pool is rolled back there, not through ``rollback``.
        event.listen(sync.pool, "reset", lambda dbapi, *_: self._add(Op(id(dbapi), "rollback")))

    def next_job(self) -> None:
        self.jobs.append([])

    def _add(self, op: Op) -> None:
        if self.jobs:
            self.jobs[-1].append(op)

    def _statement(
        self, conn: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, many: bool
    ) -> None:
        kept = [_copied(p) for p in parameters] if many else _copied(parameters)
        kind = "executemany" if many else "execute"
        self._add(Op(_dbapi_id(conn), kind, statement, kept))

    def _end(self, conn: Any, kind: str) -> None:
        self._add(Op(_dbapi_id(conn), kind))


def _dbapi_id(conn: Any) -> int:
    return id(conn.connection.dbapi_connection)


def _copied(parameters: Any) -> Any:
    if isinstance(parameters, dict):
        return dict(parameters)
    if isinstance(parameters, list):
        return list(parameters)
    return parameters


@contextlib.contextmanager
def copy(backend: str, url: str) -> Iterator[str]:
    """A copy of the database at ``url`` as it is now (nothing may be connected to it),
    removed afterwards; yields its URL."""
    if backend == "SQLite":
        source = make_url(url).database
        assert source is not None
        target = f"{source}.replay"
        with contextlib.closing(sqlite3.connect(source)) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        shutil.copyfile(source, target)
        try:
            yield make_url(url).set(database=target).render_as_string(hide_password=False)
        finally:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(target + suffix)
        return
    parsed = make_url(url).set(drivername="postgresql")
    name = f"{parsed.database}_replay_{uuid.uuid4().hex[:6]}"
    admin = parsed.render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{parsed.database}"')
    try:
        yield parsed.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class _Connections:
    """One bare driver connection for each connection of the workload."""

    def __init__(self, backend: str, url: str) -> None:
        self.backend = backend
        self.url = make_url(url)
        self.open: dict[int, Any] = {}

    def __getitem__(self, key: int) -> Any:
        if key not in self.open:
            self.open[key] = self._connect()
        return self.open[key]

    def _connect(self) -> Any:
        if self.backend == "SQLite":
            db = sqlite3.connect(self.url.database or "")
            for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL"):
                db.execute(f"PRAGMA {pragma}")
            db.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            return db
        dsn = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        return psycopg.connect(dsn, options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}")

    def close(self) -> None:
        for db in self.open.values():
            db.close()


def replay(backend: str, url: str, jobs: list[list[Op]]) -> list[float]:
    """Seconds each job's operations take through the bare driver, in capture order."""
    connections = _Connections(backend, url)
    times = []
    try:
        for ops in jobs:
            for op in ops:  # connections open before the clock, as the workload's pool did
                connections[op.connection]
            began = time.perf_counter()
            for op in ops:
                _run(connections[op.connection], op)
            times.append(time.perf_counter() - began)
    finally:
        connections.close()
    return times


def _run(db: Any, op: Op) -> None:
    if op.kind == "commit":
        db.commit()
    elif op.kind == "rollback":
        db.rollback()
    elif op.kind == "executemany":
        db.cursor().executemany(op.statement, op.parameters)
    else:
        cursor = db.cursor()
        cursor.execute(op.statement, op.parameters)
        if cursor.description is not None:
            cursor.fetchall()
