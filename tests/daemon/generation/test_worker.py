"""The worker: a run from claim to its one final transaction, with a real router over the
local provider and over the real OpenAI client talking to the fake server (or to nothing:
a provider that is down)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.agents.ledger import Balances
from inftd.agents.memory import remember
from inftd.agents.writer import AgentWriter
from inftd.daemon.generation.content import TEXT_TYPE
from inftd.daemon.generation.context import WorkerContext
from inftd.daemon.generation.mints import request_key
from inftd.daemon.generation.progress import Held, ProgressWriter
from inftd.daemon.generation.queue import cancel, claim, reap, utcnow
from inftd.daemon.generation.routing.recorder import MemoryRecorder
from inftd.daemon.generation.routing.router import Router
from inftd.daemon.generation.scheduler import priorities_of
from inftd.daemon.generation.types import Job, Output, Progress
from inftd.daemon.generation.worker import Control, Outcome, finish_success, run_claimed
from inftd.daemon.providers.base import Provider
from inftd.daemon.providers.cloudflare import CloudflareProvider
from inftd.daemon.providers.openai import OpenAIProvider
from inftd.store.models import Agent, Content, Generation, Memory, Mint
from tests.daemon.generation.support import (
    add_agent,
    balances,
    claim_one,
    context,
    entries_of,
    events_of,
    fake_openai,
    generation,
    local_router,
    mints_of,
    queue,
    run_next,
    settings_for,
    streamed_text,
)

TEXT = {"kind": "text", "prompt": "a lighthouse at dawn over a quiet harbour"}
WAIT = 10.0  # seconds a test waits for something that takes milliseconds


def make_ctx(
    engine: AsyncEngine,
    tmp_path: Path,
    database_url: str,
    providers: dict[str, Provider] | None = None,
    owner: str = "worker-a",
    delay: float = 0.0,
    **generation: Any,
) -> WorkerContext:
    settings = settings_for(tmp_path, database_url, **generation)
    if providers is None:
        router = local_router(settings, delay)
    else:
        router = Router(providers, settings.routing, MemoryRecorder())
    return context(engine, settings, router, owner)


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait (up to WAIT seconds) for ``check()`` to hold."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"gave up waiting for {what}"
        await asyncio.sleep(0.02)


async def test_a_text_job_succeeds_charged_once_with_one_mint(
    engine: AsyncEngine, tmp_path: Path, database_url: str
) -> None:
    ctx = make_ctx(engine, tmp_path, database_url)
    await add_agent(engine, 1, credits=20)
    generation_id = await queue(ctx, 1, TEXT)
    assert await run_next(ctx) == Outcome("succeeded")
    row = await generation(engine, generation_id)
    assert (row.status, row.provider, row.model, row.attempts) == (
        "succeeded", "local", "template-text-1", 1,
    )  # fmt: skip
    assert (row.credits_used, row.content_type) == (1, TEXT_TYPE)
    sha = row.content_hash.removeprefix("0x")
    assert row.content_uri == f"/v1/content/{sha}"
    content = await ctx.content.read(sha)
    assert content is not None
    assert content.decode().strip()
    assert await balances(engine, 1) == Balances(total=20, used=1, reserved=0)
    assert await entries_of(engine, generation_id) == [("reserve", 1), ("commit", 1)]
    assert await mints_of(engine, generation_id) == 1
    async with engine.connect() as conn:
        mint = (await conn.execute(select(Mint))).one()
        agent = (await conn.execute(select(Agent))).one()
        memory = (await conn.execute(select(Memory).where(Memory.kind == "generation"))).one()
    assert (mint.status, mint.request_key) == ("pending", request_key(generation_id))
    assert agent.experience == 10
    assert memory.source_id == generation_id
    events = await events_of(engine, 1)
    kinds = [k for k, _ in events if k != "generation.progress"]
    assert kinds == ["generation.queued", "generation.started", "generation.succeeded"]
    assert streamed_text(events, generation_id) == content.decode()
    succeeded = events[-1][1]
    assert succeeded["contentHash"] == row.content_hash
    assert "prompt" not in succeeded


async def test_a_finished_job_is_not_finished_again(
    engine: AsyncEngine, tmp_path: Path, database_url: str
) -> None:
    """The final write checks the job is still this run's: repeating it changes nothing."""
    ctx = make_ctx(engine, tmp_path, database_url)
    await add_agent(engine, 1, credits=20)
    generation_id = await queue(ctx, 1, TEXT)
    claimed = await claim_one(ctx)
    assert await run_claimed(ctx, claimed, Control()) == Outcome("succeeded")
    output = Output("text", b"again", TEXT_TYPE, "local", "m", _usage(), {})
    stored = await ctx.content.put(output.data, output.content_type)
    again = await finish_success(ctx, claimed, output, stored, [], {}, Held(ctx, claimed), None)
    assert again == Outcome("lost")
    assert await entries_of(engine, generation_id) == [("reserve", 1), ("commit", 1)]
    assert await mints_of(engine, generation_id) == 1


def _usage() -> Any:
    from inftd.daemon.providers.base import Usage

    return Usage()


async def test_an_image_job_stores_its_png_and_registers_it(
    engine: AsyncEngine, tmp_path: Path, database_url: str
) -> None:
    ctx = make_ctx(engine, tmp_path, database_url)
    await add_agent(engine, 1, credits=20)
    body = {"kind": "image", "prompt": "a red fox", "options": {"size": "128x96"}}
    generation_id = await queue(ctx, 1, body)
    assert await run_next(ctx) == Outcome("succeeded")
    row = await generation(engine, generation_id)
    sha = row.content_hash.removeprefix("0x")
    data = await ctx.content.read(sha)
    assert data is not None
    assert data.startswith(b"\x89PNG")
    async with engine.connect() as conn:
        registered = (await conn.execute(select(Content))).one()
    assert (registered.sha256, registered.content_type, registered.size) == (
        sha, "image/png", len(data),
    )  # fmt: skip
    assert await balances(engine, 1) == Balances(total=20, used=5, reserved=0)


async def test_the_prompt_draws_on_preferences_memories_and_a_collaborator(
    engine: AsyncEngine, tmp_path: Path, database_url: str
) -> None:
    from inftd.agents.collaboration import grant as grant_collaboration

    ctx = make_ctx(engine, tmp_path, database_url)
    await add_agent(engine, 1, credits=20)
    await add_agent(engine, 2, credits=20)
    evolution = {"weights": {"styles": {"watercolour": 3.0}}, "updatedAt": utcnow().isoformat()}
    async with engine.begin() as conn:
        await conn.execute(
            update(Agent).where(Agent.token_id == 1).values(preferences={"tone": "wistful"})
        )
        await conn.execute(update(Agent).where(Agent.token_id == 2).values(evolution=evolution))
    writer = AgentWriter(engine)
    async with writer.write(1) as (conn, _):
        await remember(conn, ctx.embedder, 1, "note", "The harbour lighthouse has a red roof.")
    async with writer.write(2) as (conn, _):
        await grant_collaboration(conn, 2, 1, "0x" + "22" * 20)
    generation_id = await queue(ctx, 1, {**TEXT, "collaboratorTokenId": 2})
    assert await run_next(ctx) == Outcome("succeeded")
    added = (await generation(engine, generation_id)).detail["prompt"]
    assert added["preferences"] == {"tone": "wistful"}
    assert added["memories"] == ["The harbour lighthouse has a red roof."]
    assert added["influences"] == [{"value": "watercolour", "source": "influence"}]


async def test_a_worker_killed_mid_job_leaves_it_to_another_done_once_charged_once(
    engine: AsyncEngine, tmp_path: Path, database_url: str
) -> None:
    slow = make_ctx(engine, tmp_path, database_url, delay=0.05, owner="worker-a")
    await add_agent(engine, 1, credits=20)
    generation_id = await queue(slow, 1, TEXT)
    run = asyncio.create_task(run_claimed(slow, await claim_one(slow), Control()))

    async def streaming() -> bool:
        return any(k == "generation.progress" for k, _ in await events_of(engine, 1))

    await eventually(streaming, "the first streamed text")
    run.cancel()  # the worker dies: nothing more of it runs, its lease stays
    await asyncio.gather(run, return_exceptions=True)
    assert (await generation(engine, generation_id)).lease_owner == "worker-a"

    other = make_ctx(engine, tmp_path, database_url, owner="worker-b")

    async def reaped() -> bool:
        return bool(await reap(other.writer, other.settings.generation))

    await eventually(reaped, "the lease to expire")
    await asyncio.sleep(other.settings.generation.backoff_max)  # the retry's backoff
    assert await run_next(other) == Outcome("succeeded")
    row = await generation(engine, generation_id)
    assert (row.status, row.attempts, row.lease_owner) == ("succeeded", 2, "worker-b")
    assert await entries_of(engine, generation_id) == [("reserve", 1), ("commit", 1)]
    assert await balances(engine, 1) == Balances(total=20, used=1, reserved=0)
    assert await mints_of(engine, generation_id) == 1


async def test_a_run_whose_lease_was_taken_over_writes_nothing(
    engine: AsyncEngine, tmp_path: Path, database_url: str
) -> None:
    """A worker that hung past its lease comes back to find its job done by another."""
    release = asyncio.Event()
    hung = make_ctx(engine, tmp_path, database_url, owner="worker-a", lease=30)
    original = hung.run

    def held(job: Job, progress: Progress) -> Coroutine[Any, Any, Output]:
        async def run() -> Output:
            await release.wait()
            return await original(job, progress)

        return run()

    hung.run = held
    await add_agent(engine, 1, credits=20)
    generation_id = await queue(hung, 1, TEXT)
    run = asyncio.create_task(run_claimed(hung, await claim_one(hung), Control()))
    async with engine.begin() as conn:  # its lease runs out while it hangs
        await conn.execute(
            update(Generation).values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    other = make_ctx(engine, tmp_path, database_url, owner="worker-b")
    assert await reap(other.writer, other.settings.generation)
    await asyncio.sleep(other.settings.generation.backoff_max)
    assert await run_next(other) == Outcome("succeeded")
    release.set()
    assert await run == Outcome("lost")
    assert await entries_of(engine, generation_id) == [("reserve", 1), ("commit", 1)]
    assert await mints_of(engine, generation_id) == 1
    assert (await generation(engine, generation_id)).lease_owner == "worker-b"


async def test_cancel_a_running_job_stops_it_and_releases_its_credits(
    engine: AsyncEngine, tmp_path: Path, database_url: str
) -> None:
    ctx = make_ctx(engine, tmp_path, database_url, delay=0.05)
    await add_agent(engine, 1, credits=20)
    generation_id = await queue(ctx, 1, TEXT)
    run = asyncio.create_task(run_claimed(ctx, await claim_one(ctx), Control()))

    async def streaming() -> bool:
        return any(k == "generation.progress" for k, _ in await events_of(engine, 1))

    await eventually(streaming, "the first streamed text")
    await cancel(ctx.writer, 1, generation_id)  # the heartbeat reads the flag
    assert await run == Outcome("cancelled")
    row = await generation(engine, generation_id)
    assert (row.status, row.credits_used, row.content_hash) == ("cancelled", 0, None)
    assert await entries_of(engine, generation_id) == [("reserve", 1), ("release", 1)]
    assert await balances(engine, 1) == Balances(total=20, used=0, reserved=0)
    assert await mints_of(engine, generation_id) == 0
    kinds = [k for k, _ in await events_of(engine, 1) if k != "generation.progress"]
    assert kinds[-2:] == ["generation.cancelling", "generation.cancelled"]


def down_providers() -> dict[str, Provider]:
    """Two providers nobody answers for (a closed port): down."""
    closed = "http://127.0.0.1:9"
    return {
        "openai": OpenAIProvider("sk-x", base_url=closed + "/v1", timeout=2),
        "cloudflare": CloudflareProvider("cf-x", "acct", base_url=closed, timeout=2),
    }


async def test_all_providers_down_fails_the_job_and_releases_its_credits(
    engine: AsyncEngine, tmp_path: Path, database_url: str
) -> None:
    providers = down_providers()
    ctx = make_ctx(engine, tmp_path, database_url, providers, max_attempts=2)
    try:
        await add_agent(engine, 1, credits=20)
        generation_id = await queue(ctx, 1, TEXT)
        first = await run_next(ctx)
        assert first.status == "retrying"
        assert first.retry_at is not None
        await asyncio.sleep(max((first.retry_at - utcnow()).total_seconds(), 0))
        assert await run_next(ctx) == Outcome("failed")
    finally:
        for provider in providers.values():
            await provider.close()
    row = await generation(engine, generation_id)
    assert (row.status, row.attempts) == ("failed", 2)
    assert "every provider failed" in row.error
    assert await entries_of(engine, generation_id) == [("reserve", 1), ("release", 1)]
    assert await balances(engine, 1) == Balances(total=20, used=0, reserved=0)
    assert await mints_of(engine, generation_id) == 0
    failed = (await events_of(engine, 1))[-1]
    assert failed[0] == "generation.failed"
    assert failed[1]["creditsReleased"] == 1


async def test_a_transient_failure_is_retried_after_a_backoff_then_succeeds(
    engine: AsyncEngine, tmp_path: Path, database_url: str
) -> None:
    async with fake_openai() as openai:
        ctx = make_ctx(engine, tmp_path, database_url, {"openai": openai.provider})
        await add_agent(engine, 1, credits=20)
        generation_id = await queue(ctx, 1, TEXT)
        openai.fake.fail_next(500)
        first = await run_next(ctx)
        assert first.status == "retrying"
        assert first.retry_at is not None
        assert first.retry_at > utcnow()  # a backoff, not at once
        priorities = priorities_of(ctx.settings)
        assert await claim(engine, "w", 1, ctx.settings.generation, priorities) == []
        await asyncio.sleep((first.retry_at - utcnow()).total_seconds())
        assert await run_next(ctx) == Outcome("succeeded")
    row = await generation(engine, generation_id)
    assert (row.status, row.attempts, row.provider) == ("succeeded", 2, "openai")
    assert await entries_of(engine, generation_id) == [("reserve", 1), ("commit", 1)]
    retrying = [d for k, d in await events_of(engine, 1) if k == "generation.retrying"]
    assert [r["attempt"] for r in retrying] == [1]
    assert "openai unavailable" in retrying[0]["error"]


async def test_a_job_past_its_timeout_fails(
    engine: AsyncEngine, tmp_path: Path, database_url: str
) -> None:
    ctx = make_ctx(engine, tmp_path, database_url, delay=0.2, job_timeout=0.3, max_attempts=1)
    await add_agent(engine, 1, credits=20)
    generation_id = await queue(ctx, 1, TEXT)
    assert await run_next(ctx) == Outcome("failed")
    row = await generation(engine, generation_id)
    assert row.error == "timed out after 0.3 s"
    assert await balances(engine, 1) == Balances(total=20, used=0, reserved=0)


async def test_streamed_text_is_batched_and_private(
    engine: AsyncEngine, tmp_path: Path, database_url: str
) -> None:
    ctx = make_ctx(engine, tmp_path, database_url, progress_interval=60, progress_chars=40)
    await add_agent(engine, 1, credits=20)
    generation_id = await queue(ctx, 1, TEXT)
    assert await run_next(ctx) == Outcome("succeeded")
    content = (await generation(engine, generation_id)).content_hash.removeprefix("0x")
    text = (await ctx.content.read(content) or b"").decode()
    events = await events_of(engine, 1)
    chunks = [d for k, d in events if k == "generation.progress" and d["stage"] == "chunk"]
    assert streamed_text(events, generation_id) == text
    assert 1 < len(chunks) < len(text.split())  # several words per event
    assert all(len(c["text"]) < 40 + 20 for c in chunks)  # ~40 characters, a word over
    async with engine.connect() as conn:
        from inftd.store.models import EventRecord

        private = await conn.scalars(
            select(EventRecord.private).where(EventRecord.type == "generation.progress")
        )
        assert set(private) == {True}


async def _chain_request(engine: AsyncEngine, token_id: int, kind: str = "image") -> str:
    """A generation as the indexer queues it from GenerationRequested: nothing reserved."""
    async with engine.begin() as conn:
        await conn.execute(
            insert(Generation).values(
                id=f"chain-{token_id}", token_id=token_id, kind=kind, prompt="a red fox",
                options={"requester": "0x" + "11" * 20}, source="chain", status="queued",
                chain_request_id=token_id,
            )
        )  # fmt: skip
    return f"chain-{token_id}"


async def test_an_on_chain_request_is_reserved_when_claimed_then_charged(
    engine: AsyncEngine, tmp_path: Path, database_url: str
) -> None:
    ctx = make_ctx(engine, tmp_path, database_url)
    await add_agent(engine, 1, credits=20)
    generation_id = await _chain_request(engine, 1)
    assert await run_next(ctx) == Outcome("succeeded")
    row = await generation(engine, generation_id)
    assert (row.status, row.credits_reserved, row.credits_used) == ("succeeded", 5, 5)
    assert await entries_of(engine, generation_id) == [("reserve", 5), ("commit", 5)]
    assert await mints_of(engine, generation_id) == 1


async def test_an_on_chain_request_the_package_cannot_pay_fails_charging_nothing(
    engine: AsyncEngine, tmp_path: Path, database_url: str
) -> None:
    ctx = make_ctx(engine, tmp_path, database_url)
    await add_agent(engine, 1, credits=3)
    generation_id = await _chain_request(engine, 1)
    assert await run_next(ctx) == Outcome("failed")
    row = await generation(engine, generation_id)
    assert row.status == "failed"
    assert row.error == "package token 1 needs 5 credits, has 3 available"
    assert await entries_of(engine, generation_id) == []
    assert await balances(engine, 1) == Balances(total=3, used=0, reserved=0)
    assert await mints_of(engine, generation_id) == 0


async def test_an_orchestrated_job_stores_and_registers_every_part(
    engine: AsyncEngine, tmp_path: Path, database_url: str
) -> None:
    ctx = make_ctx(engine, tmp_path, database_url)
    await add_agent(engine, 1, credits=50)
    body = {
        "kind": "image",
        "prompt": "a four-piece collection of lighthouses: dawn, noon, dusk, night",
        "options": {"strategy": "orchestrate", "size": "64x64"},
    }
    generation_id = await queue(ctx, 1, body)
    assert await run_next(ctx) == Outcome("succeeded")
    row = await generation(engine, generation_id)
    parts = row.detail["parts"]
    assert len(parts) >= 2
    async with engine.connect() as conn:
        registered = set(await conn.scalars(select(Content.sha256)))
        count = await conn.scalar(select(func.count()).select_from(Content))
    assert {p["sha256"] for p in parts} <= registered
    assert count == len(registered)
    for part in parts:
        assert await ctx.content.read(part["sha256"]) is not None


async def test_parts_streamed_in_parallel_keep_their_own_text(
    engine: AsyncEngine, tmp_path: Path, database_url: str
) -> None:
    """Chunks tagged with a part (``ledger.tagged``) are batched per part, with offsets of
    their own; an attempt of one part voids that part's text only."""
    ctx = make_ctx(engine, tmp_path, database_url, progress_chars=12, progress_interval=60)
    await add_agent(engine, 1, credits=50)
    await queue(ctx, 1, TEXT)
    progress = ProgressWriter(ctx, await claim_one(ctx))
    words = {0: "dawn comes slowly over the harbour", 1: "night falls on the quiet sea"}

    async def part(index: int, retry: bool) -> None:
        await progress("attempt", {"provider": "local", "attempt": 1, "part": index})
        if retry:  # a provider that broke off: its words are void
            await progress("chunk", {"text": "lost words ", "part": index})
            await progress("attempt", {"provider": "local", "attempt": 2, "part": index})
        for word in words[index].split(" "):
            await progress("chunk", {"text": word + " ", "part": index})
            await asyncio.sleep(0)

    await asyncio.gather(part(0, retry=True), part(1, retry=False))
    await progress.flush()
    events = [d for k, d in await events_of(engine, 1) if k == "generation.progress"]
    for index, expected in words.items():
        text = ""
        for data in (e for e in events if e.get("part") == index):
            if data["stage"] == "attempt":
                text = ""
            else:
                assert data["offset"] == len(text)
                text += data["text"]
        assert text == expected + " "
    assert len([e for e in events if e["stage"] == "chunk"]) < sum(
        len(w.split()) for w in words.values()
    )  # batched
