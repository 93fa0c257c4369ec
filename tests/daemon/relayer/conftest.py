"""Fixtures of the relayer tests: the session Anvil (each test's changes reverted), a
migrated database with indexed agents, succeeded generations handed over as the queue's
worker does it (``add_mint``), and relayers over them, as after a restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest
from eth_account import Account
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.daemon.cli.devnet import MINTER, Anvil, rpc_call
from inftd.daemon.config import RelayerSettings
from inftd.daemon.relayer.chain import MintChain
from inftd.daemon.relayer.context import Context, Hooks
from inftd.daemon.relayer.relayer import Relayer
from inftd.indexer.deployment import Deployment
from inftd.indexer.follower import Indexer, IndexerConfig
from inftd.indexer.rpc import ChainRpc
from inftd.store.db import create_async
from inftd.store.models import EventRecord, MintAttempt
from tests.support.contracts import Contracts
from tests.support.schema import at_head

MakeRelayer = Callable[..., Relayer]
FAST = {  # rounds back to back in tests; retries due at once
    "poll_interval": 0.01,
    "backoff_base": 0.001,
    "backoff_max": 0.001,
    "max_fee_gwei": 100_000,
    "gap_grace": 0.2,
}
SETTLE_ROUNDS = 400  # rounds a test waits for the relayer to have nothing left to do


class Crash(Exception):
    """Raised by a hook: the relayer stops there, as if the process died."""


@pytest.fixture
def contracts(chain: Anvil, deployment: Deployment) -> Contracts:
    return Contracts(chain.url, deployment)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    at_head(database_url)
    engine = create_async(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def rpc(chain: Anvil) -> AsyncIterator[ChainRpc]:
    rpc = ChainRpc([chain.url])
    yield rpc
    await rpc.close()


@pytest.fixture
def indexer(rpc: ChainRpc, engine: AsyncEngine, deployment: Deployment) -> Indexer:
    return Indexer(rpc, engine, deployment, IndexerConfig())


@pytest.fixture
async def make_relayer(
    rpc: ChainRpc, engine: AsyncEngine, deployment: Deployment
) -> AsyncIterator[MakeRelayer]:
    """New relayers over the same database and key, as after a restart."""
    async with AsyncExitStack() as stack:

        def make(hooks: Hooks | None = None, confirmations: int = 0, **settings: Any) -> Relayer:
            ctx = Context(
                engine=engine,
                chain=MintChain(rpc, deployment, 16),
                account=Account.from_key(MINTER.key),
                settings=RelayerSettings(**(FAST | settings)),
                chain_id=deployment.chain_id,
                confirmations=confirmations,
                hooks=hooks or Hooks(),
            )
            relayer = Relayer(ctx)
            stack.push_async_callback(relayer.close)
            return relayer

        yield make


async def settle(relayer: Relayer, rounds: int = SETTLE_ROUNDS) -> int:
    """Rounds until nothing is left to do; how many it took."""
    for done in range(1, rounds + 1):
        await relayer.step()
        if await relayer.unsettled() == 0:
            return done
    raise AssertionError(f"the relayer still had work after {rounds} rounds")


async def attempts(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        return list(await conn.execute(select(MintAttempt).order_by(MintAttempt.id)))


async def events(engine: AsyncEngine, prefix: str = "mint.") -> list[Any]:
    async with engine.connect() as conn:
        query = select(EventRecord).where(EventRecord.type.startswith(prefix))
        return list(await conn.execute(query.order_by(EventRecord.seq)))


def minter_nonce(contracts: Contracts, tag: str = "latest") -> int:
    return int(contracts.w3.eth.get_transaction_count(MINTER.address, tag))  # type: ignore[arg-type]


MINED_WITHIN = 10.0  # seconds a sent transaction may take to show a receipt


async def mined(url: str, tx_hash: str) -> None:
    """Wait until ``tx_hash`` has a receipt: Anvil answers a send before the block that
    includes it is visible to every reader, so a test that reads the chain next waits."""
    for _ in range(int(MINED_WITHIN / 0.02)):
        if rpc_call(url, "eth_getTransactionReceipt", [tx_hash]) is not None:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{tx_hash} was not mined within {MINED_WITHIN} s")
