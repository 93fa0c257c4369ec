"""The transaction that ends a run: all of it or none of it, with the run's last progress
events and its provider calls (held back from their own transactions) written in it."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.agents.ledger import Balances
from inftd.daemon.generation import worker
from inftd.daemon.generation.context import WorkerContext
from inftd.daemon.generation.routing.recorder import DbRecorder
from inftd.daemon.generation.routing.router import Router
from inftd.daemon.generation.worker import Outcome
from inftd.daemon.providers.local import LocalProvider
from inftd.store.models import Agent, Memory, ProviderCall
from tests.daemon.generation.support import (
    add_agent,
    balances,
    context,
    entries_of,
    events_of,
    generation,
    mints_of,
    queue,
    run_next,
    settings_for,
    streamed_text,
)

TEXT = {"kind": "text", "prompt": "a lighthouse at dawn over a quiet harbour"}


def recorded_ctx(engine: AsyncEngine, tmp_path: Path, database_url: str) -> WorkerContext:
    """A worker whose router writes its calls to the spend ledger, as the daemon's."""
    settings = settings_for(tmp_path, database_url)
    recorder = DbRecorder(engine)
    router = Router({"local": LocalProvider()}, settings.routing, recorder)
    return replace(context(engine, settings, router), recorder=recorder)


async def calls_of(engine: AsyncEngine, generation_id: str) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.scalars(
            select(ProviderCall.outcome).where(ProviderCall.generation_id == generation_id)
        )
        return list(rows)


async def experience(engine: AsyncEngine, token_id: int) -> int:
    async with engine.connect() as conn:
        found = await conn.scalar(select(Agent.experience).where(Agent.token_id == token_id))
    return int(found or 0)


async def generation_memories(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        count = await conn.scalar(
            select(func.count()).select_from(Memory).where(Memory.kind == "generation")
        )
    return int(count or 0)


async def test_a_succeeded_run_writes_its_calls_and_last_progress_in_its_final_transaction(
    engine: AsyncEngine, tmp_path: Path, database_url: str
) -> None:
    ctx = recorded_ctx(engine, tmp_path, database_url)
    await add_agent(engine, 1, credits=20)
    generation_id = await queue(ctx, 1, TEXT)
    assert await run_next(ctx) == Outcome("succeeded")
    assert await calls_of(engine, generation_id) == ["ok"]
    assert ctx.recorder is not None
    assert ctx.recorder.take(generation_id) == []  # none left held
    events = await events_of(engine, 1)
    content = await ctx.content.read(
        (await generation(engine, generation_id)).content_hash.removeprefix("0x")
    )
    assert content is not None
    assert streamed_text(events, generation_id) == content.decode()
    kinds = [k for k, _ in events]
    assert kinds[-1] == "generation.succeeded"  # after every piece of its text
    assert kinds.count("generation.succeeded") == 1


async def test_a_failure_inside_the_final_transaction_leaves_nothing_of_it(
    engine: AsyncEngine, tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mint insert fails after the rest of the success was written: all of it rolls
    back, the job goes back to the queue with its reservation, the call it paid for stays
    in the spend ledger; the next run succeeds, charged once, minted once."""
    ctx = recorded_ctx(engine, tmp_path, database_url)
    await add_agent(engine, 1, credits=20)
    generation_id = await queue(ctx, 1, TEXT)
    real_add_mint = worker.add_mint

    async def failing_add_mint(conn: Any, gid: str) -> bool:
        await real_add_mint(conn, gid)
        raise RuntimeError("the disk is gone")

    monkeypatch.setattr(worker, "add_mint", failing_add_mint)
    assert (await run_next(ctx)).status == "retrying"
    row = await generation(engine, generation_id)
    assert (row.status, row.credits_used, row.content_hash) == ("queued", 0, None)
    assert await entries_of(engine, generation_id) == [("reserve", 1)]
    assert await balances(engine, 1) == Balances(total=20, used=0, reserved=1)
    assert await mints_of(engine, generation_id) == 0
    assert await generation_memories(engine) == 0
    assert await experience(engine, 1) == 0
    assert "generation.succeeded" not in [k for k, _ in await events_of(engine, 1)]
    assert await calls_of(engine, generation_id) == ["ok"]  # money spent is on record

    monkeypatch.setattr(worker, "add_mint", real_add_mint)
    await asyncio.sleep(ctx.settings.generation.backoff_max)  # the retry comes due
    assert await run_next(ctx) == Outcome("succeeded")
    assert (await generation(engine, generation_id)).attempts == 2
    assert await entries_of(engine, generation_id) == [("reserve", 1), ("commit", 1)]
    assert await balances(engine, 1) == Balances(total=20, used=1, reserved=0)
    assert await mints_of(engine, generation_id) == 1
    assert await generation_memories(engine) == 1
    assert await calls_of(engine, generation_id) == ["ok", "ok"]  # two runs, two calls
