"""Engines for SQLite (WAL, foreign keys on) and PostgreSQL, from one database URL.

Users give plain URLs (``sqlite:///path`` or ``postgresql://...``); the driver for
synchronous work (migrations, CLI) and for the asyncio daemon is chosen here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
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
