"""The indexer's run loop: it waits out RPC faults and a database that fails its writes,
wakes on demand, and halts on a deep reorg."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.daemon.cli.devnet import BUYER, FRIEND, Anvil
from inftd.indexer.deployment import Deployment
from inftd.indexer.follower import Indexer, IndexerConfig, ReorgTooDeep
from inftd.indexer.rpc import ChainRpc
from inftd.store import db
from inftd.store.db import create_async, sqlite_url
from tests.support.contracts import Contracts
from tests.support.faultproxy import FaultProxy
from tests.support.schema import at_head
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


async def test_the_loop_waits_out_a_database_that_fails_its_writes_and_says_why(
    chain: Anvil,
    deployment: Deployment,
    contracts: Contracts,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another writer holds SQLite's write lock past the busy timeout, so every sync fails
    with "database is locked", as a deadlock or a restarting server fails them on
    PostgreSQL. The loop goes on (once, such an error ended it for good while the process
    and its leader lock stayed up), says why in its stats, and catches up after."""
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", 50)
    path = tmp_path / "locked.db"
    at_head(sqlite_url(path))
    engine = create_async(sqlite_url(path))
    token = contracts.buy(0)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    rpc = ChainRpc([chain.url])
    indexer = Indexer(rpc, engine, deployment, IndexerConfig(window=4, poll_interval=0.05))
    stop = asyncio.Event()
    task = asyncio.create_task(indexer.run(stop))
    try:
        await wait_for(lambda: _failed_twice(indexer))
        assert "database is locked" in str(indexer.stats.failing)
        assert not task.done()
        blocker.execute("ROLLBACK")
        indexer.wake.set()
        await wait_for(lambda: _caught_up(indexer, engine, token))
        assert indexer.stats.failing is None
    finally:
        blocker.close()
        stop.set()
        await asyncio.wait_for(task, 10)
        await rpc.close()
        await engine.dispose()


async def _failed_twice(indexer: Indexer) -> bool:
    return indexer.stats.failures >= 2


async def _caught_up(indexer: Indexer, engine: AsyncEngine, token: int) -> bool:
    """The agent stored, and the loop has seen its sync end (the row is visible as the
    sync commits, a moment before the loop clears ``failing``)."""
    return indexer.stats.failing is None and await _has(engine, token)


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
