"""What the generation tests share: a migrated database with agents, a worker context over
a real router, the fake OpenAI server, and reading results back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.agents.credits import grant
from inftd.agents.embeddings import LocalEmbedder
from inftd.agents.ledger import Balances, cached_balances, ledger_balances
from inftd.agents.writer import AgentWriter
from inftd.daemon.config import Settings
from inftd.daemon.generation.content import ContentStore
from inftd.daemon.generation.context import WorkerContext
from inftd.daemon.generation.queue import Claimed, claim, create
from inftd.daemon.generation.requests import parse_request
from inftd.daemon.generation.routing.recorder import MemoryRecorder
from inftd.daemon.generation.routing.router import Router
from inftd.daemon.generation.scheduler import priorities_of, runner_for
from inftd.daemon.generation.worker import Control, Outcome, run_claimed
from inftd.daemon.providers.base import Provider
from inftd.daemon.providers.local import LocalProvider
from inftd.daemon.providers.openai import OpenAIProvider
from inftd.store.models import Agent, CreditEntry, EventRecord, Generation, Mint
from tests.support.fakes.openai_generate import add_generation
from tests.support.fakes.server import Fake, app_of, serve

OPENAI_KEY = "sk-generation-tests"
OWNER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"  # Anvil's buyer account
# Fast loops: short leases and backoffs so lease expiry and retries take milliseconds.
FAST = {
    "lease": 0.6,
    "backoff_base": 0.05,
    "backoff_max": 0.2,
    "poll_interval": 0.2,
    "job_timeout": 20,
    "shutdown_grace": 5,
    "probe_interval": 0,
}
ROUTING = {"cooldown_base": 0.01, "cooldown_max": 0.05, "cache": False}


def settings_for(tmp_path: Path, database_url: str, **generation: Any) -> Settings:
    return Settings.load(
        data_dir=tmp_path,
        database_url=database_url,
        generation={**FAST, **generation},
        routing=ROUTING,
    )


def local_router(settings: Settings, delay: float = 0.0) -> Router:
    return Router({"local": LocalProvider(delay=delay)}, settings.routing, MemoryRecorder())


def context(
    engine: AsyncEngine,
    settings: Settings,
    router: Router,
    owner: str = "worker-a",
) -> WorkerContext:
    return WorkerContext(
        engine=engine,
        writer=AgentWriter(engine),
        embedder=LocalEmbedder(64),
        settings=settings,
        content=ContentStore(settings.content_dir),
        run=runner_for(router),
        owner=owner,
    )


class Writes(Protocol):
    """A worker context or a runtime: what queueing a generation needs."""

    writer: AgentWriter
    settings: Settings


async def queue(ctx: Writes, token_id: int, body: Mapping[str, Any], key: str | None = None) -> str:
    """Queue a generation as the API does; its id."""
    created = await create(ctx.writer, ctx.settings, token_id, parse_request(dict(body)), key)
    return str(created.generation["id"])


async def claim_one(ctx: WorkerContext) -> Claimed:
    [claimed] = await claim(
        ctx.engine, ctx.owner, 1, ctx.settings.generation, priorities_of(ctx.settings)
    )
    return claimed


async def run_next(ctx: WorkerContext) -> Outcome:
    """Claim one due job and run it to its end."""
    return await run_claimed(ctx, await claim_one(ctx), Control())


async def generation(engine: AsyncEngine, generation_id: str) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(select(Generation).where(Generation.id == generation_id))).one()


async def balances(engine: AsyncEngine, token_id: int) -> Balances:
    """The agent's balances, after checking the cache agrees with the ledger."""
    async with engine.connect() as conn:
        cached, ledger = (
            await cached_balances(conn, token_id),
            await ledger_balances(conn, token_id),
        )
    assert cached == ledger
    return cached


async def entries_of(engine: AsyncEngine, generation_id: str) -> list[tuple[str, int]]:
    """(kind, amount) of the ledger entries of a generation, in order."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(CreditEntry.kind, CreditEntry.amount)
            .where(CreditEntry.generation_id == generation_id)
            .order_by(CreditEntry.id)
        )
        return [(r.kind, r.amount) for r in rows]


async def mints_of(engine: AsyncEngine, generation_id: str) -> int:
    async with engine.connect() as conn:
        count = await conn.scalar(
            select(func.count()).select_from(Mint).where(Mint.generation_id == generation_id)
        )
    return int(count or 0)


async def events_of(
    engine: AsyncEngine, token_id: int, prefix: str = "generation."
) -> list[tuple[str, dict[str, Any]]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(EventRecord.type, EventRecord.payload)
            .where(EventRecord.token_id == token_id, EventRecord.type.startswith(prefix))
            .order_by(EventRecord.seq)
        )
        return [(r.type, r.payload) for r in rows]


def streamed_text(events: list[tuple[str, dict[str, Any]]], generation_id: str) -> str:
    """The text of a generation's progress chunks, put together by their offsets (a new
    provider attempt starts the text over)."""
    text = ""
    for kind, data in events:
        if kind != "generation.progress" or data["id"] != generation_id:
            continue
        if data["stage"] == "attempt":
            text = ""
        elif data["stage"] == "chunk":
            assert data["offset"] == len(text), "chunks arrive in order, without gaps"
            text += data["text"]
    return text


@dataclass
class FakeOpenAI:
    fake: Fake  # counts requests, fails the next ones on demand
    app: web.Application  # its generation script (latency, faults): script_of(app)
    url: str  # the OpenAI base URL of the fake (for the SDK and the settings)
    provider: Provider  # the real OpenAI provider pointed at it


@asynccontextmanager
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    """The fake OpenAI server and the real OpenAI provider pointed at it."""
    fake = Fake(key=OPENAI_KEY)
    app = app_of(fake)
    add_generation(app)
    async with serve(app) as url:
        provider = OpenAIProvider(OPENAI_KEY, base_url=url + "/v1", timeout=5)
        try:
            yield FakeOpenAI(fake, app, url + "/v1", provider)
        finally:
            await provider.close()


async def add_agent(
    engine: AsyncEngine, token_id: int, credits: int = 100, package_type: int = 0
) -> None:
    """An agent of ``package_type`` with ``credits`` granted through the ledger."""
    async with engine.begin() as conn:
        await conn.execute(
            insert(Agent).values(
                token_id=token_id,
                package_type=package_type,
                owner=OWNER,
                created_block=1,
                owner_since_block=1,
            )
        )
    async with AgentWriter(engine).write(token_id) as (conn, agent):
        await grant(conn, agent, credits, "initial")
