"""Pending mints → checked → signed → stored → broadcast.

The check comes first: ``isMinted(requestKey)`` (minted by anyone, an earlier life of this
relayer included: confirmed with no transaction), the package token's owner, then an
``eth_call`` of the mint and ``eth_estimateGas``, whose reverts are decoded. What passes is
signed and stored in one transaction with its nonces, and only then broadcast: a crash
before the commit leaves the nonces unallocated (they are signed again), a crash after it
leaves signed bytes that the tracker broadcasts as they are.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from inftd.daemon.relayer.chain import MintCall, Minted, Sent
from inftd.daemon.relayer.context import Context
from inftd.daemon.relayer.reverts import Revert, Verdict
from inftd.daemon.relayer.store import (
    PENDING,
    DueMint,
    NewAttempt,
    attempts_by_hash,
    due_mints,
    lock_pending,
    mark_broadcast,
    open_nonce_count,
    record_failed,
    record_mined,
    record_retry,
    store_attempts,
)
from inftd.indexer.rpc import RpcError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ready:
    mint: DueMint
    data: bytes  # the mintGeneration call
    gas: int


@dataclass(frozen=True)
class Checked:
    """A mint that needs no transaction now: minted already, failed, or to retry later."""

    mint: DueMint
    verdict: Verdict
    minted: Minted | None = None
    error: str = ""
    code: str = ""


async def send_round(ctx: Context) -> int:
    """Check, sign, store and broadcast one batch of due mints; how many were due."""
    async with ctx.engine.connect() as conn:
        budget = ctx.settings.max_in_flight - await open_nonce_count(conn, ctx.signer)
        if budget <= 0:
            return 0
        due = await due_mints(conn, min(budget, ctx.settings.batch), datetime.now(UTC))
    if not due:
        return 0
    checks = await asyncio.gather(*(check(ctx, m) for m in due))
    await settle(ctx, [c for c in checks if isinstance(c, Checked)])
    stored = await store(ctx, [c for c in checks if isinstance(c, Ready)])
    if stored:
        await ctx.hooks.after_store(stored)
        await broadcast(ctx, [(a.tx_hash, a.raw_tx) for a in stored])
    return len(due)


async def check(ctx: Context, mint: DueMint) -> Ready | Checked | None:
    """What to do with one due mint; None if the chain could not be asked."""
    try:
        if await ctx.chain.is_minted(mint.request_key):
            return Checked(mint, Verdict.MINTED, await ctx.chain.minted(mint.request_key))
        owner = await ctx.chain.owner_of(mint.token_id)
        if owner is None:
            error = f"UnknownPackageToken(packageTokenId={mint.token_id})"
            return Checked(mint, Verdict.FATAL, error=error, code="UnknownPackageToken")
        call = MintCall(
            owner, mint.token_id, mint.request_key, mint.content_uri or "", mint.content_hash
        )
        data = call.data()
        revert = await ctx.chain.simulate(ctx.signer, data)
        if revert is None:
            gas = await ctx.chain.estimate_gas(ctx.signer, data)
            if isinstance(gas, int):
                return Ready(mint, data, gas * (100 + ctx.settings.gas_margin_percent) // 100)
            revert = gas
        return await judged(ctx, mint, revert)
    except RpcError as exc:
        log.warning("mint %s: the chain did not answer the checks: %s", mint.generation_id, exc)
        return None


async def judged(ctx: Context, mint: DueMint, revert: Revert) -> Checked:
    minted = await ctx.chain.minted(mint.request_key) if revert.verdict is Verdict.MINTED else None
    if revert.verdict is Verdict.MINTED and minted is None:  # cannot be; check again later
        return Checked(mint, Verdict.RETRY, error=str(revert), code=revert.name)
    return Checked(mint, revert.verdict, minted, str(revert), revert.name)


async def settle(ctx: Context, checks: Sequence[Checked]) -> None:
    """Record the mints that need no transaction now."""
    if not checks:
        return
    now = datetime.now(UTC)
    async with ctx.engine.begin() as conn:
        for c in checks:
            gid, token = c.mint.generation_id, c.mint.token_id
            if c.verdict is Verdict.MINTED and c.minted is not None:
                await record_mined(conn, gid, token, c.minted, True, (PENDING,))
            elif c.verdict is Verdict.FATAL or c.mint.attempts + 1 >= ctx.settings.max_attempts:
                await record_failed(conn, gid, token, c.error, c.code)
                log.warning("mint %s failed: %s", gid, c.error)
            else:
                at = ctx.backoff(c.mint.attempts + 1, now)
                await record_retry(conn, gid, c.error, c.code, at, count=True)
    ctx.on_commit()


async def store(ctx: Context, ready: Sequence[Ready]) -> list[NewAttempt]:
    """Allocate nonces, sign and store, in one transaction; the attempts stored."""
    if not ready:
        return []
    fees = await ctx.fresh_fees()
    floor = await ctx.chain.nonce(ctx.signer, "latest")
    head = await ctx.chain.head()
    async with ctx.engine.connect() as conn:
        started = await ctx.nonces.started(conn)
    pending = floor if started else await ctx.chain.nonce(ctx.signer, "pending")
    async with ctx.engine.begin() as conn:
        await ctx.nonces.start(conn, pending)  # the first write: SQLite's lock is ours now
        held = await lock_pending(conn, [r.mint.generation_id for r in ready])
        ready = [r for r in ready if r.mint.generation_id in held]
        if not ready:
            return []
        first = await ctx.nonces.take(conn, len(ready), floor)
        jobs = [(first + i, r.data, r.gas, fees) for i, r in enumerate(ready)]
        signed = await ctx.sign_all(jobs)
        attempts = [
            NewAttempt(
                r.mint.generation_id,
                r.mint.token_id,
                first + i,
                tx_hash,
                raw,
                ctx.chain.generation,
                r.data,
                r.gas,
                fees,
                head,
            )
            for i, (r, (tx_hash, raw)) in enumerate(zip(ready, signed, strict=True))
        ]
        await ctx.hooks.after_sign(attempts)
        await store_attempts(conn, ctx.signer, attempts, first=True)
    return attempts


async def broadcast(ctx: Context, signed: Sequence[tuple[str, bytes]]) -> list[str]:
    """Send stored transactions and note those the node took (``mint.sent``); their
    hashes. The others stay stored: the tracker sends them again or settles their nonce."""
    results = await asyncio.gather(*(ctx.chain.broadcast(raw) for _, raw in signed))
    taken = []
    for (tx_hash, _), (sent, words) in zip(signed, results, strict=True):
        if sent is Sent.ACCEPTED:
            taken.append(tx_hash)
        else:
            log.info("transaction %s not taken (%s): %s", tx_hash, sent.value, words)
    await ctx.hooks.after_broadcast(taken)
    if taken:
        async with ctx.engine.begin() as conn:
            await mark_broadcast(conn, await attempts_by_hash(conn, taken))
        ctx.on_commit()
    return taken
