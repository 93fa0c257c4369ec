from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

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
