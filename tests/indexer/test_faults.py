"""The indexer behind a fault-injecting proxy still ends with exactly the right state."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.daemon.cli.devnet import FRIEND, MINTER, Anvil
from inftd.indexer.deployment import Deployment
from inftd.indexer.follower import Indexer, IndexerConfig
from inftd.indexer.rpc import ChainRpc, RpcError
from inftd.store.models import ChainEvent, CreditEntry
from tests.support.contracts import Contracts
from tests.support.faultproxy import FaultProxy
from tests.support.state import agents, assert_ledger_matches_cache

MAX_SYNCS = 50  # the indexer's run loop would keep trying; a test gives up at some point


async def sync_through_faults(indexer: Indexer, head: int) -> int:
    failures = 0
    for _ in range(MAX_SYNCS):
        try:
            if await indexer.sync_once() >= head:
                return failures
        except RpcError:
            failures += 1  # the run loop waits and tries again; the cursor did not move past it
    raise AssertionError(f"not at block {head} after {MAX_SYNCS} syncs")


def make_history(contracts: Contracts) -> dict[int, tuple[str, int]]:
    """Purchases, top-ups and transfers spread over many blocks; returns the expected agents."""
    a = contracts.buy(0)
    contracts.mine(4)
    b = contracts.buy(1, buyer=FRIEND.address)
    contracts.top_up(a, 11)
    contracts.mine(3)
    c = contracts.buy(2)
    contracts.transfer(a, MINTER.address)
    contracts.mine(5)
    contracts.top_up(c, 5)
    contracts.transfer(c, FRIEND.address)
    contracts.mine(2)
    return {a: (MINTER.address, 111), b: (FRIEND.address, 600), c: (FRIEND.address, 3005)}


@pytest.mark.timeout(120)
async def test_every_fault_kind_ends_in_the_right_state(
    chain: Anvil, deployment: Deployment, contracts: Contracts, engine: AsyncEngine
) -> None:
    expected = make_history(contracts)
    async with FaultProxy(chain.url) as proxy:
        proxy.max_log_range = 3  # the node refuses longer eth_getLogs ranges
        proxy.fail_next(1, "429", retry_after=1)
        proxy.fail_next(1, "500")
        proxy.fail_next(1, "stall", seconds=2.0)
        proxy.fail_next(1, "truncate")
        proxy.fail_next(1, "garbage")
        proxy.fail_next(1, "reset")
        proxy.fail_next(1, "502")
        rpc = ChainRpc([proxy.url], timeout=0.5, backoff_base=0.01, max_attempts=4)
        try:
            indexer = Indexer(rpc, engine, deployment, IndexerConfig(window=3, initial_range=8))
            await sync_through_faults(indexer, contracts.head())
        finally:
            await rpc.close()
        assert proxy.queued == 0
        assert proxy.ranges_refused > 0
        assert set(proxy.faults_injected) >= {"429", "500", "stall", "truncate", "garbage"}
    assert await agents(engine) == expected
    await assert_ledger_matches_cache(engine)


@pytest.mark.timeout(120)
async def test_random_faults_with_concurrent_ranges(
    chain: Anvil, deployment: Deployment, contracts: Contracts, engine: AsyncEngine
) -> None:
    expected = make_history(contracts)
    async with FaultProxy(chain.url, fault_rate=0.3, seed=11) as proxy:
        rpc = ChainRpc([proxy.url], timeout=0.5, backoff_base=0.01, max_attempts=3)
        try:
            indexer = Indexer(
                rpc, engine, deployment, IndexerConfig(window=2, initial_range=2, concurrency=4)
            )
            await sync_through_faults(indexer, contracts.head())
        finally:
            await rpc.close()
        assert sum(proxy.faults_injected.values()) > 5
    assert await agents(engine) == expected
    await assert_ledger_matches_cache(engine)
    async with engine.connect() as conn:
        events = await conn.scalar(select(func.count()).select_from(ChainEvent))
        grants = await conn.scalar(select(func.count()).select_from(CreditEntry))
    assert events == 3 * 2 + 2 + 2  # 3 purchases (mint + PackagePurchased), 2 top-ups, 2 transfers
    assert grants == 5
