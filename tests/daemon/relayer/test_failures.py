"""Reverts are decoded from the ABI's custom errors, recorded on the mint and the
generation, retried only when retrying can help, and never looped on."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.daemon.cli.devnet import BUYER, DEPLOYER, MINTER
from inftd.daemon.relayer.context import Hooks
from inftd.daemon.relayer.reverts import Verdict, decode_revert
from inftd.daemon.relayer.store import NewAttempt
from inftd.indexer.follower import Indexer
from inftd.store.models import Generation
from tests.daemon.relayer.conftest import MakeRelayer, attempts, events, minter_nonce, settle
from tests.support.contracts import Contracts
from tests.support.mints import finish_generations, mints

TOO_LITTLE_GAS = 60_000  # the mint runs out of it: a revert with no data


def revoke_minter(contracts: Contracts) -> None:
    role = contracts.generation.functions.MINTER_ROLE().call()
    contracts._send(
        contracts.generation.functions.revokeRole(role, MINTER.address), DEPLOYER.address
    )


class RevokeAfterStore(Hooks):
    """The role goes away between signing and mining: the transaction reverts on chain."""

    def __init__(self, contracts: Contracts) -> None:
        self.contracts = contracts

    async def after_store(self, attempts: Sequence[NewAttempt]) -> None:
        revoke_minter(self.contracts)


async def generation_error(engine: AsyncEngine, gid: str) -> str | None:
    async with engine.connect() as conn:
        return await conn.scalar(select(Generation.error).where(Generation.id == gid))


async def assert_failed_for_good(engine: AsyncEngine, gid: str, code: str) -> None:
    row = (await mints(engine))[gid]
    assert (row.status, row.error_code) == ("failed", code)
    assert MINTER.address.lower() in row.error.lower()  # the account the role is missing on
    assert await generation_error(engine, gid) == f"mint failed: {row.error}"
    (failed,) = [e for e in await events(engine) if e.type == "mint.failed"]
    assert failed.payload["generationId"] == gid
    assert failed.payload["mint"]["status"] == "failed"


async def test_without_the_minter_role_the_check_fails_the_mint_with_no_transaction(
    contracts: Contracts, engine: AsyncEngine, indexer: Indexer, make_relayer: MakeRelayer
) -> None:
    token = contracts.buy(0, BUYER.address)
    await indexer.sync_once()
    (gid,) = await finish_generations(engine, token, 1)
    revoke_minter(contracts)
    nonce = minter_nonce(contracts)
    relayer = make_relayer()

    await settle(relayer)

    await assert_failed_for_good(engine, gid, "AccessControlUnauthorizedAccount")
    assert await attempts(engine) == []
    before = (await mints(engine))[gid]
    for _ in range(5):  # no loop: later rounds leave it alone
        await relayer.step()
    after = (await mints(engine))[gid]
    assert (after.attempts, after.updated_at) == (before.attempts, before.updated_at)
    assert minter_nonce(contracts) == nonce


async def test_a_revert_on_chain_is_decoded_from_a_replay_and_recorded(
    contracts: Contracts, engine: AsyncEngine, indexer: Indexer, make_relayer: MakeRelayer
) -> None:
    token = contracts.buy(0, BUYER.address)
    await indexer.sync_once()
    (gid,) = await finish_generations(engine, token, 1)
    nonce = minter_nonce(contracts)

    await settle(make_relayer(RevokeAfterStore(contracts)))

    await assert_failed_for_good(engine, gid, "AccessControlUnauthorizedAccount")
    (attempt,) = await attempts(engine)
    assert attempt.outcome == "reverted"
    assert minter_nonce(contracts) == nonce + 1  # the reverted transaction spent its nonce
    assert contracts.w3.eth.get_transaction_receipt(attempt.tx_hash)["status"] == 0


async def test_a_revert_retrying_may_fix_is_retried_up_to_max_attempts(
    contracts: Contracts,
    engine: AsyncEngine,
    indexer: Indexer,
    make_relayer: MakeRelayer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = contracts.buy(0, BUYER.address)
    await indexer.sync_once()
    (gid,) = await finish_generations(engine, token, 1)
    relayer = make_relayer(max_attempts=3, gas_margin_percent=0)

    async def too_little(sender: str, data: bytes) -> int:
        return TOO_LITTLE_GAS

    monkeypatch.setattr(relayer.ctx.chain, "estimate_gas", too_little)
    await settle(relayer)

    row = (await mints(engine))[gid]
    assert (row.status, row.attempts, row.error_code) == ("failed", 3, "Reverted")
    assert [a.outcome for a in await attempts(engine)] == ["reverted"] * 3
    assert await generation_error(engine, gid) == "mint failed: Reverted()"


def test_custom_errors_decode_with_their_arguments() -> None:
    selector = bytes.fromhex("919f7df5")  # AlreadyMinted(bytes32,uint256)
    data = selector + b"\x01" * 32 + (7).to_bytes(32, "big")
    revert = decode_revert(data)
    assert (revert.name, revert.verdict) == ("AlreadyMinted", Verdict.MINTED)
    assert revert.args == {"requestKey": b"\x01" * 32, "tokenId": 7}
    assert str(revert) == f"AlreadyMinted(requestKey=0x{'01' * 32}, tokenId=7)"
    assert decode_revert(bytes.fromhex("a99e7261") + (5).to_bytes(32, "big")).verdict is (
        Verdict.FATAL
    )  # UnknownPackageToken(5)
    for odd in (b"", b"\x01\x02", b"\xde\xad\xbe\xef", selector + b"\x00"):
        assert decode_revert(odd).verdict is Verdict.RETRY
