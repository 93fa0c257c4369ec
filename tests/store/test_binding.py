from __future__ import annotations

import asyncio
import dataclasses

import pytest
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.store.binding import ChainIdentity, bind_chain
from inftd.store.db import create_async
from inftd.store.errors import ChainMismatchError
from inftd.store.models import ChainBinding
from tests.support.processes import until
from tests.support.schema import at_head

IDENTITY = ChainIdentity(
    chain_id=31337,
    deploy_block=1,
    deploy_block_hash="0x" + "ab" * 32,
    package_address="0x" + "11" * 20,
    generation_address="0x" + "22" * 20,
)


async def test_a_database_stays_bound_to_its_first_chain(database_url: str) -> None:
    at_head(database_url)
    engine = create_async(database_url)
    try:
        await bind_chain(engine, IDENTITY)
        await bind_chain(engine, IDENTITY)  # the same chain again: fine
        other = dataclasses.replace(IDENTITY, deploy_block_hash="0x" + "cd" * 32)
        with pytest.raises(ChainMismatchError, match="database belongs to chain 31337"):
            await bind_chain(engine, other)
        with pytest.raises(ChainMismatchError):
            await bind_chain(engine, dataclasses.replace(IDENTITY, chain_id=1))
    finally:
        await engine.dispose()


async def a_lock_wait(engine: AsyncEngine) -> bool:
    """Whether a session of this test's database waits on a lock."""
    async with engine.connect() as conn:
        query = text(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return bool(await conn.scalar(query))


@pytest.mark.postgres
@pytest.mark.parametrize("same", [True, False], ids=["same-chain", "other-chain"])
async def test_processes_binding_a_new_database_at_once_agree(
    postgres_url: str, same: bool
) -> None:
    """Processes started together on a new database all find no binding and insert one:
    the loser, blocked until the winner commits, checks the winner's binding instead of
    failing on the duplicate key."""
    at_head(postgres_url)
    engine = create_async(postgres_url)
    winner = IDENTITY if same else dataclasses.replace(IDENTITY, chain_id=1)
    try:
        async with engine.connect() as first:
            await first.execute(insert(ChainBinding).values(id=1, **dataclasses.asdict(winner)))
            loser = asyncio.create_task(bind_chain(engine, IDENTITY))  # reads none, inserts
            await until(lambda: a_lock_wait(engine), "the second insert waits on the first")
            await first.commit()
            if same:
                await loser
            else:
                with pytest.raises(ChainMismatchError):
                    await loser
    finally:
        await engine.dispose()
