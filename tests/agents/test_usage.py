"""Usage limits: the price by kind and quality, the prompt length, concurrent jobs (from the
generations table, filled directly here) and the daily credit cap (from the ledger)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.agents import credits
from inftd.agents.errors import LimitExceeded, UnpricedGeneration
from inftd.agents.limits import UsageLimits
from inftd.agents.usage import check_usage, credits_today, price_of
from inftd.agents.writer import AgentWriter
from inftd.store.db import create_async
from inftd.store.models import CreditEntry, Generation
from tests.agents.credits_helpers import add_agent, as_writer
from tests.support.schema import at_head

LIMITS = UsageLimits(
    credits={"text": {"standard": 1, "high": 3}, "image": {"standard": 5}},
    max_concurrent_jobs=2,
    daily_credit_cap=20,
    max_prompt_chars=50,
)
NOW = datetime(2030, 5, 17, 12, 0, tzinfo=UTC)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    at_head(database_url)
    engine = create_async(database_url)
    await add_agent(engine, 1, credits=100)
    await add_agent(engine, 2, credits=100)
    yield engine
    await engine.dispose()


async def check(
    engine: AsyncEngine, kind: str = "text", quality: str = "standard", **kw: str
) -> int:
    async with AgentWriter(engine).write(1) as (conn, _):
        return await check_usage(
            conn, LIMITS, 1, kind=kind, quality=quality, prompt=kw.get("prompt", "a cat"), now=NOW
        )


async def add_generation(engine: AsyncEngine, token_id: int, status: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            insert(Generation).values(
                id=str(uuid.uuid4()), token_id=token_id, kind="text", prompt="p", source="api"
            ),
            {"status": status},
        )


async def reserve_at(engine: AsyncEngine, amount: int, key: str, when: datetime) -> None:
    """A reservation made at ``when`` (the ledger stamps entries with the current time)."""
    await as_writer(AgentWriter(engine), 1, credits.reserve, amount, key)
    async with engine.begin() as conn:
        await conn.execute(
            update(CreditEntry)
            .where(CreditEntry.idempotency_key == credits.stored_key("reserve", 1, key))
            .values(created_at=when)
        )


def test_the_price_comes_from_the_package_limits() -> None:
    assert price_of(LIMITS, "text", "high") == 3
    assert price_of(LIMITS, "image", "standard") == 5
    for kind, quality in (("image", "high"), ("video", "standard"), ("text", "")):
        with pytest.raises(UnpricedGeneration, match="no price"):
            price_of(LIMITS, kind, quality)


async def test_within_the_limits_the_price_is_returned(engine: AsyncEngine) -> None:
    assert await check(engine, "image", "standard") == 5
    assert await check(engine, prompt="x" * LIMITS.max_prompt_chars) == 1


async def test_a_long_prompt_names_its_limit(engine: AsyncEngine) -> None:
    with pytest.raises(LimitExceeded) as exceeded:
        await check(engine, prompt="x" * (LIMITS.max_prompt_chars + 1))
    assert (exceeded.value.limit_name, exceeded.value.limit, exceeded.value.value) == (
        "max_prompt_chars",
        50,
        51,
    )
    assert "max_prompt_chars" in str(exceeded.value)


async def test_queued_and_running_generations_count_as_concurrent_jobs(
    engine: AsyncEngine,
) -> None:
    for status in ("succeeded", "failed", "cancelled", "queued"):
        await add_generation(engine, 1, status)
    await add_generation(engine, 2, "running")  # another agent's
    assert await check(engine) == 1
    await add_generation(engine, 1, "running")
    with pytest.raises(
        LimitExceeded, match="max_concurrent_jobs is 2; this request would make it 3"
    ):
        await check(engine)


async def test_the_daily_cap_counts_this_days_reservations_not_released(
    engine: AsyncEngine,
) -> None:
    yesterday = NOW - timedelta(days=1)
    await reserve_at(engine, 30, "old", yesterday)  # another day: not counted
    await reserve_at(engine, 8, "spent", NOW)
    await reserve_at(engine, 6, "held", NOW)
    await reserve_at(engine, 5, "part", NOW)
    await reserve_at(engine, 4, "released", NOW)
    writer = AgentWriter(engine)
    await as_writer(writer, 1, credits.commit, "spent", 8)
    await as_writer(writer, 1, credits.commit, "part", 2)  # 3 released
    await as_writer(writer, 1, credits.release, "released")
    await as_writer(writer, 1, credits.release, "old")  # released today, of yesterday's
    async with engine.connect() as conn:
        assert await credits_today(conn, 1, NOW) == 8 + 6 + 2
        assert await credits_today(conn, 1, yesterday) == 30 - 30
        assert await credits_today(conn, 2, NOW) == 0
    assert await check(engine, "text", "high") == 3  # 16 + 3 <= 20
    with pytest.raises(LimitExceeded) as exceeded:
        await check(engine, "image", "standard")
    assert (exceeded.value.limit_name, exceeded.value.value) == ("daily_credit_cap", 21)
