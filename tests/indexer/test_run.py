"""The indexer's run loop: it waits out RPC faults, wakes on demand, and halts on a deep reorg."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.daemon.devnet import BUYER, FRIEND, Anvil
from inftd.indexer.deployment import Deployment
from inftd.indexer.follower import Indexer, IndexerConfig, ReorgTooDeep
from inftd.indexer.rpc import ChainRpc
from tests.support.contracts import Contracts
from tests.support.faultproxy import FaultProxy
from tests.support.state import agents


async def wait_for(condition: Callable[[], Awaitable[bool]], seconds: float = 15.0) -> None:
    async with asyncio.timeout(seconds):
        while not await condition():  # noqa: ASYNC110 - the database has no event to await
            await asyncio.sleep(0.05)


async def test_the_loop_outlasts_a_failing_node_and_catches_up(
    chain: Anvil, deployment: Deployment, contracts: Contracts, engine: AsyncEngine
) -> None:
    token = contracts.buy(0)
    async with FaultProxy(chain.url) as proxy:
        proxy.fail_next(6, "500")  # three whole syncs fail before one gets through
        rpc = ChainRpc([proxy.url], backoff_base=0.01, max_attempts=2)
        indexer = Indexer(rpc, engine, deployment, IndexerConfig(window=4, poll_interval=0.05))
        stop = asyncio.Event()
        task = asyncio.create_task(indexer.run(stop))
        try:
            await wait_for(lambda: _has(engine, token))
            contracts.buy(1, buyer=FRIEND.address)
            indexer.wake.set()
            await wait_for(lambda: _count(engine, 2))
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
            await rpc.close()
        assert proxy.faults_injected["500"] == 6
    assert (await agents(engine))[token] == (BUYER.address, 100)


async def _has(engine: AsyncEngine, token: int) -> bool:
    return token in await agents(engine)


async def _count(engine: AsyncEngine, n: int) -> bool:
    return len(await agents(engine)) == n


async def test_a_deep_reorg_halts_the_loop_with_its_reason(
    chain: Anvil, deployment: Deployment, contracts: Contracts, engine: AsyncEngine
) -> None:
    rpc = ChainRpc([chain.url])
    indexer = Indexer(rpc, engine, deployment, IndexerConfig(window=2, poll_interval=0.05))
    try:
        fork = contracts.snapshot()
        contracts.buy(0)
        contracts.mine(5)
        await indexer.sync_once()
        contracts.revert(fork)
        contracts.buy(2, buyer=FRIEND.address)
        contracts.mine(7)
        with pytest.raises(ReorgTooDeep):
            await asyncio.wait_for(indexer.run(asyncio.Event()), 15)
        assert indexer.stats.halted is not None
        assert "reorg deeper than the block window" in indexer.stats.halted
    finally:
        await rpc.close()
