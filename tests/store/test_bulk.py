"""Bulk inserts write what SQLAlchemy's own insert writes, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, select
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.store.db import create_async, insert_columns, insert_many, insert_returning
from inftd.store.models import Json

METADATA = MetaData()
THINGS = Table(
    "bulk_things",
    METADATA,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("name", String(40), unique=True, nullable=False),
    Column("doc", Json, nullable=False),
    Column("size", BigInteger, nullable=True),
    Column("kind", String(10), nullable=False, default="plain"),
)
DOCS: list[Any] = [
    {"a": 1, "nested": [1, 2, {"b": None}], "text": 'é\n\t\\"quoted"'},
    [1, "two", 3.5, True],
    {"huge": 2**70},  # beyond orjson's 64 bits: written the standard way
    {1: "a key that is not a string"},  # orjson refuses it; json makes it "1"
    "just a string",
    None,  # JSON null, as SQLAlchemy writes it
    {},
]


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(METADATA.create_all)
    yield engine
    await engine.dispose()


def _rows(prefix: str) -> list[dict[str, Any]]:
    return [{"name": f"{prefix}{i}", "doc": doc, "size": i} for i, doc in enumerate(DOCS)]


async def _read(engine: AsyncEngine, prefix: str) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(THINGS.c.name, THINGS.c.doc, THINGS.c.size, THINGS.c.kind)
            .where(THINGS.c.name.startswith(prefix))
            .order_by(THINGS.c.size)
        )
        return [(name.removeprefix(prefix), *rest) for name, *rest in rows]


async def test_insert_many_writes_what_sqlalchemy_writes(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(THINGS.insert(), _rows("orm-"))
        assert await insert_many(conn, THINGS, _rows("bulk-")) == len(DOCS)
    written = await _read(engine, "bulk-")
    assert written == await _read(engine, "orm-")
    assert written[3][1] == {"1": "a key that is not a string"}
    assert written[5][1] is None
    assert {row[3] for row in written} == {"plain"}  # the Python-side default


async def test_conflicts_are_skipped_and_not_counted(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        assert await insert_many(conn, THINGS, _rows("x-")[:3]) == 3
        rows = _rows("x-")
        assert await insert_many(conn, THINGS, rows, skip_conflicts=True) == len(DOCS) - 3
    assert len(await _read(engine, "x-")) == len(DOCS)


async def test_columns_of_different_lengths_are_refused(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        with pytest.raises(ValueError, match="columns of one length"):
            await insert_columns(conn, THINGS, {"name": ["a", "b"], "doc": [{}]})
        assert await insert_columns(conn, THINGS, {"name": [], "doc": []}) == 0


async def test_insert_returning_names_each_row(engine: AsyncEngine) -> None:
    columns: dict[str, list[Any]] = {"name": ["r-a", "r-b", "r-c"], "doc": [{}, [], {"c": 3}]}
    async with engine.begin() as conn:
        if conn.dialect.name != "postgresql":
            with pytest.raises(ValueError, match="needs PostgreSQL"):
                await insert_returning(conn, THINGS, columns, ("id", "name"))
            return
        await insert_many(conn, THINGS, [{"name": "r-b", "doc": {}}])
        returned = await insert_returning(
            conn, THINGS, columns, ("id", "name"), skip_conflicts=True
        )
        stored = {row.name: row.id for row in await conn.execute(select(THINGS))}
    assert sorted(name for _, name in returned) == ["r-a", "r-c"]  # r-b was there already
    assert all(stored[name] == row_id for row_id, name in returned)
