from __future__ import annotations

import dataclasses

import pytest

from inftd.store.binding import ChainIdentity, bind_chain
from inftd.store.db import create_async
from inftd.store.errors import ChainMismatchError
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
