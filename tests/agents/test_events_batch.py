"""``batched_events``: events recorded inside are written once, at the end, in order."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.agents.events import NewEvent, batched_events, record_events
from inftd.store.db import create_async
from inftd.store.models import EventRecord
from tests.support.schema import at_head


async def test_events_written_at_the_end_in_order(database_url: str) -> None:
    at_head(database_url)
    engine = create_async(database_url)
    try:
        async with engine.begin() as conn:
            async with batched_events(conn):
                await record_events(conn, [NewEvent("a.first", None, {"n": 1})])
                async with batched_events(conn):  # nested: the outer one writes
                    await record_events(conn, [NewEvent("a.second", None, {"n": 2})])
                held = await conn.scalar(select(func.count()).select_from(EventRecord))
                assert held == 0, "nothing is written before the batch ends"
                await record_events(conn, [NewEvent("a.third", 7, {"n": 3}, private=True)])
            await record_events(conn, [NewEvent("a.after", None, {})])  # not batched
        async with engine.connect() as conn:
            rows = (await conn.execute(select(EventRecord).order_by(EventRecord.seq))).all()
    finally:
        await engine.dispose()
    assert [(r.type, r.token_id, r.private) for r in rows] == [
        ("a.first", None, False),
        ("a.second", None, False),
        ("a.third", 7, True),
        ("a.after", None, False),
    ]


async def test_an_error_inside_writes_nothing(database_url: str) -> None:
    at_head(database_url)
    engine = create_async(database_url)
    try:
        with pytest.raises(RuntimeError):
            await _fail_inside(engine)
        async with engine.connect() as conn:
            count = await conn.scalar(select(func.count()).select_from(EventRecord))
            async with batched_events(conn):  # the batch of the failed block is gone
                pass
    finally:
        await engine.dispose()
    assert count == 0


async def _fail_inside(engine: AsyncEngine) -> None:
    async with engine.begin() as conn, batched_events(conn):
        await record_events(conn, [NewEvent("a.lost", None, {})])
        raise RuntimeError("rolled back")
