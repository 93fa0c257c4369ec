"""Open nonces → receipts, replacements, repaired gaps → mined → confirmed.

Each round reads the head, the key's nonce as of that block, and only then looks for a
receipt of every open attempt, so a transaction that spent a nonce below that one is in a
block the receipts lookup covers. For each open nonce:

- a receipt of one of its attempts: that one is ``mined`` (or ``reverted``), the others
  ``replaced``; the mint is mined, confirmed at depth, or its revert decoded and judged;
- no receipt, but the chain's nonce is past it, and still so ``gap_grace`` seconds later
  (a node may report the nonce a moment before the receipt): another transaction of the
  key took the nonce (the gap), so the attempts are ``dropped`` and the mint is pending
  again, for a new nonce (nothing was minted: the receipt would say so);
- the key's next nonce, unmined while the key's nonce stood still for
  ``replace_after_blocks``: signed again at the same nonce with a bumped fee (every attempt
  stays open, since any of them may be the one mined); see ``unblock``;
- not broadcast yet (a crash after storing), or unknown to the node: the stored bytes are
  sent again as they are.

Nonces of mints a reorg voided are spent by cancels (``voids``).

All RPC reads of a round happen first and concurrently; the writes then go one at a time,
each in its own transaction, so a crash between two leaves each nonce whole.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import groupby
from typing import Any

from inftd.daemon.relayer.chain import Minted, minted_in
from inftd.daemon.relayer.context import Context
from inftd.daemon.relayer.fees import Fees
from inftd.daemon.relayer.reverts import Revert, Verdict
from inftd.daemon.relayer.sender import broadcast
from inftd.daemon.relayer.store import (
    MINED,
    PENDING,
    SENT,
    Attempt,
    NewAttempt,
    close_nonce,
    mints_in,
    newest_attempt_id,
    open_attempts,
    orphans,
    record_failed,
    record_mined,
    record_retry,
    reopen_nonce,
    requeue,
    store_attempts,
    unmine,
)
from inftd.daemon.relayer.voids import settle_voids

log = logging.getLogger(__name__)

NO_REASON = Revert("Reverted", {}, Verdict.RETRY)  # the replay passed: out of gas, say


@dataclass(frozen=True)
class Look:
    """What the chain says of one open nonce."""

    group: Sequence[Attempt]  # its open attempts, oldest first
    receipt: tuple[Attempt, dict[str, Any]] | None
    known: bool  # the newest attempt is known to the node

    @property
    def nonce(self) -> int:
        return self.group[0].nonce

    @property
    def newest(self) -> Attempt:
        return self.group[-1]


async def track_round(ctx: Context) -> int:
    """One pass over the open nonces and the mints waiting for depth; how many it saw."""
    async with ctx.engine.connect() as conn:
        attempts = await open_attempts(conn, ctx.signer)
    head = await ctx.chain.head()
    latest = await ctx.chain.nonce(ctx.signer, hex(head))  # at a block the receipts cover
    stalled = ctx.stall.observe(latest, head)
    groups = [list(g) for _, g in groupby(attempts, key=lambda a: a.nonce)]
    looks = await asyncio.gather(*(look(ctx, g, latest) for g in groups))
    gaps = ctx.gaps.confirmed({s.nonce for s in looks if s.receipt is None and s.nonce < latest})
    waiting = []
    for seen in looks:
        if seen.receipt is not None:
            await ctx.hooks.after_receipt(*seen.receipt)
            await on_receipt(ctx, seen.receipt, head)
        elif seen.nonce in gaps:
            await on_dropped(ctx, seen)
        elif seen.nonce >= latest:
            waiting.append(seen)
    await unblock(ctx, waiting, latest, head, stalled)
    voids = await settle_voids(ctx, latest, head, stalled)
    return len(groups) + voids + await settle_mined(ctx, head) + await settle_orphans(ctx)


async def unblock(
    ctx: Context, waiting: Sequence[Look], latest: int, head: int, stalled: int
) -> None:
    """Fee bumps and resends for the nonces not mined yet.

    Only a stall is a reason to bump: the key's nonce has not moved for
    ``replace_after_blocks`` while its next transaction waits. In a deep pipeline the
    higher nonces wait behind that one whatever their fee, so they are bumped only when
    the stall shows the market moved: those signed that long ago below today's fees.
    """
    enough = ctx.settings.replace_after_blocks
    blocker = next((s for s in waiting if s.nonce == latest), None)
    stuck = blocker is not None and head - max(stalled, blocker.newest.signed_block) >= enough
    fresh = await ctx.fresh_fees() if stuck else None
    resend: list[Attempt] = []
    for seen in waiting:
        old = seen.newest.fees
        due = fresh is not None and head - seen.newest.signed_block >= enough
        cheaper = fresh is not None and (
            old.max_fee < fresh.max_fee or old.priority < fresh.priority
        )
        replaced = None
        if fresh is not None and due and (seen is blocker or cheaper):
            replaced = await replace(ctx, seen, fresh, head)
        if replaced is None and not seen.known:
            resend.append(seen.newest)
    if resend:
        await broadcast(ctx, [(a.tx_hash, a.raw_tx) for a in resend])


async def look(ctx: Context, group: Sequence[Attempt], latest: int) -> Look:
    for attempt in reversed(group):  # the newest is the likeliest to be mined
        receipt = await ctx.chain.receipt(attempt.tx_hash)
        if receipt is not None:
            return Look(group, (attempt, receipt), True)
    newest = group[-1]
    if group[0].nonce < latest or newest.broadcast_at is None:
        return Look(group, None, False)
    return Look(group, None, await ctx.chain.known(newest.tx_hash))


async def on_receipt(ctx: Context, found: tuple[Attempt, dict[str, Any]], head: int) -> None:
    attempt, receipt = found
    block = int(receipt["blockNumber"], 16)
    nft = minted_in(receipt, ctx.chain.generation, attempt.request_key)
    if int(receipt["status"], 16) == 1 and nft is not None:
        minted = Minted(nft, attempt.tx_hash, block)
        async with ctx.engine.begin() as conn:
            await close_nonce(conn, ctx.signer, attempt.nonce, attempt.tx_hash, "mined")
            confirmed = head >= block + ctx.confirmations
            await record_mined(conn, attempt.generation_id, attempt.token_id, minted, confirmed)
        ctx.on_commit()
        return
    revert = await ctx.chain.simulate(ctx.signer, attempt.call_data, block) or NO_REASON
    await on_revert(ctx, attempt, revert)


async def on_revert(ctx: Context, attempt: Attempt, revert: Revert) -> None:
    """The nonce is spent either way; the mint is confirmed, failed or tried again."""
    minted = None
    if revert.verdict is Verdict.MINTED:
        minted = await ctx.chain.minted(attempt.request_key)
    gid, token, tries = attempt.generation_id, attempt.token_id, attempt.mint_attempts
    async with ctx.engine.begin() as conn:
        await close_nonce(conn, ctx.signer, attempt.nonce, attempt.tx_hash, "reverted")
        if minted is not None:
            await record_mined(conn, gid, token, minted, True, (PENDING, SENT, MINED))
        elif revert.verdict is Verdict.FATAL or tries >= ctx.settings.max_attempts:
            await record_failed(conn, gid, token, str(revert), revert.name)
        else:
            at = ctx.backoff(tries, datetime.now(UTC))
            await record_retry(conn, gid, str(revert), revert.name, at, count=False)
    ctx.on_commit()
    log.warning("mint %s: transaction %s reverted: %s", gid, attempt.tx_hash, revert)


async def on_dropped(ctx: Context, seen: Look) -> None:
    """Repair a gap: the nonce was spent by a transaction that is none of ours."""
    newest = seen.newest
    error = f"nonce {seen.nonce} was used by another transaction of the key; sent again"
    async with ctx.engine.begin() as conn:
        await close_nonce(conn, ctx.signer, seen.nonce, None, "dropped")
        await requeue(conn, newest.generation_id, seen.nonce, error)
    log.warning("mint %s: %s", newest.generation_id, error)


async def replace(ctx: Context, seen: Look, fresh: Fees, head: int) -> NewAttempt | None:
    """A fee bump of the newest attempt, stored and broadcast; None if the cap is reached
    (it waits as it is) or another process bumped it first."""
    newest = seen.newest
    fees = ctx.fees.bump(newest.fees, fresh)
    if fees is None:
        return None
    job = (newest.nonce, newest.call_data, newest.gas_limit, fees)
    ((tx_hash, raw),) = await ctx.sign_all([job])
    new = NewAttempt(
        newest.generation_id,
        newest.token_id,
        newest.nonce,
        tx_hash,
        raw,
        ctx.chain.generation,
        newest.call_data,
        newest.gas_limit,
        fees,
        head,
    )
    async with ctx.engine.begin() as conn:
        if await newest_attempt_id(conn, ctx.signer, newest.nonce) != newest.id:
            return None
        await ctx.hooks.after_sign([new])
        await store_attempts(conn, ctx.signer, [new], first=False)
    await ctx.hooks.after_store([new])
    waited = head - newest.signed_block
    log.info("nonce %d unmined for %d blocks: replaced by %s", newest.nonce, waited, tx_hash)
    await broadcast(ctx, [(tx_hash, raw)])
    return new


async def settle_mined(ctx: Context, head: int) -> int:
    """Mints mined but not yet deep enough: confirmed at depth, sent again if the block
    that had them is gone."""
    async with ctx.engine.connect() as conn:
        waiting = await mints_in(conn, (MINED,), ctx.signer)
    for mint in waiting:
        if mint.tx_hash is None:  # minted by someone, the transaction not found: as it is
            receipt: dict[str, Any] | None = {"blockNumber": hex(mint.block_number or 0)}
        else:
            receipt = await ctx.chain.receipt(mint.tx_hash)
        async with ctx.engine.begin() as conn:
            if receipt is None:
                await unmine(conn, mint.generation_id)
                if mint.nonce is not None and mint.signer == ctx.signer:
                    await reopen_nonce(conn, ctx.signer, mint.nonce)
                continue
            block = int(receipt["blockNumber"], 16)
            if head >= block + ctx.confirmations:
                found = Minted(mint.nft_token_id, mint.tx_hash, block)
                await record_mined(conn, mint.generation_id, mint.token_id, found, True, (MINED,))
        ctx.on_commit()
    return len(waiting)


async def settle_orphans(ctx: Context) -> int:
    """``sent`` mints with nothing in flight: one whose nonce a reorg gave back has its
    attempts opened again (its bytes are sent again, so no later nonce waits behind a hole);
    the others go back to the checks (isMinted first)."""
    async with ctx.engine.connect() as conn:
        found = await orphans(conn, ctx.signer)
    now = datetime.now(UTC)
    for mint in found:
        async with ctx.engine.begin() as conn:
            if mint.nonce is not None and mint.signer == ctx.signer:
                await reopen_nonce(conn, ctx.signer, mint.nonce)
            else:
                await record_retry(conn, mint.generation_id, None, None, now, count=False)
    if found:
        log.info("%d sent mints had no transaction in flight: checked again", len(found))
    return len(found)
