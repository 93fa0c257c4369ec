from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.store.db import async_url, create_async, create_sync_engine, sqlite_url, sync_url
from inftd.store.errors import DatabaseUrlError


def test_urls_pick_drivers() -> None:
    assert sync_url("sqlite:///x.db").drivername == "sqlite"
    assert async_url("sqlite:///x.db").drivername == "sqlite+aiosqlite"
    assert sync_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert async_url("postgresql://u@h/db").drivername == "postgresql+psycopg"


@pytest.mark.parametrize("url", ["mysql://u@h/db", "not a url", ""])
def test_unsupported_url_names_the_problem(url: str) -> None:
    with pytest.raises(DatabaseUrlError, match="unsupported database URL"):
        sync_url(url)


def test_sqlite_runs_with_wal_and_foreign_keys(tmp_path: Path) -> None:
    engine = create_sync_engine(sqlite_url(tmp_path / "sub" / "a.db"))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
    finally:
        engine.dispose()


async def test_async_sqlite_has_foreign_keys_on(tmp_path: Path) -> None:
    engine = create_async(sqlite_url(tmp_path / "b.db"))
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar_one() == 1
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"
    finally:
        await engine.dispose()


async def _backend(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


def _terminate(url: str, pid: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


@pytest.mark.postgres
async def test_a_dropped_idle_connection_is_replaced_before_use(postgres_url: str) -> None:
    engine = create_async(postgres_url, idle_ping=0.0)  # every pooled connection is idle
    try:
        dropped = await _backend(engine)
        _terminate(postgres_url, dropped)
        assert await _backend(engine) != dropped  # pinged, found dead, replaced: no error
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_a_busy_connection_is_not_pinged_and_one_drop_costs_one_statement(
    postgres_url: str,
) -> None:
    engine = create_async(postgres_url, idle_ping=3600.0)  # never idle long enough
    try:
        dropped = await _backend(engine)
        _terminate(postgres_url, dropped)
        with pytest.raises(DBAPIError) as failed:  # not pinged: the drop shows once
            await _backend(engine)
        assert failed.value.connection_invalidated
        assert await _backend(engine) != dropped  # and the pool replaced it
    finally:
        await engine.dispose()
