"""The relayer's reads and writes of ``mints``, ``mint_attempts`` and ``generations``.

A mint moves ``pending → sent → mined → confirmed``, or ends ``failed``. Every transition
is a conditional UPDATE (``WHERE status IN ...``), so the indexer's ``GenerationMinted``
projection, another relayer process and this one can race without undoing each other:
whichever confirms first wins and the others change nothing. Events go out in the same
transaction as the change they announce, and only when the change happened.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from inftd.agents.events import NewEvent, record_events
from inftd.daemon.generation.mints import mint_json
from inftd.daemon.relayer.chain import Minted
from inftd.daemon.relayer.fees import Fees
from inftd.store.models import Generation, Mint, MintAttempt, VoidedMint, table_of, utcnow

PENDING, SENT, MINED, CONFIRMED, FAILED = "pending", "sent", "mined", "confirmed", "failed"
IN_FLIGHT = (SENT, MINED)
OPEN_TO_CONFIRM = (PENDING, SENT, MINED, FAILED)  # anything not confirmed yet
MINT_ERROR_PREFIX = "mint failed: "  # how a mint's failure reads on its generation
MINTS = table_of(Mint)
ATTEMPTS = table_of(MintAttempt)


@dataclass(frozen=True)
class DueMint:
    """A pending mint, with what its transaction needs from the generation."""

    generation_id: str
    request_key: str
    attempts: int
    token_id: int  # the package token
    content_uri: str | None
    content_hash: str | None


@dataclass(frozen=True)
class Attempt:
    """A stored attempt, with its mint's state."""

    id: int
    generation_id: str
    nonce: int
    tx_hash: str
    raw_tx: bytes
    call_data: bytes
    gas_limit: int
    fees: Fees
    signed_block: int
    broadcast_at: datetime | None
    request_key: str
    token_id: int
    mint_status: str
    mint_attempts: int


@dataclass(frozen=True)
class NewAttempt:
    """A signed transaction to store (before it is broadcast)."""

    generation_id: str
    token_id: int
    nonce: int
    tx_hash: str
    raw_tx: bytes
    to_address: str
    call_data: bytes
    gas_limit: int
    fees: Fees
    signed_block: int


# -- reading --------------------------------------------------------------------------------


async def due_mints(conn: AsyncConnection, limit: int, now: datetime) -> list[DueMint]:
    due = or_(Mint.next_attempt_at.is_(None), Mint.next_attempt_at <= now)
    rows = await conn.execute(
        select(
            Mint.generation_id,
            Mint.request_key,
            Mint.attempts,
            Generation.token_id,
            Generation.content_uri,
            Generation.content_hash,
        )
        .join(Generation, Generation.id == Mint.generation_id)
        .where(Mint.status == PENDING, due)
        .order_by(Mint.created_at, Mint.generation_id)
        .limit(limit)
    )
    return [DueMint(*row) for row in rows]


async def open_nonce_count(conn: AsyncConnection, signer: str) -> int:
    query = select(func.count(func.distinct(MintAttempt.nonce))).where(
        MintAttempt.signer == signer, MintAttempt.outcome.is_(None)
    )
    return int(await conn.scalar(query) or 0)


def _attempt(row: Any) -> Attempt:
    fees = Fees(int(row.max_fee_per_gas), int(row.max_priority_fee_per_gas))
    return Attempt(
        row.id,
        row.generation_id,
        row.nonce,
        row.tx_hash,
        bytes(row.raw_tx),
        bytes(row.call_data),
        row.gas_limit,
        fees,
        row.signed_block,
        row.broadcast_at,
        row.request_key,
        row.token_id,
        row.status,
        row.attempts,
    )


def _attempts_query() -> Any:
    return (
        select(
            MintAttempt.id,
            MintAttempt.generation_id,
            MintAttempt.nonce,
            MintAttempt.tx_hash,
            MintAttempt.raw_tx,
            MintAttempt.call_data,
            MintAttempt.gas_limit,
            MintAttempt.max_fee_per_gas,
            MintAttempt.max_priority_fee_per_gas,
            MintAttempt.signed_block,
            MintAttempt.broadcast_at,
            Mint.request_key,
            Generation.token_id,
            Mint.status,
            Mint.attempts,
        )
        .join(Mint, Mint.generation_id == MintAttempt.generation_id)
        .join(Generation, Generation.id == Mint.generation_id)
    )


async def open_attempts(conn: AsyncConnection, signer: str) -> list[Attempt]:
    """Attempts whose nonce is not known to be spent, by nonce then age."""
    query = _attempts_query().where(MintAttempt.signer == signer, MintAttempt.outcome.is_(None))
    rows = await conn.execute(query.order_by(MintAttempt.nonce, MintAttempt.id))
    return [_attempt(row) for row in rows]


async def attempts_by_hash(conn: AsyncConnection, tx_hashes: Sequence[str]) -> list[Attempt]:
    rows = await conn.execute(_attempts_query().where(MintAttempt.tx_hash.in_(tx_hashes)))
    return [_attempt(row) for row in rows]


async def mints_in(conn: AsyncConnection, statuses: Sequence[str], signer: str) -> list[Any]:
    """Mints in ``statuses`` signed by ``signer`` (or by no one: a reorg's leftovers): rows
    of the mints' columns and the package ``token_id``."""
    rows = await conn.execute(
        select(Mint, Generation.token_id)
        .join(Generation, Generation.id == Mint.generation_id)
        .where(Mint.status.in_(statuses), or_(Mint.signer == signer, Mint.signer.is_(None)))
    )
    return list(rows)


async def orphans(conn: AsyncConnection, signer: str) -> list[Any]:
    """Mints ``sent`` with no open attempt: a reorg rolled back a confirmation the indexer
    had made (it marks them ``sent``), or a process died in an unforeseen place."""
    open_attempt = (
        select(MintAttempt.id)
        .where(MintAttempt.generation_id == Mint.generation_id, MintAttempt.outcome.is_(None))
        .exists()
    )
    rows = await conn.execute(
        select(Mint, Generation.token_id)
        .join(Generation, Generation.id == Mint.generation_id)
        .where(Mint.status == SENT, ~open_attempt)
        .where(or_(Mint.signer == signer, Mint.signer.is_(None)))
    )
    return list(rows)


async def unsettled(conn: AsyncConnection) -> int:
    """Mints not yet confirmed or failed, open attempts and open voided nonces: 0 when the
    relayer is idle."""
    mints = await conn.scalar(
        select(func.count()).where(Mint.status.in_((PENDING, SENT, MINED))).select_from(Mint)
    )
    attempts = await conn.scalar(
        select(func.count()).where(MintAttempt.outcome.is_(None)).select_from(MintAttempt)
    )
    voids = await conn.scalar(
        select(func.count()).where(VoidedMint.outcome.is_(None)).select_from(VoidedMint)
    )
    return int(mints or 0) + int(attempts or 0) + int(voids or 0)


# -- storing attempts -----------------------------------------------------------------------


async def lock_pending(conn: AsyncConnection, generation_ids: Sequence[str]) -> set[str]:
    """Which of the mints are still pending, locked for this transaction; on PostgreSQL
    those another relayer holds are skipped (SQLite's writers take turns)."""
    query = (
        select(Mint.generation_id)
        .where(Mint.generation_id.in_(generation_ids), Mint.status == PENDING)
        .with_for_update(skip_locked=True)  # ignored by SQLite
    )
    return set(await conn.scalars(query))


def _attempt_row(new: NewAttempt, signer: str) -> dict[str, Any]:
    return {
        "generation_id": new.generation_id,
        "signer": signer,
        "nonce": new.nonce,
        "tx_hash": new.tx_hash,
        "raw_tx": new.raw_tx,
        "to_address": new.to_address,
        "call_data": new.call_data,
        "gas_limit": new.gas_limit,
        "max_fee_per_gas": Decimal(new.fees.max_fee),
        "max_priority_fee_per_gas": Decimal(new.fees.priority),
        "signed_block": new.signed_block,
        "created_at": utcnow(),
    }


async def store_attempts(
    conn: AsyncConnection, signer: str, attempts: Sequence[NewAttempt], *, first: bool
) -> None:
    """Store signed transactions and point their mints at them. ``first``: each begins a
    try of its mint (a new nonce), not a fee bump of the try in flight."""
    if not attempts:
        return
    await conn.execute(ATTEMPTS.insert(), [_attempt_row(a, signer) for a in attempts])
    for a in attempts:
        values: dict[str, Any] = {"tx_hash": a.tx_hash, "raw_tx": a.raw_tx, "updated_at": utcnow()}
        which = update(MINTS).where(MINTS.c.generation_id == a.generation_id)
        if first:
            values |= {"status": SENT, "signer": signer, "nonce": a.nonce}
            values |= {"attempts": MINTS.c.attempts + 1, "next_attempt_at": None}
        else:  # a fee bump shows on a mint still waiting for it, never on a confirmed one
            which = which.where(MINTS.c.status == SENT, MINTS.c.nonce == a.nonce)
        await conn.execute(which.values(values))


async def newest_attempt_id(conn: AsyncConnection, signer: str, nonce: int) -> int | None:
    """The newest open attempt at a nonce, its mint locked (PostgreSQL) while it is bumped."""
    mint = await conn.scalar(
        select(MintAttempt.generation_id)
        .where(MintAttempt.signer == signer, MintAttempt.nonce == nonce)
        .limit(1)
    )
    if mint is not None and conn.dialect.name == "postgresql":
        await conn.execute(
            select(Mint.generation_id).where(Mint.generation_id == mint).with_for_update()
        )
    found = await conn.scalar(
        select(func.max(MintAttempt.id)).where(
            MintAttempt.signer == signer,
            MintAttempt.nonce == nonce,
            MintAttempt.outcome.is_(None),
        )
    )
    return None if found is None else int(found)


async def mark_broadcast(conn: AsyncConnection, attempts: Iterable[Attempt]) -> None:
    """Note the first broadcast of each attempt, with ``mint.sent`` for its mint."""
    events = []
    for a in attempts:
        result = await conn.execute(
            update(ATTEMPTS)
            .where(ATTEMPTS.c.id == a.id, ATTEMPTS.c.broadcast_at.is_(None))
            .values(broadcast_at=utcnow())
        )
        if result.rowcount:
            data: dict[str, Any] = {"generationId": a.generation_id, "requestKey": a.request_key}
            data |= {"txHash": a.tx_hash, "nonce": a.nonce, "try": a.mint_attempts}
            events.append(NewEvent("mint.sent", a.token_id, data))
    await record_events(conn, events)


# -- closing nonces and settling mints ------------------------------------------------------


async def close_nonce(
    conn: AsyncConnection, signer: str, nonce: int, mined: str | None, outcome: str
) -> None:
    """Settle every open attempt at ``nonce``: the ``mined`` one gets ``outcome`` (mined or
    reverted), the others ``replaced``; with no ``mined`` hash all get ``outcome``."""
    at_nonce = and_(
        ATTEMPTS.c.signer == signer, ATTEMPTS.c.nonce == nonce, ATTEMPTS.c.outcome.is_(None)
    )
    if mined is not None:
        await conn.execute(
            update(ATTEMPTS).where(at_nonce, ATTEMPTS.c.tx_hash == mined).values(outcome=outcome)
        )
        outcome = "replaced"
    await conn.execute(update(ATTEMPTS).where(at_nonce).values(outcome=outcome))


async def reopen_nonce(conn: AsyncConnection, signer: str, nonce: int) -> None:
    """A reorg undid the block that spent ``nonce``: its attempts are open again."""
    await conn.execute(
        update(ATTEMPTS)
        .where(ATTEMPTS.c.signer == signer, ATTEMPTS.c.nonce == nonce)
        .values(outcome=None)
    )


async def _event(conn: AsyncConnection, kind: str, generation_id: str, token_id: int) -> None:
    row = (await conn.execute(select(Mint).where(Mint.generation_id == generation_id))).one()
    data = {"generationId": generation_id, "mint": mint_json(row)}
    if row.error is not None:
        data["error"] = row.error
    await record_events(conn, [NewEvent(kind, token_id, data)])


async def _move(
    conn: AsyncConnection, generation_id: str, allowed: Sequence[str], **values: Any
) -> bool:
    result = await conn.execute(
        update(MINTS)
        .where(MINTS.c.generation_id == generation_id, MINTS.c.status.in_(allowed))
        .values(updated_at=utcnow(), **values)
    )
    return bool(result.rowcount)


async def record_mined(
    conn: AsyncConnection,
    generation_id: str,
    token_id: int,
    found: Minted,
    confirmed: bool,
    allowed: Sequence[str] = IN_FLIGHT,
) -> bool:
    """The mint's NFT exists (``mined``, or ``confirmed`` at depth); ``mint.confirmed``
    when this confirms it."""
    status = CONFIRMED if confirmed else MINED
    moved = await _move(
        conn,
        generation_id,
        allowed,
        status=status,
        nft_token_id=found.token_id,
        tx_hash=found.tx_hash,
        block_number=found.block_number,
        error=None,
        error_code=None,
    )
    if moved and confirmed:
        await _event(conn, "mint.confirmed", generation_id, token_id)
    return moved


async def record_failed(
    conn: AsyncConnection, generation_id: str, token_id: int, error: str, code: str
) -> bool:
    """Failed for good; the error goes on the generation too, with ``mint.failed``."""
    moved = await _move(
        conn, generation_id, (PENDING, SENT), status=FAILED, error=error, error_code=code
    )
    if moved:
        await conn.execute(
            update(table_of(Generation))
            .where(table_of(Generation).c.id == generation_id)
            .values(error=MINT_ERROR_PREFIX + error)
        )
        await _event(conn, "mint.failed", generation_id, token_id)
    return moved


async def record_retry(
    conn: AsyncConnection,
    generation_id: str,
    error: str | None,
    code: str | None,
    at: datetime,
    *,
    count: bool,
) -> bool:
    """Pending again, not before ``at``; ``count``: the failed check is a try."""
    values: dict[str, Any] = {"status": PENDING, "error": error, "error_code": code}
    values |= {"next_attempt_at": at, "nonce": None, "raw_tx": None, "tx_hash": None}
    if count:
        values["attempts"] = MINTS.c.attempts + 1
    return await _move(conn, generation_id, (PENDING, SENT), **values)


async def requeue(conn: AsyncConnection, generation_id: str, nonce: int, error: str) -> bool:
    """Its nonce went to another transaction: pending again, for a new nonce at once."""
    result = await conn.execute(
        update(MINTS)
        .where(
            MINTS.c.generation_id == generation_id,
            MINTS.c.status == SENT,
            MINTS.c.nonce == nonce,
        )
        .values(status=PENDING, nonce=None, raw_tx=None, tx_hash=None, error=error)
    )
    return bool(result.rowcount)


async def unmine(conn: AsyncConnection, generation_id: str) -> bool:
    """A reorg took the mint's block away before it was deep enough."""
    return await _move(conn, generation_id, (MINED,), status=SENT, block_number=None)


# -- asked for by the API -------------------------------------------------------------------


async def retry_failed(conn: AsyncConnection, generation_id: str) -> bool:
    """A failed mint pending again with a fresh budget of tries; the generation's mint
    error cleared. False if the mint is not failed."""
    moved = await _move(
        conn,
        generation_id,
        (FAILED,),
        status=PENDING,
        attempts=0,
        error=None,
        error_code=None,
        next_attempt_at=None,
        nonce=None,
        raw_tx=None,
        tx_hash=None,
    )
    if moved:
        generations = table_of(Generation)
        await conn.execute(
            update(generations)
            .where(
                generations.c.id == generation_id,
                generations.c.error.like(MINT_ERROR_PREFIX + "%"),
            )
            .values(error=None)
        )
    return moved
