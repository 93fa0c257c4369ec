"""A relayer stopped between "signed" and "confirmed", then started again, ends with exactly
one NFT per generation (design.md, invariant 4).

Two ways of stopping it: SIGKILL of a real relayer process at the point (``child.py``: the
database sees only what was committed, the chain only what was sent), and, for every
point, a ``Crash`` raised from a hook in this process, which unwinds the relayer there:
an open transaction rolls back as a dead process's would, and nothing after the point
runs. Each start after the stop is a new relayer with nothing in memory.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.daemon.cli.devnet import BUYER, PROJECT_ROOT, Anvil, rpc_call
from inftd.daemon.relayer.context import Hooks
from inftd.daemon.relayer.store import Attempt, NewAttempt
from inftd.indexer.deployment import Deployment
from inftd.indexer.follower import Indexer
from inftd.store.models import RelayerNonce
from tests.daemon.relayer.conftest import Crash, MakeRelayer, attempts, minter_nonce, settle
from tests.support.contracts import Contracts
from tests.support.mints import assert_minted_once, finish_generations, mints

GENERATIONS = 3
CHILD_TIMEOUT = 90  # seconds for the relayer process to reach its point


class CrashAt(Hooks):
    """Raises ``Crash`` at ``point``, once, noting what it saw there."""

    def __init__(self, point: str) -> None:
        self.point = point
        self.signed: list[NewAttempt] = []

    def _maybe(self, point: str) -> None:
        if point == self.point:
            raise Crash(point)

    async def after_sign(self, attempts: Sequence[NewAttempt]) -> None:
        self.signed = list(attempts)
        self._maybe("after_sign")

    async def after_store(self, attempts: Sequence[NewAttempt]) -> None:
        self._maybe("after_store")

    async def after_broadcast(self, tx_hashes: Sequence[str]) -> None:
        self._maybe("after_broadcast")

    async def after_receipt(self, attempt: Attempt, receipt: dict[str, Any]) -> None:
        self._maybe("after_receipt")


async def counter(engine: AsyncEngine) -> int | None:
    async with engine.connect() as conn:
        return await conn.scalar(select(RelayerNonce.next_nonce))


async def bought_with_generations(
    contracts: Contracts, engine: AsyncEngine, indexer: Indexer
) -> list[str]:
    token = contracts.buy(0, BUYER.address)
    await indexer.sync_once()
    return await finish_generations(engine, token, GENERATIONS)


async def check_stopped_state(point: str, contracts: Contracts, engine: AsyncEngine) -> None:
    """What the stop left, as each point implies."""
    stored = await attempts(engine)
    if point == "after_store":  # stored, never sent: the node has not heard of them
        assert len(stored) == GENERATIONS
        assert all(a.broadcast_at is None for a in stored)
        for a in stored:
            assert rpc_call(contracts.url, "eth_getTransactionByHash", [a.tx_hash]) is None
    elif point in ("after_broadcast", "after_receipt"):  # mined, not recorded as such
        receipts = [contracts.w3.eth.get_transaction_receipt(a.tx_hash) for a in stored]
        assert len(receipts) == GENERATIONS
        assert all(r["status"] == 1 for r in receipts)
        assert {m.status for m in (await mints(engine)).values()} == {"sent"}


@pytest.mark.parametrize("point", ["after_sign", "after_store", "after_broadcast", "after_receipt"])
async def test_a_crash_at_each_point_leaves_one_nft_per_generation(
    point: str,
    contracts: Contracts,
    engine: AsyncEngine,
    indexer: Indexer,
    make_relayer: MakeRelayer,
) -> None:
    await bought_with_generations(contracts, engine, indexer)
    nonce_before = minter_nonce(contracts)
    hooks = CrashAt(point)
    with pytest.raises(Crash):
        await settle(make_relayer(hooks))
    if point == "after_sign":  # rolled back: nothing stored, no nonce taken
        assert await attempts(engine) == []
        assert await counter(engine) in (None, nonce_before)
        assert minter_nonce(contracts, "pending") == nonce_before
    await check_stopped_state(point, contracts, engine)
    stored_before = {a.tx_hash for a in await attempts(engine)}

    await settle(make_relayer())

    assert_minted_once(contracts, await mints(engine), BUYER.address)
    assert minter_nonce(contracts) == nonce_before + GENERATIONS  # no transaction wasted
    mined = [a for a in await attempts(engine) if a.outcome == "mined"]
    assert len(mined) == GENERATIONS
    if point == "after_sign":  # signed again with the very nonces the crash took back
        assert sorted(a.nonce for a in mined) == sorted(a.nonce for a in hooks.signed)
    else:  # the bytes stored before the crash are the ones mined
        assert {a.tx_hash for a in mined} == stored_before


@pytest.mark.parametrize("point", ["after_store", "after_broadcast", "after_receipt"])
async def test_sigkill_of_a_relayer_process_then_a_restart_mints_each_once(
    point: str,
    chain: Anvil,
    deployment: Deployment,
    database_url: str,
    tmp_path: Path,
    contracts: Contracts,
    engine: AsyncEngine,
    indexer: Indexer,
    make_relayer: MakeRelayer,
) -> None:
    await bought_with_generations(contracts, engine, indexer)
    nonce_before = minter_nonce(contracts)
    deployment.write(tmp_path / "deployment.json")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.daemon.relayer.child",
        database_url,
        chain.url,
        str(tmp_path / "deployment.json"),
        point,
        cwd=PROJECT_ROOT,
    )
    assert await asyncio.wait_for(process.wait(), CHILD_TIMEOUT) == -signal.SIGKILL
    await check_stopped_state(point, contracts, engine)
    stored_before = {a.tx_hash for a in await attempts(engine)}

    await settle(make_relayer())

    assert_minted_once(contracts, await mints(engine), BUYER.address)
    assert minter_nonce(contracts) == nonce_before + GENERATIONS
    mined = {a.tx_hash for a in await attempts(engine) if a.outcome == "mined"}
    assert mined == stored_before
