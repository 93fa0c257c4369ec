"""200 generations finishing at once, two relayers sharing the database and the key (two
processes would share them the same way): each generation minted once, each nonce used
by exactly one mint."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.daemon.cli.devnet import BUYER, FRIEND
from inftd.daemon.relayer.relayer import Relayer
from inftd.indexer.follower import Indexer
from tests.daemon.relayer.conftest import SETTLE_ROUNDS, MakeRelayer, attempts, minter_nonce
from tests.support.contracts import Contracts
from tests.support.mints import assert_minted_once, finish_generations, mints

GENERATIONS = 200  # half on each of two package tokens, with different owners


DEADLINE = 90.0  # seconds: a bound on waiting, not a speed figure
# Nothing else sends with the key here, so no nonce is ever taken from the relayers. The
# tests' short grace (FAST) can read a receipt slow to show on a loaded machine as such a
# gap and sign the mint again at a new nonce: the likely cause of a loaded CI run's 231
# attempts for 200 mints.
GAP_GRACE = 30.0


async def drive(relayer: Relayer) -> None:
    """Rounds until nothing is left, at least SETTLE_ROUNDS of them if it takes that, and
    on until the deadline: on a loaded machine 200 receipts take more rounds to appear."""
    deadline = asyncio.get_running_loop().time() + DEADLINE
    rounds = 0
    while rounds < SETTLE_ROUNDS or asyncio.get_running_loop().time() < deadline:
        await relayer.step()
        rounds += 1
        if await relayer.unsettled() == 0:
            return
    raise AssertionError(f"the relayers still had work after {rounds} rounds")


async def test_two_hundred_generations_mint_once_with_no_nonce_collisions(
    contracts: Contracts, engine: AsyncEngine, indexer: Indexer, make_relayer: MakeRelayer
) -> None:
    first = contracts.buy(0, BUYER.address)
    second = contracts.buy(2, FRIEND.address)
    await indexer.sync_once()
    ids = await finish_generations(engine, first, GENERATIONS // 2)
    ids += await finish_generations(engine, second, GENERATIONS // 2)
    start = minter_nonce(contracts)

    relayers = [make_relayer(gap_grace=GAP_GRACE) for _ in range(2)]
    await asyncio.gather(*map(drive, relayers))

    rows = await mints(engine)
    assert sorted(rows) == sorted(ids)
    assert_minted_once(contracts, {g: r for g, r in rows.items() if g in ids[:100]}, BUYER.address)
    assert_minted_once(contracts, {g: r for g, r in rows.items() if g in ids[100:]}, FRIEND.address)
    tried = await attempts(engine)
    assert len(tried) == GENERATIONS  # no replacement, no second try was needed
    assert sorted(a.nonce for a in tried) == list(range(start, start + GENERATIONS))
    assert {a.outcome for a in tried} == {"mined"}
    assert minter_nonce(contracts) == start + GENERATIONS
    assert len({r.nft_token_id for r in rows.values()}) == GENERATIONS
