"""The queue: creating (limits, reservation, idempotency), claiming (priority, per-agent
limit, SKIP LOCKED across engines), cancelling, the lease reaper, giving jobs back."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.agents.errors import InsufficientCredits, LimitExceeded, UnpricedGeneration
from inftd.agents.ledger import Balances
from inftd.daemon.config import Settings
from inftd.daemon.generation.errors import IdempotencyConflict, NotCancellable
from inftd.daemon.generation.queue import cancel, claim, give_back, reap, utcnow
from inftd.daemon.generation.scheduler import priorities_of
from inftd.store.db import create_async
from inftd.store.models import Generation
from tests.daemon.generation.support import (
    add_agent,
    balances,
    claim_one,
    context,
    entries_of,
    events_of,
    generation,
    local_router,
    queue,
    settings_for,
)

TEXT = {"kind": "text", "prompt": "a lighthouse at dawn"}


def ctx_for(engine: AsyncEngine, tmp_path: Path, database_url: str, **generation: Any) -> Any:
    settings = settings_for(tmp_path, database_url, **generation)
    return context(engine, settings, local_router(settings))


async def test_create_reserves_the_price_and_queues(
    engine: AsyncEngine, tmp_path: Path, database_url: str
) -> None:
    ctx = ctx_for(engine, tmp_path, database_url)
    await add_agent(engine, 1, credits=50)
    high = {"kind": "image", "prompt": "a fox", "options": {"quality": "high", "size": "512x512"}}
    generation_id = await queue(ctx, 1, high)
    row = await generation(engine, generation_id)
    assert (row.status, row.credits_reserved, row.source) == ("queued", 10, "api")
    assert row.options == {"quality": "high", "strategy": "single", "size": "512x512"}
    assert await balances(engine, 1) == Balances(total=50, used=0, reserved=10)
    assert await entries_of(engine, generation_id) == [("reserve", 10)]
    [(kind, data)] = await events_of(engine, 1)
    assert kind == "generation.queued"
    assert data == {
        "id": generation_id,
        "kind": "image",
        "source": "api",
        "status": "queued",
        "creditsReserved": 10,
    }  # no prompt: the event is public


async def test_the_same_key_returns_the_first_generation_and_refuses_another_request(
    engine: AsyncEngine, tmp_path: Path, database_url: str
) -> None:
    ctx = ctx_for(engine, tmp_path, database_url)
    await add_agent(engine, 1, credits=50)
    first = await queue(ctx, 1, TEXT, key="k-1")
    assert await queue(ctx, 1, TEXT, key="k-1") == first
    with pytest.raises(IdempotencyConflict):
        await queue(ctx, 1, {**TEXT, "prompt": "another prompt"}, key="k-1")
    other = await queue(ctx, 1, TEXT, key="k-2")  # a new key is a new generation
    assert other != first
    assert await balances(engine, 1) == Balances(total=50, used=0, reserved=2)


@pytest.mark.parametrize(
    ("body", "limit", "limits"),
    [
        ({**TEXT, "prompt": "x" * 2001}, "max_prompt_chars", {}),
        (TEXT, "max_concurrent_jobs", {}),
        ({"kind": "image", "prompt": "a fox"}, "daily_credit_cap", {"max_concurrent_jobs": 9}),
    ],
)
async def test_limits_refuse_naming_the_limit_and_reserve_nothing(
    engine: AsyncEngine,
    tmp_path: Path,
    database_url: str,
    body: dict[str, Any],
    limit: str,
    limits: dict[str, Any],
) -> None:
    ctx = ctx_for(engine, tmp_path, database_url)
    ctx.settings = with_limits(ctx.settings, daily_credit_cap=6, **limits)
    await add_agent(engine, 1, credits=50)
    await queue(ctx, 1, TEXT)
    await queue(ctx, 1, TEXT)  # two jobs: the most a Starter runs at once, 2 of 6 credits
    before = await balances(engine, 1)
    with pytest.raises(LimitExceeded) as refused:
        await queue(ctx, 1, body)
    assert refused.value.limit_name == limit
    assert limit in str(refused.value)
    assert await balances(engine, 1) == before
    assert len(await events_of(engine, 1)) == 2


def with_limits(settings: Settings, **changes: Any) -> Settings:
    """The settings with every package's limits changed."""
    packages = [
        p.model_copy(update={"limits": p.limits.model_copy(update=changes)})
        for p in settings.packages
    ]
    return settings.model_copy(update={"packages": packages})


async def test_unpriced_and_insufficient_refuse_and_reserve_nothing(
    engine: AsyncEngine, tmp_path: Path, database_url: str
) -> None:
    ctx = ctx_for(engine, tmp_path, database_url)
    await add_agent(engine, 1, credits=4)
    with pytest.raises(InsufficientCredits, match="needs 5 credits, has 4"):
        await queue(ctx, 1, {"kind": "image", "prompt": "a fox"})
    ctx.settings = with_limits(ctx.settings, credits={"text": {"standard": 1}})
    with pytest.raises(UnpricedGeneration):
        await queue(ctx, 1, {"kind": "image", "prompt": "a fox"})
    assert await balances(engine, 1) == Balances(total=4, used=0, reserved=0)


async def test_claim_takes_the_best_tier_first_then_the_oldest_within_agent_limits(
    engine: AsyncEngine, tmp_path: Path, database_url: str
) -> None:
    ctx = ctx_for(engine, tmp_path, database_url, per_agent_concurrency=1)
    await add_agent(engine, 1, credits=50, package_type=0)
    await add_agent(engine, 2, credits=50, package_type=2)
    starter = [await queue(ctx, 1, TEXT) for _ in range(2)]
    studio = [await queue(ctx, 2, TEXT) for _ in range(2)]
    priorities = priorities_of(ctx.settings)
    first = await claim(engine, "w", 10, ctx.settings.generation, priorities)
    # One per agent: Studio's older job first (tier 2), then Starter's older one.
    assert [c.id for c in first] == [studio[0], starter[0]]
    assert [c.attempts for c in first] == [1, 1]
    assert await claim(engine, "w", 10, ctx.settings.generation, priorities) == []
    started = [d["id"] for k, d in await events_of(engine, 2) if k == "generation.started"]
    assert started == [studio[0]]


async def test_an_on_chain_request_takes_its_agents_tier(
    engine: AsyncEngine, tmp_path: Path, database_url: str
) -> None:
    ctx = ctx_for(engine, tmp_path, database_url)
    await add_agent(engine, 1, credits=50, package_type=0)
    await add_agent(engine, 2, credits=50, package_type=1)
    api = await queue(ctx, 1, TEXT)
    async with engine.begin() as conn:  # as the indexer inserts them: priority 0
        await conn.execute(
            insert(Generation).values(
                id="chain-1", token_id=2, kind="text", prompt="p", options={}, source="chain",
                status="queued", created_at=utcnow() + timedelta(seconds=1),
            )
        )  # fmt: skip
    claimed = await claim(engine, "w", 2, ctx.settings.generation, priorities_of(ctx.settings))
    assert [c.id for c in claimed] == ["chain-1", api]


@pytest.mark.postgres
async def test_claims_from_two_engines_never_take_one_job_twice(
    postgres_url: str, tmp_path: Path
) -> None:
    from tests.support.schema import at_head

    at_head(postgres_url)
    engines = [create_async(postgres_url), create_async(postgres_url)]
    try:
        ctx = ctx_for(engines[0], tmp_path, postgres_url, per_agent_concurrency=100)
        ctx.settings = with_limits(ctx.settings, max_concurrent_jobs=100)
        jobs = set()
        for token in range(1, 5):
            await add_agent(engines[0], token, credits=100)
            jobs |= {await queue(ctx, token, TEXT) for _ in range(20)}
        taken = await _claim_all(engines, ctx.settings)
        assert Counter(taken).most_common(1)[0][1] == 1  # nobody took a job twice
        assert set(taken) == jobs  # and every job was taken
    finally:
        for engine in engines:
            await engine.dispose()


async def _claim_all(engines: list[AsyncEngine], settings: Settings) -> list[str]:
    taken: list[str] = []

    async def worker(engine: AsyncEngine, name: str) -> None:
        while True:
            got = await claim(engine, name, 3, settings.generation, priorities_of(settings))
            if not got:
                return
            taken.extend(c.id for c in got)

    await asyncio.gather(*(worker(e, f"w{i}-{j}") for i, e in enumerate(engines) for j in range(3)))
    return taken


async def test_cancel_a_queued_job_releases_its_credits_and_a_finished_one_is_refused(
    engine: AsyncEngine, tmp_path: Path, database_url: str
) -> None:
    ctx = ctx_for(engine, tmp_path, database_url)
    await add_agent(engine, 1, credits=10)
    generation_id = await queue(ctx, 1, TEXT)
    view = await cancel(ctx.writer, 1, generation_id)
    assert (view["status"], view["creditsUsed"]) == ("cancelled", 0)
    assert await balances(engine, 1) == Balances(total=10, used=0, reserved=0)
    assert await entries_of(engine, generation_id) == [("reserve", 1), ("release", 1)]
    with pytest.raises(NotCancellable, match="is cancelled"):
        await cancel(ctx.writer, 1, generation_id)
    assert await claim_none(ctx)


async def claim_none(ctx: Any) -> bool:
    got = await claim(ctx.engine, "w", 5, ctx.settings.generation, priorities_of(ctx.settings))
    return got == []


async def test_cancel_a_running_job_flags_it_for_its_worker(
    engine: AsyncEngine, tmp_path: Path, database_url: str
) -> None:
    ctx = ctx_for(engine, tmp_path, database_url)
    await add_agent(engine, 1, credits=10)
    generation_id = await queue(ctx, 1, TEXT)
    await claim_one(ctx)
    view = await cancel(ctx.writer, 1, generation_id)
    assert (view["status"], view["cancelRequested"]) == ("running", True)
    assert await balances(engine, 1) == Balances(total=10, used=0, reserved=1)  # still held
    assert (await events_of(engine, 1))[-1] == ("generation.cancelling", {"id": generation_id})


async def _expire(engine: AsyncEngine, generation_id: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            update(Generation)
            .where(Generation.id == generation_id)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )


async def test_the_reaper_requeues_an_expired_lease_then_fails_it_after_max_attempts(
    engine: AsyncEngine, tmp_path: Path, database_url: str
) -> None:
    ctx = ctx_for(engine, tmp_path, database_url, max_attempts=2)
    await add_agent(engine, 1, credits=10)
    generation_id = await queue(ctx, 1, TEXT)
    await claim_one(ctx)
    assert await reap(ctx.writer, ctx.settings.generation) == []  # the lease holds
    await _expire(engine, generation_id)
    [due] = await reap(ctx.writer, ctx.settings.generation)
    row = await generation(engine, generation_id)
    assert (row.status, row.attempts, row.lease_owner) == ("queued", 1, None)
    assert due > utcnow() - timedelta(seconds=1)  # with a backoff
    assert await claim_none(ctx)  # not due yet
    await asyncio.sleep(ctx.settings.generation.backoff_max)
    assert (await claim_one(ctx)).attempts == 2
    await _expire(engine, generation_id)
    assert await reap(ctx.writer, ctx.settings.generation) == []
    row = await generation(engine, generation_id)
    assert (row.status, row.attempts) == ("failed", 2)
    assert "lease expired" in row.error
    assert await balances(engine, 1) == Balances(total=10, used=0, reserved=0)


async def test_give_back_returns_a_running_job_as_it_was(
    engine: AsyncEngine, tmp_path: Path, database_url: str
) -> None:
    ctx = ctx_for(engine, tmp_path, database_url)
    await add_agent(engine, 1, credits=10)
    generation_id = await queue(ctx, 1, TEXT)
    await claim_one(ctx)
    assert not await give_back(engine, generation_id, "somebody-else", "stop")
    assert await give_back(engine, generation_id, ctx.owner, "stop")
    row = await generation(engine, generation_id)
    assert (row.status, row.attempts, row.lease_owner) == ("queued", 0, None)
    assert await balances(engine, 1) == Balances(total=10, used=0, reserved=1)
    assert (await claim_one(ctx)).attempts == 1
