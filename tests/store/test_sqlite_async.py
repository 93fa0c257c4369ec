"""The SQLite driver of the asyncio engine: one thread hop per statement, answers as the
stdlib's (rows, row counts, last row ids, errors, streams)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.store.db import create_async, sqlite_url
from inftd.store.sqlite_async import OneHopConnection

METADATA = MetaData()
ITEMS = Table(
    "items",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("name", String, unique=True, nullable=False),
    Column("n", Integer, nullable=False),
)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_async(sqlite_url(tmp_path / "one-hop.db"))
    async with engine.begin() as conn:
        await conn.run_sync(METADATA.create_all)
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_rows_counts_and_ids_are_the_stdlib_drivers(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        first = await conn.execute(insert(ITEMS), {"name": "a", "n": 1})
        assert first.inserted_primary_key == (1,)  # from the cursor's lastrowid
        many = await conn.execute(insert(ITEMS), [{"name": f"m{i}", "n": i} for i in range(200)])
        assert many.rowcount == 200  # executemany sums its changes
        changed = await conn.execute(update(ITEMS).where(ITEMS.c.n < 10).values(n=ITEMS.c.n + 1))
        assert changed.rowcount == 11
        back = await conn.execute(
            update(ITEMS).where(ITEMS.c.name == "a").values(n=5).returning(ITEMS.c.id, ITEMS.c.n)
        )
        assert back.all() == [(1, 5)]
        assert (await conn.execute(text("DELETE FROM items WHERE n > 100"))).rowcount == 99
        assert (await conn.execute(select(ITEMS.c.name).where(ITEMS.c.id == -1))).first() is None
        assert (await conn.scalar(select(ITEMS.c.n).where(ITEMS.c.name == "m9"))) == 10


async def test_a_stream_hands_out_every_row_in_order(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(ITEMS), [{"name": f"s{i}", "n": i} for i in range(150)])
    async with engine.connect() as conn:
        result = await conn.stream(select(ITEMS.c.n).order_by(ITEMS.c.n))
        seen = [n async for part in result.partitions(64) for (n,) in part]
    assert seen == list(range(150))


async def insert_twice(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(ITEMS), {"name": "x", "n": 1})
        await conn.execute(insert(ITEMS), {"name": "x", "n": 2})


async def test_errors_are_sqlalchemys_and_roll_the_transaction_back(engine: AsyncEngine) -> None:
    with pytest.raises(IntegrityError, match="UNIQUE"):
        await insert_twice(engine)
    async with engine.connect() as conn:
        assert (await conn.execute(select(ITEMS))).all() == []


async def test_a_statement_is_one_hop_to_the_connections_thread(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiosqlite took four (open a cursor, execute, fetch, close); each is a thread
    wake-up and a loop iteration."""
    hops: list[str] = []
    hop = OneHopConnection._execute

    async def counted(self: OneHopConnection, fn: object, *args: object) -> object:
        hops.append(getattr(fn, "__name__", repr(fn)))
        return await hop(self, fn, *args)

    async with engine.connect() as conn:
        await conn.execute(select(1))  # the pool's connection is made and set up
        monkeypatch.setattr(OneHopConnection, "_execute", counted)
        await conn.execute(insert(ITEMS), {"name": "a", "n": 1})
        await conn.execute(select(ITEMS).where(ITEMS.c.n == 1))
        await conn.execute(update(ITEMS).values(n=2).returning(ITEMS.c.id))
        await conn.commit()
        assert hops == ["_run", "_run", "_run", "commit"]


async def test_a_transactions_reads_and_writes_are_one(engine: AsyncEngine) -> None:
    """``engine.begin()`` holds SQLite's write lock from its first statement: a writer on
    another connection waits, so what the transaction read is still true when it writes
    (the sqlite3 module alone would begin at the first write, and let the other commit
    in between)."""
    async with engine.begin() as conn:
        seen = await conn.scalar(select(func.count()).select_from(ITEMS))
        other = asyncio.create_task(insert_one(engine, "other"))
        await asyncio.sleep(0.3)
        assert not other.done()  # waiting for this transaction's lock
        await conn.execute(insert(ITEMS), {"name": "mine", "n": seen})
    await asyncio.wait_for(other, 10)
    async with engine.connect() as conn:
        rows = dict((await conn.execute(select(ITEMS.c.name, ITEMS.c.n))).all())
    assert rows == {"mine": 0, "other": 1}


async def insert_one(engine: AsyncEngine, name: str) -> None:
    async with engine.begin() as conn:
        seen = await conn.scalar(select(func.count()).select_from(ITEMS))
        await conn.execute(insert(ITEMS), {"name": name, "n": seen})


async def test_a_write_transactions_begin_rides_with_its_first_statement(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``BEGIN IMMEDIATE`` goes in the hop of the transaction's first statement, not one
    of its own; a transaction that ran no statement leaves nothing to begin."""
    async with engine.begin():
        pass  # the pool's connection is made and set up; nothing was begun
    hops: list[tuple[str, str | None]] = []
    hop = OneHopConnection._execute

    async def counted(self: OneHopConnection, fn: Any, *args: Any) -> object:
        hops.append((fn.__name__, args[1] if fn.__name__ == "_run" else None))
        return await hop(self, fn, *args)

    monkeypatch.setattr(OneHopConnection, "_execute", counted)
    async with engine.begin() as conn:
        await conn.execute(select(ITEMS))
        await conn.execute(insert(ITEMS), {"name": "a", "n": 1})
    assert hops == [("_run", "BEGIN IMMEDIATE"), ("_run", None), ("commit", None)]
