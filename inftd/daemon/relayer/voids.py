"""Voided mints → their nonces spent, so no later mint waits behind a hole.

A reorg can remove a generation whose mint was already signed (its on-chain request, or
the purchase of its agent, left the chain); the indexer deletes the generation and keeps
the signed nonce in ``voided_mints`` (indexer/reorg.py). While that nonce is the key's
next or later, the relayer sends a cancel at it: a 0-value transfer to itself, with fees
above the voided transaction's, so it also replaces that one in a pool that still holds
it. Once the chain's nonce is past it, the void is settled: ``minted`` if the mint got
mined first (an NFT for a request the chain no longer has: logged), else ``cancelled``
(by the cancel, or by the voided transaction reverting).
A cancel left out of blocks (fees below the market's) is signed again with bumped fees
once the key's nonce has stood still at it for ``replace_after_blocks``, as a mint would be;
any transaction at the nonce settles the void, so the one replaced may still win.
A settled void whose nonce the chain gives back (a reorg dropped the block that spent it)
is open again, and its stored cancel goes out again at the same nonce.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from inftd.daemon.relayer.context import TX_TYPE_1559, Context
from inftd.daemon.relayer.fees import Fees
from inftd.daemon.relayer.sender import broadcast
from inftd.store.models import VoidedMint, table_of, utcnow

log = logging.getLogger(__name__)

VOIDS = table_of(VoidedMint)
CANCEL_GAS = 21_000  # a plain transfer


@dataclass(frozen=True)
class Void:
    id: int
    nonce: int
    request_key: str
    fees: Fees
    cancel_tx_hash: str | None
    cancel_raw_tx: bytes | None
    settled: bool


async def open_voids(conn: AsyncConnection, signer: str, latest: int) -> list[Void]:
    """The key's voids not settled, or whose nonce is not spent at ``latest`` (any more)."""
    rows = await conn.execute(
        select(VoidedMint)
        .where(VoidedMint.signer == signer)
        .where(or_(VoidedMint.outcome.is_(None), VoidedMint.nonce >= latest))
        .order_by(VoidedMint.nonce)
    )
    return [
        Void(
            r.id,
            r.nonce,
            r.request_key,
            Fees(int(r.max_fee_per_gas), int(r.max_priority_fee_per_gas)),
            r.cancel_tx_hash,
            r.cancel_raw_tx,
            r.outcome is not None,
        )
        for r in rows
    ]


async def _store_cancel(
    conn: AsyncConnection, void: Void, tx_hash: str, raw: bytes, fees: Fees
) -> bool:
    """The cancel and its fees (the newest at the nonce, which a bump must outbid); False
    if another relayer process stored one first."""
    before = VOIDS.c.cancel_tx_hash
    unchanged = before.is_(None) if void.cancel_tx_hash is None else before == void.cancel_tx_hash
    result = await conn.execute(
        update(VOIDS)
        .where(VOIDS.c.id == void.id, unchanged)
        .values(
            cancel_tx_hash=tx_hash,
            cancel_raw_tx=raw,
            max_fee_per_gas=fees.max_fee,
            max_priority_fee_per_gas=fees.priority,
        )
    )
    return bool(result.rowcount)


async def _settle(conn: AsyncConnection, void: Void, outcome: str | None) -> None:
    settled_at = None if outcome is None else utcnow()
    await conn.execute(
        update(VOIDS).where(VOIDS.c.id == void.id).values(outcome=outcome, settled_at=settled_at)
    )


def sign_cancel(ctx: Context, nonce: int, fees: Fees) -> tuple[str, bytes]:
    tx: dict[str, Any] = {
        "type": TX_TYPE_1559,
        "chainId": ctx.chain_id,
        "nonce": nonce,
        "to": ctx.signer,
        "value": 0,
        "gas": CANCEL_GAS,
        "maxFeePerGas": fees.max_fee,
        "maxPriorityFeePerGas": fees.priority,
        "data": b"",
    }
    signed = ctx.account.sign_transaction(tx)
    return signed.hash.to_0x_hex(), bytes(signed.raw_transaction)


async def settle_voids(ctx: Context, latest: int, head: int, stalled: int) -> int:
    """One pass over the open voids at the key's nonce ``latest`` (standing still since
    block ``stalled``); how many it saw."""
    async with ctx.engine.connect() as conn:
        voids = await open_voids(conn, ctx.signer, latest)
    for void in voids:
        if void.settled and void.nonce >= latest:
            async with ctx.engine.begin() as conn:
                await _settle(conn, void, None)
            log.warning("nonce %d of a voided mint was given back by a reorg", void.nonce)
        if void.nonce < latest:
            ctx.cancels_seen.pop(void.cancel_tx_hash or "", None)
            minted = await ctx.chain.is_minted(void.request_key)
            async with ctx.engine.begin() as conn:
                await _settle(conn, void, "minted" if minted else "cancelled")
            if minted:
                log.warning(
                    "nonce %d: the mint of %s was mined although a reorg removed its generation",
                    void.nonce,
                    void.request_key,
                )
        elif void.cancel_raw_tx is None or (
            void.nonce == latest and _stuck(ctx, void, head, stalled)
        ):  # the first cancel, or a bump of one left out of blocks
            await _cancel(ctx, void, head)
        elif void.cancel_tx_hash and not await ctx.chain.known(void.cancel_tx_hash):
            await broadcast(ctx, [(void.cancel_tx_hash, void.cancel_raw_tx)])
    return len(voids)


def _stuck(ctx: Context, void: Void, head: int, stalled: int) -> bool:
    """Whether the key's nonce, at this void, and its cancel have stood still for
    ``replace_after_blocks`` (counted from when this process saw the cancel)."""
    assert void.cancel_tx_hash is not None
    seen = ctx.cancels_seen.setdefault(void.cancel_tx_hash, head)
    return head - max(stalled, seen) >= ctx.settings.replace_after_blocks


async def _cancel(ctx: Context, void: Void, head: int) -> None:
    """Sign and send a cancel at the void's nonce, above the fees of the newest transaction
    there (the voided mint's, or the cancel it replaces)."""
    fresh = await ctx.fresh_fees()
    fees = ctx.fees.bump(void.fees, fresh)
    if fees is None and void.cancel_tx_hash is not None:
        log.warning("nonce %d: cancel %s is stuck at the fee cap", void.nonce, void.cancel_tx_hash)
        return
    fees = fees or ctx.fees.capped(fresh)
    tx_hash, raw = await asyncio.to_thread(sign_cancel, ctx, void.nonce, fees)
    async with ctx.engine.begin() as conn:
        if not await _store_cancel(conn, void, tx_hash, raw, fees):
            return  # another relayer process cancelled it first
    ctx.cancels_seen.pop(void.cancel_tx_hash or "", None)
    ctx.cancels_seen[tx_hash] = head
    if void.cancel_tx_hash is None:
        log.warning(
            "nonce %d: its mint's generation left the chain; cancel %s", void.nonce, tx_hash
        )
    else:
        log.info("nonce %d: cancel %s replaced by %s", void.nonce, void.cancel_tx_hash, tx_hash)
    await broadcast(ctx, [(tx_hash, raw)])
