"""Reading agent state back in tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.agents.ledger import ledger_balances
from inftd.indexer.follower import Indexer
from inftd.indexer.rpc import ChainRpc
from inftd.store.db import create_async
from inftd.store.models import Agent
from tests.support.schema import at_head

MakeIndexer = Callable[..., Indexer]


async def agents(engine: AsyncEngine) -> dict[int, tuple[str, int]]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(Agent.token_id, Agent.owner, Agent.total_credits))
        return {r[0]: (r[1], r[2]) for r in rows}


async def assert_ledger_matches_cache(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        for token_id, (_, total) in (await agents(engine)).items():
            assert (await ledger_balances(conn, token_id)).total == total


def fast_rpc(urls: list[str], max_attempts: int = 6) -> ChainRpc:
    """A client that gives up on a stalled request and retries within milliseconds."""
    return ChainRpc(
        urls, timeout=0.5, max_attempts=max_attempts, backoff_base=0.01, backoff_max=0.05
    )


@asynccontextmanager
async def migrated(url: str) -> AsyncIterator[AsyncEngine]:
    """An engine over the database at ``url``, brought to the latest revision first."""
    at_head(url)
    engine = create_async(url)
    try:
        yield engine
    finally:
        await engine.dispose()
