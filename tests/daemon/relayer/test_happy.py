"""Succeeded generations become GenerationNFTs, once, to the package token's owner, with
their requestKey, URI and content hash; receipts and the indexer confirm alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.daemon.cli.devnet import BUYER, FRIEND
from inftd.daemon.generation.mints import request_key
from inftd.daemon.relayer.context import Hooks
from inftd.indexer.follower import Indexer
from tests.daemon.relayer.conftest import (
    Crash,
    MakeRelayer,
    attempts,
    events,
    mined,
    minter_nonce,
    settle,
)
from tests.support.contracts import Contracts
from tests.support.mints import assert_minted_once, finish_generations, minted_logs, mints


class CrashAfterBroadcast(Hooks):
    async def after_broadcast(self, tx_hashes: Sequence[str]) -> None:
        raise Crash("after broadcast")


def shown(row: Any) -> tuple[Any, ...]:
    return (row.status, row.nft_token_id, row.tx_hash, row.block_number)


async def test_each_generation_is_minted_once_with_its_key_uri_and_hash(
    contracts: Contracts, engine: AsyncEngine, indexer: Indexer, make_relayer: MakeRelayer
) -> None:
    token = contracts.buy(0, BUYER.address)
    await indexer.sync_once()
    ids = await finish_generations(engine, token, 3)
    nonce_before = minter_nonce(contracts)

    await settle(make_relayer())

    rows = await mints(engine)
    assert_minted_once(contracts, rows, BUYER.address)
    fn = contracts.generation.functions
    for gid in ids:
        row = rows[gid]
        package, key, content = fn.generationOf(row.nft_token_id).call()
        assert (package, "0x" + key.hex()) == (token, request_key(gid))
        assert fn.tokenURI(row.nft_token_id).call().endswith(content.hex())
    assert minter_nonce(contracts) == nonce_before + 3  # one transaction each, no more
    sent = [e for e in await events(engine) if e.type == "mint.sent"]
    confirmed = [e for e in await events(engine) if e.type == "mint.confirmed"]
    assert sorted(e.payload["generationId"] for e in sent) == sorted(ids)
    assert sorted(e.payload["generationId"] for e in confirmed) == sorted(ids)
    assert {e.token_id for e in confirmed} == {token}
    told = confirmed[0].payload["mint"]
    assert told["status"] == "confirmed"
    assert told["tokenId"] == rows[confirmed[0].payload["generationId"]].nft_token_id

    await indexer.sync_once()  # GenerationMinted projected after the receipts: no change
    assert {g: shown(r) for g, r in (await mints(engine)).items()} == {
        g: shown(r) for g, r in rows.items()
    }
    again = [e for e in await events(engine) if e.type == "mint.confirmed"]
    assert len(again) == len(confirmed)  # subscribers hear of each confirmation once


async def test_the_owner_at_mint_time_gets_the_nft(
    contracts: Contracts, engine: AsyncEngine, indexer: Indexer, make_relayer: MakeRelayer
) -> None:
    token = contracts.buy(1, BUYER.address)
    await indexer.sync_once()
    await finish_generations(engine, token, 1)
    contracts.transfer(token, FRIEND.address)  # the database has not seen it yet
    await settle(make_relayer())
    assert_minted_once(contracts, await mints(engine), FRIEND.address)


async def test_the_indexer_confirms_first_and_the_relayer_agrees(
    contracts: Contracts, engine: AsyncEngine, indexer: Indexer, make_relayer: MakeRelayer
) -> None:
    token = contracts.buy(0, BUYER.address)
    await indexer.sync_once()
    (gid,) = await finish_generations(engine, token, 1)
    with pytest.raises(Crash):
        await make_relayer(CrashAfterBroadcast()).step()
    (sent,) = await attempts(engine)
    await mined(contracts.url, sent.tx_hash)
    await indexer.sync_once()  # GenerationMinted: the projection confirms it
    by_indexer = (await mints(engine))[gid]
    assert by_indexer.status == "confirmed"

    await settle(make_relayer())
    after = (await mints(engine))[gid]
    assert shown(after) == shown(by_indexer)
    (attempt,) = await attempts(engine)
    assert (attempt.tx_hash, attempt.outcome) == (after.tx_hash, "mined")
    confirmed = [e for e in await events(engine) if e.type == "mint.confirmed"]
    assert len(confirmed) == 1  # the projection's: the relayer confirmed nothing itself
    assert_minted_once(contracts, await mints(engine), BUYER.address)


async def test_a_generation_minted_already_is_confirmed_without_a_transaction(
    contracts: Contracts, engine: AsyncEngine, indexer: Indexer, make_relayer: MakeRelayer
) -> None:
    token = contracts.buy(0, BUYER.address)
    await indexer.sync_once()
    (gid,) = await finish_generations(engine, token, 1)
    key = bytes.fromhex(request_key(gid)[2:])
    nft = contracts.mint_generation(token, key, "ipfs://minted-by-someone")
    nonce_before = minter_nonce(contracts)

    await settle(make_relayer())

    row = (await mints(engine))[gid]
    (log,) = minted_logs(contracts, gid)
    assert (row.status, row.nft_token_id, row.tx_hash) == ("confirmed", nft, log["transactionHash"])
    assert await attempts(engine) == []
    assert minter_nonce(contracts) == nonce_before
