"""The indexer against a real Anvil and both databases: state, restarts, reorgs, confirmations."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.agents.views import agent_state
from inftd.daemon.cli.devnet import BUYER, FRIEND, MINTER
from inftd.indexer.follower import ReorgTooDeep
from inftd.indexer.status import indexer_report
from inftd.store.models import ChainEvent, CreditEntry, EventRecord, Generation, Mint
from tests.indexer.conftest import Copying
from tests.support.contracts import Contracts
from tests.support.state import MakeIndexer, agents, assert_ledger_matches_cache


async def test_purchases_top_ups_and_transfers_become_agents(
    contracts: Contracts, make_indexer: MakeIndexer, engine: AsyncEngine
) -> None:
    first = contracts.buy(0)
    second = contracts.buy(1, buyer=FRIEND.address)
    contracts.top_up(first, 25)
    contracts.transfer(first, MINTER.address)
    request_id = contracts.request(second, "a lighthouse at dusk", kind=1)

    indexer = make_indexer(window=4)
    assert await indexer.sync_once() == contracts.head()

    assert await agents(engine) == {
        first: (MINTER.address, 125),
        second: (FRIEND.address, 600),
    }
    await assert_ledger_matches_cache(engine)
    async with engine.connect() as conn:
        state = await agent_state(conn, second)
        generation = (await conn.execute(select(Generation))).one()
        report = await indexer_report(conn, contracts.head(), 0)
    assert state["packageType"] == 1
    assert state["availableCredits"] == 600
    assert (generation.kind, generation.prompt, generation.source, generation.status) == (
        "image",
        "a lighthouse at dusk",
        "chain",
        "queued",
    )
    assert generation.chain_request_id == request_id
    assert report.events["PackagePurchased"] == 2
    assert report.events["CreditsAdded"] == 1
    assert report.pending_events == 0
    assert report.problems == 0


async def test_a_restart_resumes_without_counting_twice(
    contracts: Contracts, make_indexer: MakeIndexer, engine: AsyncEngine
) -> None:
    token = contracts.buy(0)
    await make_indexer(window=3).sync_once()
    contracts.top_up(token, 10)
    contracts.mine(5)
    await make_indexer(window=3).sync_once()  # a new process, same database
    await make_indexer(window=3).sync_once()  # and again, with nothing new
    assert (await agents(engine))[token] == (BUYER.address, 110)
    async with engine.connect() as conn:
        entries = await conn.scalar(select(func.count()).select_from(CreditEntry))
    assert entries == 2
    await assert_ledger_matches_cache(engine)


async def test_backfill_and_tail_agree(
    contracts: Contracts, make_indexer: MakeIndexer, engine: AsyncEngine
) -> None:
    """A window of 1 reads nearly everything in bulk; a window of 500 block by block."""
    tokens = [contracts.buy(i % 3) for i in range(6)]
    contracts.top_up(tokens[2], 7)
    contracts.mine(3)
    await make_indexer(window=1, initial_range=2).sync_once()
    bulk = await agents(engine)
    assert len(bulk) == 6
    assert bulk[tokens[2]][1] == 3000 + 7


async def test_a_reorg_removes_a_purchase_and_reinclusion_applies_it_once(
    contracts: Contracts, make_indexer: MakeIndexer, engine: AsyncEngine, copying: Copying
) -> None:
    """Whether the rows went in by INSERT or by COPY, the rollback finds and removes them."""
    kept = contracts.buy(0)
    indexer = make_indexer(window=16)
    await indexer.sync_once()
    fork = contracts.snapshot()
    dropped = contracts.buy(1, buyer=FRIEND.address)
    contracts.top_up(kept, 40)
    signed = [contracts.raw_transaction(block) for block in (-1, 0)]
    await indexer.sync_once()
    assert set(await agents(engine)) == {kept, dropped}
    assert (await agents(engine))[kept][1] == 140
    assert ("agents" in copying.tables) == copying.expected(engine)

    contracts.revert(fork)  # the two blocks are gone; a longer fork replaces them
    contracts.mine(4)
    await indexer.sync_once()
    assert await agents(engine) == {kept: (BUYER.address, 100)}
    assert indexer.stats.reorgs == 1
    await assert_ledger_matches_cache(engine)
    async with engine.connect() as conn:
        told = (await conn.execute(select(EventRecord.type, EventRecord.token_id))).all()
    assert ("agent.removed", dropped) in told  # subscribers hear of the rollback
    assert ("agent.rolled_back", kept) in told

    for raw in signed:  # both transactions, re-included in new blocks
        contracts.w3.eth.send_raw_transaction(raw)
    contracts.mine(1)
    await indexer.sync_once()
    await indexer.sync_once()
    assert await agents(engine) == {
        kept: (BUYER.address, 140),
        dropped: (FRIEND.address, 600),
    }
    async with engine.connect() as conn:
        topups = await conn.scalar(
            select(func.count()).select_from(CreditEntry).where(CreditEntry.kind == "topup")
        )
        report = await indexer_report(conn, contracts.head(), 0)
    assert topups == 1
    assert report.reorgs == 1
    assert report.events["PackagePurchased"] == 2
    await assert_ledger_matches_cache(engine)


async def test_a_transfer_rolled_back_restores_the_owner(
    contracts: Contracts, make_indexer: MakeIndexer, engine: AsyncEngine
) -> None:
    token = contracts.buy(0)
    indexer = make_indexer(window=16)
    await indexer.sync_once()
    fork = contracts.snapshot()
    contracts.transfer(token, FRIEND.address)
    await indexer.sync_once()
    assert (await agents(engine))[token][0] == FRIEND.address
    contracts.revert(fork)
    contracts.mine(3)
    await indexer.sync_once()
    assert (await agents(engine))[token][0] == BUYER.address


async def test_a_reorg_deeper_than_the_window_stops_the_indexer(
    contracts: Contracts, make_indexer: MakeIndexer, engine: AsyncEngine
) -> None:
    contracts.buy(0)
    indexer = make_indexer(window=2)
    fork = contracts.snapshot()
    contracts.mine(6)
    await indexer.sync_once()
    before = await agents(engine)
    contracts.revert(fork)
    contracts.buy(0, buyer=FRIEND.address)  # unlike empty blocks, this one differs for sure
    contracts.mine(8)
    with pytest.raises(ReorgTooDeep, match="reorg deeper than the block window"):
        await indexer.sync_once()
    assert await agents(engine) == before  # nothing half-undone


async def test_events_wait_for_their_confirmations(
    contracts: Contracts, make_indexer: MakeIndexer, engine: AsyncEngine
) -> None:
    indexer = make_indexer(window=8, confirmations=3)
    token = contracts.buy(0)
    await indexer.sync_once()
    assert await agents(engine) == {}
    async with engine.connect() as conn:
        report = await indexer_report(conn, contracts.head(), 3)
    assert report.pending_events == 2  # the mint's Transfer and PackagePurchased
    contracts.mine(2)
    await indexer.sync_once()
    assert await agents(engine) == {}
    contracts.mine(1)
    await indexer.sync_once()
    assert await agents(engine) == {token: (BUYER.address, 100)}


async def test_an_event_that_cannot_apply_is_recorded_and_the_rest_go_on(
    contracts: Contracts, make_indexer: MakeIndexer, engine: AsyncEngine
) -> None:
    early = contracts.buy(0)
    start = contracts.head() + 1
    contracts.transfer(early, FRIEND.address)  # its agent was bought before the start
    late = contracts.buy(0, buyer=FRIEND.address)
    indexer = make_indexer(window=4)
    await indexer.start_at(start)
    await indexer.sync_once()
    assert await agents(engine) == {late: (FRIEND.address, 100)}
    async with engine.connect() as conn:
        problem = await conn.scalar(
            select(ChainEvent.problem).where(ChainEvent.problem.is_not(None))
        )
    assert problem == f"Transfer for package token {early}, which has no agent"


async def test_generation_minted_confirms_the_matching_mint(
    contracts: Contracts, make_indexer: MakeIndexer, engine: AsyncEngine
) -> None:
    token = contracts.buy(0)
    indexer = make_indexer(window=4)
    await indexer.sync_once()
    key = bytes.fromhex("ab" * 32)
    async with engine.begin() as conn:
        await conn.execute(
            insert(Generation).values(
                id="g-1", token_id=token, kind="text", prompt="p", options={}, source="api"
            )
        )
        await conn.execute(
            insert(Mint).values(generation_id="g-1", request_key="0x" + key.hex(), status="sent")
        )
    nft = contracts.mint_generation(token, key, "ipfs://content")
    await indexer.sync_once()
    async with engine.connect() as conn:
        mint = (await conn.execute(select(Mint))).one()
    assert (mint.status, mint.nft_token_id, mint.block_number) == (
        "confirmed",
        nft,
        contracts.head(),
    )


async def test_a_request_id_reused_after_a_reorg_is_another_generation(
    contracts: Contracts, make_indexer: MakeIndexer, engine: AsyncEngine
) -> None:
    """The contract's request counter starts again on the new branch: request 1 there is
    another request, so it gets another generation id (its own credits entries and mint
    key); the dropped transaction re-included is the same request and keeps its id
    (found by bench.chaos: a new request ran free on the dropped one's ledger entries)."""
    token = contracts.buy(0)
    indexer = make_indexer(window=16)
    await indexer.sync_once()
    fork = contracts.snapshot()
    first = contracts.request(token, "a lighthouse at dusk")
    signed = contracts.raw_transaction()
    await indexer.sync_once()
    dropped = await _generation_of(engine, first)

    contracts.revert(fork)
    fork = contracts.snapshot()  # a snapshot is spent by its revert
    contracts.mine(2)
    other = contracts.request(token, "a fox in the snow")
    assert other == first  # the same request id, another request
    await indexer.sync_once()
    assert (await _generation_of(engine, other)).id != dropped.id

    contracts.revert(fork)
    contracts.mine(4)
    contracts.w3.eth.send_raw_transaction(signed)  # the first request, re-included
    contracts.mine(1)
    await indexer.sync_once()
    again = await _generation_of(engine, first)
    assert (again.id, again.prompt) == (dropped.id, "a lighthouse at dusk")


async def _generation_of(engine: AsyncEngine, request_id: int) -> Any:
    async with engine.connect() as conn:
        row = (
            await conn.execute(select(Generation).where(Generation.chain_request_id == request_id))
        ).one()
    return row
