"""One writer per agent: writers of one agent wait for each other; two agents writing to
each other at once (rows that reference the other agent) do not deadlock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.agents.errors import UnknownAgent
from inftd.agents.messages import send_message
from inftd.agents.writer import AgentWriter
from inftd.store.db import create_async
from inftd.store.models import Agent, AgentMessage
from tests.support.schema import at_head


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    at_head(database_url)
    engine = create_async(database_url)
    async with engine.begin() as conn:
        for token_id in (1, 2):
            await conn.execute(
                insert(Agent).values(
                    token_id=token_id,
                    package_type=0,
                    owner="0x" + f"{token_id:02x}" * 20,
                    created_block=1,
                    owner_since_block=1,
                )
            )
    yield engine
    await engine.dispose()


async def test_writes_to_one_agent_never_interleave(engine: AsyncEngine) -> None:
    writer = AgentWriter(engine)

    async def bump() -> None:
        async with writer.write(1) as (conn, agent):
            await asyncio.sleep(0.01)  # another writer would read the same level meanwhile
            await conn.execute(
                update(Agent).where(Agent.token_id == 1).values(level=agent.level + 1)
            )

    await asyncio.gather(*(bump() for _ in range(20)))
    async with engine.connect() as conn:
        assert await conn.scalar(select(Agent.level).where(Agent.token_id == 1)) == 21


async def test_unknown_agent_is_refused(engine: AsyncEngine) -> None:
    with pytest.raises(UnknownAgent):
        async with AgentWriter(engine).write(3):
            pass


@pytest.mark.postgres
async def test_two_agents_writing_to_each_other_across_engines_do_not_deadlock(
    postgres_url: str,
) -> None:
    """Separate engines stand for separate processes: only row locks order them."""
    at_head(postgres_url)
    engines = [create_async(postgres_url) for _ in range(2)]
    try:
        async with engines[0].begin() as conn:
            for token_id in (1, 2):
                await conn.execute(
                    insert(Agent).values(
                        token_id=token_id,
                        package_type=0,
                        owner="0x" + f"{token_id:02x}" * 20,
                        created_block=1,
                        owner_since_block=1,
                    )
                )
        gate = asyncio.Barrier(2)

        async def send(engine: AsyncEngine, sender: int, receiver: int) -> None:
            async with AgentWriter(engine).write(sender) as (conn, _):
                await gate.wait()  # both hold their own agent before touching the other
                await send_message(conn, sender, receiver, {"text": "hello"})

        for _ in range(5):
            await asyncio.gather(send(engines[0], 1, 2), send(engines[1], 2, 1))
        async with engines[0].connect() as conn:
            assert await conn.scalar(select(func.count()).select_from(AgentMessage)) == 10
    finally:
        for engine in engines:
            await engine.dispose()
