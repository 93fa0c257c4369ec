"""The chain misbehaves: a transaction that is not mined gets a fee bump at its nonce, and
another transaction of the same key spends a nonce the relayer had: the gap is repaired."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.daemon.cli.devnet import BUYER, FRIEND, MINTER, Anvil, rpc_call
from inftd.daemon.relayer.context import Hooks
from inftd.daemon.relayer.store import NewAttempt
from inftd.indexer.follower import Indexer
from inftd.store.models import RelayerNonce, VoidedMint
from tests.daemon.relayer.conftest import Crash, MakeRelayer, attempts, mined, minter_nonce, settle
from tests.support.contracts import Contracts
from tests.support.mints import assert_minted_once, finish_generations, minted_logs, mints

REPLACE_AFTER = 2  # blocks


@contextmanager
def manual_mining(chain: Anvil) -> Iterator[str]:
    """Blocks only when the test mines them; after, automine, an empty pool and the base
    fee as it was (Anvil's evm_revert keeps the base fee of the reverted blocks)."""
    history = rpc_call(chain.url, "eth_feeHistory", ["0x1", "latest", []])
    rpc_call(chain.url, "evm_setAutomine", [False])
    try:
        yield chain.url
    finally:
        rpc_call(chain.url, "anvil_dropAllTransactions")
        rpc_call(chain.url, "anvil_setNextBlockBaseFeePerGas", [history["baseFeePerGas"][-1]])
        rpc_call(chain.url, "evm_setAutomine", [True])


def left_out_of_blocks(url: str, max_fee: Any) -> None:
    """REPLACE_AFTER blocks mined without a transaction capped at ``max_fee``: the base
    fee raised far above it."""
    rpc_call(url, "anvil_setNextBlockBaseFeePerGas", [hex(int(max_fee) * 10)])
    for _ in range(REPLACE_AFTER):
        rpc_call(url, "evm_mine")


def assert_bumped(first: Any, second: Any) -> None:
    """``second``'s fees replace ``first``'s: both raised by the relayer's 20% at least."""
    assert second.max_fee_per_gas > first.max_fee_per_gas
    assert second.max_priority_fee_per_gas >= first.max_priority_fee_per_gas * 120 // 100


class CrashAfterStore(Hooks):
    async def after_store(self, attempts: Sequence[NewAttempt]) -> None:
        raise Crash("after store")


def outside_transaction(chain: Anvil, nonce: int | None = None) -> str:
    """A transfer signed with the minter's key by someone else (Anvil holds the key)."""
    tx = {"from": MINTER.address, "to": FRIEND.address, "value": hex(1)}
    if nonce is not None:
        tx["nonce"] = hex(nonce)
    return str(rpc_call(chain.url, "eth_sendTransaction", [tx]))


async def test_a_transaction_not_mined_in_time_is_replaced_at_its_nonce(
    chain: Anvil,
    contracts: Contracts,
    engine: AsyncEngine,
    indexer: Indexer,
    make_relayer: MakeRelayer,
) -> None:
    token = contracts.buy(0, BUYER.address)
    await indexer.sync_once()
    (gid,) = await finish_generations(engine, token, 1)
    relayer = make_relayer(replace_after_blocks=REPLACE_AFTER)
    with manual_mining(chain) as url:
        await relayer.step()
        (first,) = await attempts(engine)
        assert first.broadcast_at is not None
        left_out_of_blocks(url, first.max_fee_per_gas)
        assert minter_nonce(contracts) == first.nonce  # not mined

        await relayer.step()
        first, second = await attempts(engine)
        assert second.nonce == first.nonce
        assert_bumped(first, second)
        rpc_call(url, "evm_mine")
        await settle(relayer)

    first, second = await attempts(engine)
    assert (first.outcome, second.outcome) == ("replaced", "mined")
    row = (await mints(engine))[gid]
    assert row.tx_hash == second.tx_hash
    assert_minted_once(contracts, await mints(engine), BUYER.address)


async def test_a_nonce_spent_by_another_transaction_of_the_key_is_repaired(
    chain: Anvil,
    contracts: Contracts,
    engine: AsyncEngine,
    indexer: Indexer,
    make_relayer: MakeRelayer,
) -> None:
    token = contracts.buy(0, BUYER.address)
    await indexer.sync_once()
    (gid,) = await finish_generations(engine, token, 1)
    with pytest.raises(Crash):
        await settle(make_relayer(CrashAfterStore()))
    (stored,) = await attempts(engine)
    # takes the nonce the stored transaction was signed with
    await mined(chain.url, outside_transaction(chain))
    assert minter_nonce(contracts) == stored.nonce + 1

    await settle(make_relayer())

    dropped, again = await attempts(engine)
    assert (dropped.tx_hash, dropped.outcome) == (stored.tx_hash, "dropped")
    assert (again.nonce, again.outcome) == (stored.nonce + 1, "mined")
    assert_minted_once(contracts, await mints(engine), BUYER.address)
    assert (await mints(engine))[gid].error is None

    # The key used twice more while nothing is in flight: the counter catches up.
    await mined(chain.url, outside_transaction(chain))
    await mined(chain.url, outside_transaction(chain))
    (later,) = await finish_generations(engine, token, 1)
    await settle(make_relayer())
    newest = (await attempts(engine))[-1]
    assert newest.nonce == again.nonce + 3
    assert_minted_once(contracts, await mints(engine), BUYER.address)
    async with engine.connect() as conn:
        assert await conn.scalar(select(RelayerNonce.next_nonce)) == newest.nonce + 1
    assert later in await mints(engine)


async def test_the_counter_starts_after_a_transaction_of_the_key_in_the_pool(
    chain: Anvil,
    contracts: Contracts,
    engine: AsyncEngine,
    indexer: Indexer,
    make_relayer: MakeRelayer,
) -> None:
    token = contracts.buy(0, BUYER.address)
    await indexer.sync_once()
    await finish_generations(engine, token, 2)
    relayer = make_relayer(replace_after_blocks=REPLACE_AFTER)
    start = minter_nonce(contracts)
    with manual_mining(chain) as url:
        outside = outside_transaction(chain)  # in the pool, not mined: "pending" counts it
        for _ in range(10):
            await relayer.step()
            rpc_call(url, "evm_mine")
        await settle(relayer)
    assert_minted_once(contracts, await mints(engine), BUYER.address)
    mined = sorted(a.nonce for a in await attempts(engine) if a.outcome == "mined")
    assert mined == [start + 1, start + 2]
    receipt = rpc_call(chain.url, "eth_getTransactionReceipt", [outside])
    assert receipt["status"] == "0x1"  # not overwritten


async def test_a_mint_is_confirmed_at_depth_and_sent_again_when_a_reorg_drops_it(
    chain: Anvil,
    contracts: Contracts,
    engine: AsyncEngine,
    indexer: Indexer,
    make_relayer: MakeRelayer,
) -> None:
    token = contracts.buy(0, BUYER.address)
    await indexer.sync_once()
    (gid,) = await finish_generations(engine, token, 1)
    relayer = make_relayer(confirmations=2)
    before = contracts.snapshot()
    await relayer.step()  # sent, and mined at once (automine)
    await mined(chain.url, (await mints(engine))[gid].tx_hash)  # visible to every reader
    await relayer.step()
    first = (await mints(engine))[gid]
    assert first.status == "mined"  # not yet 2 blocks deep
    assert first.nft_token_id is not None

    contracts.revert(before)  # the block is gone, as in a reorg
    await relayer.step()
    assert (await mints(engine))[gid].status == "sent"
    for _ in range(20):
        await relayer.step()  # the same signed bytes sent again, mined again
        if (await mints(engine))[gid].status == "mined":
            break
    contracts.mine(2)
    await settle(relayer)

    row = (await mints(engine))[gid]
    assert (row.status, row.tx_hash) == ("confirmed", first.tx_hash)
    assert row.block_number is not None
    assert row.block_number + 2 <= contracts.head()
    assert [a.outcome for a in await attempts(engine)] == ["mined"]
    assert_minted_once(contracts, await mints(engine), BUYER.address)


async def test_a_mint_confirmed_at_once_is_sent_again_when_a_reorg_drops_it_unindexed(
    chain: Anvil,
    contracts: Contracts,
    engine: AsyncEngine,
    indexer: Indexer,
    make_relayer: MakeRelayer,
) -> None:
    """With no confirmations the receipt confirms a mint at once. A reorg that drops its
    block before the indexer read it is seen by no rollback: the indexer, writing the new
    block without the mint, hands it back, and the relayer sends the same bytes at the same
    nonce, so the mints after it do not wait behind a hole (found by bench.chaos)."""
    token = contracts.buy(0, BUYER.address)
    await indexer.sync_once()  # the indexer's blocks end here; the reorg is above them
    before = contracts.snapshot()
    dropped = await finish_generations(engine, token, 2)
    relayer = make_relayer(confirmations=0)
    await settle(relayer)
    assert {r.status for r in (await mints(engine)).values()} == {"confirmed"}

    contracts.revert(before)  # both mints' blocks are gone; the chain's nonce went back
    contracts.mine(4)  # a longer branch without them
    later = await finish_generations(engine, token, 1)
    await indexer.sync_once()
    assert {(await mints(engine))[gid].status for gid in dropped} == {"sent"}
    await settle(relayer)

    rows = await mints(engine)
    assert set(rows) == {*dropped, *later}
    assert_minted_once(contracts, rows, BUYER.address)
    assert sorted(a.nonce for a in await attempts(engine) if a.outcome == "mined") == [
        rows[gid].nonce for gid in sorted(rows, key=lambda g: rows[g].nonce)
    ]


async def test_the_nonce_of_a_mint_whose_agent_a_reorg_removed_is_spent_by_a_cancel(
    chain: Anvil,
    contracts: Contracts,
    engine: AsyncEngine,
    indexer: Indexer,
    make_relayer: MakeRelayer,
) -> None:
    """A reorg drops the purchase of an agent whose mint was signed and stored but not yet
    on the chain: the rollback deletes the agent, its generation and its mint, and keeps the
    nonce as voided. Without a cancel at it, no later mint of the key could ever be mined
    (found by bench.chaos at 0 confirmations)."""
    kept = contracts.buy(0, BUYER.address)
    await indexer.sync_once()
    before = contracts.snapshot()
    doomed = contracts.buy(0, FRIEND.address)
    await indexer.sync_once()
    (gone,) = await finish_generations(engine, doomed, 1)
    with pytest.raises(Crash):
        await make_relayer(CrashAfterStore()).step()  # signed and stored, never broadcast
    (signed,) = await attempts(engine)

    contracts.revert(before)  # the purchase is gone, as in a reorg
    branch = contracts.snapshot()
    contracts.mine(3)
    await indexer.sync_once()
    assert gone not in await mints(engine)
    later = await finish_generations(engine, kept, 2)
    relayer = make_relayer()
    await settle(relayer)
    first_cancel = await voided(engine)
    assert [v.outcome for v in first_cancel] == ["cancelled"]

    contracts.revert(branch)  # another reorg: the cancel and the mints are gone too
    contracts.mine(12)  # a branch longer than the one it replaces, as a reorg's is
    await indexer.sync_once()
    await settle(relayer)  # the void open again, its stored cancel sent again

    rows = await mints(engine)
    assert set(rows) == set(later)
    assert_minted_once(contracts, rows, BUYER.address)
    assert sorted(r.nonce for r in rows.values()) == [signed.nonce + 1, signed.nonce + 2]
    voids = await voided(engine)
    assert [(v.generation_id, v.nonce, v.outcome) for v in voids] == [
        (gone, signed.nonce, "cancelled")
    ]
    assert voids[0].cancel_tx_hash == first_cancel[0].cancel_tx_hash
    assert minter_nonce(contracts) == signed.nonce + 3
    assert minted_logs(contracts, gone) == []


async def test_a_cancel_left_out_of_blocks_is_replaced_with_higher_fees(
    chain: Anvil,
    contracts: Contracts,
    engine: AsyncEngine,
    indexer: Indexer,
    make_relayer: MakeRelayer,
) -> None:
    """A voided nonce's cancel priced under the market would hold every later mint back
    as the voided mint did: it is bumped like a stuck mint."""
    before = contracts.snapshot()
    doomed = contracts.buy(0, FRIEND.address)
    await indexer.sync_once()
    await finish_generations(engine, doomed, 1)
    with pytest.raises(Crash):
        await make_relayer(CrashAfterStore()).step()  # signed and stored, never broadcast
    (signed,) = await attempts(engine)
    contracts.revert(before)  # the purchase is gone, as in a reorg
    contracts.mine(3)
    await indexer.sync_once()
    relayer = make_relayer(replace_after_blocks=REPLACE_AFTER)
    with manual_mining(chain) as url:
        await relayer.step()
        (first,) = await voided(engine)
        assert first.cancel_tx_hash is not None
        left_out_of_blocks(url, first.max_fee_per_gas)
        assert minter_nonce(contracts) == signed.nonce  # not mined

        await relayer.step()
        (second,) = await voided(engine)
        assert second.cancel_tx_hash != first.cancel_tx_hash
        assert_bumped(first, second)
        rpc_call(url, "evm_mine")
        await settle(relayer)

    (done,) = await voided(engine)
    assert (done.outcome, done.cancel_tx_hash) == ("cancelled", second.cancel_tx_hash)
    receipt = rpc_call(chain.url, "eth_getTransactionReceipt", [second.cancel_tx_hash])
    assert receipt is not None
    assert int(receipt["status"], 16) == 1
    assert minter_nonce(contracts) == signed.nonce + 1


async def voided(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        return list(await conn.execute(select(VoidedMint)))


SQLITE_MOMENT = 0.5  # seconds for a rollback to reach the lock this test holds on SQLite


async def test_a_mint_signed_while_a_reorg_removes_its_agent_keeps_its_nonce(
    chain: Anvil,
    contracts: Contracts,
    engine: AsyncEngine,
    indexer: Indexer,
    make_relayer: MakeRelayer,
) -> None:
    """A relayer committing a signed mint after the rollback looked for signed mints, and
    before its delete took the mint away, lost that nonce: every later mint of the key
    waited behind the gap, or the mint landed with no record of it (bench.chaos found
    both). On PostgreSQL each statement of the rollback sees what others committed before
    it; on SQLite the sqlite3 module began the rollback's transaction only at its first
    write, after those reads. The rollback waits for a transaction signing one of its
    mints (PostgreSQL: a row lock; SQLite: the write lock, taken as it begins) and voids
    what it signed."""
    kept = contracts.buy(0, BUYER.address)
    await indexer.sync_once()
    before = contracts.snapshot()
    doomed = contracts.buy(0, FRIEND.address)
    await indexer.sync_once()
    (gone,) = await finish_generations(engine, doomed, 1)
    signed: list[int] = []
    rollbacks: list[asyncio.Task[int]] = []

    class ReorgWhileSigning(Hooks):
        async def after_sign(self, attempts: Sequence[NewAttempt]) -> None:
            if signed:  # the mints after it sign undisturbed
                return
            signed.extend(a.nonce for a in attempts)
            contracts.revert(before)  # the purchase is gone, as in a reorg
            contracts.mine(3)
            rollbacks.append(asyncio.create_task(indexer.sync_once()))
            await blocked_on_a_lock(engine)  # the rollback waits for this transaction

    relayer = make_relayer(ReorgWhileSigning())
    await relayer.step()
    await asyncio.wait_for(rollbacks[0], 30)
    assert gone not in await mints(engine)
    assert [(v.generation_id, v.nonce) for v in await voided(engine)] == [(gone, signed[0])]

    later = await finish_generations(engine, kept, 1)
    await settle(relayer)
    assert_minted_once(contracts, await mints(engine), BUYER.address)
    assert set(await mints(engine)) == set(later)
    assert minter_nonce(contracts) == signed[0] + 2  # the voided nonce spent, the next mined
    assert [v.outcome is not None for v in await voided(engine)] == [True]


async def blocked_on_a_lock(engine: AsyncEngine, seconds: float = 15.0) -> None:
    """Until another session of this database waits for a lock. SQLite shows no waits:
    a moment for the other session to reach its ``BEGIN``, which waits for this one."""
    if engine.dialect.name == "sqlite":
        await asyncio.sleep(SQLITE_MOMENT)
        return
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with asyncio.timeout(seconds), engine.connect() as conn:
        while not await conn.scalar(query):
            await conn.rollback()  # a new snapshot of pg_stat_activity each time
            await asyncio.sleep(0.02)
