"""Undo what dropped blocks did: one transaction that leaves the state as if they never were.

Everything derived from an event references it (agents by ``created_event_id``, ledger
entries and chain generations by ``chain_event_id``), so deleting the events deletes what
they created. What they changed on surviving agents (owner, metadata, cached balances) is
recomputed from the events and ledger entries that remain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from inftd.agents.events import REORGED, NewEvent, record_events
from inftd.agents.ledger import refresh_balances
from inftd.store.models import (
    Agent,
    BlockWindow,
    ChainEvent,
    Generation,
    Mint,
    MintAttempt,
    VoidedMint,
    table_of,
)
from inftd.store.sql import insert_ignore

OWNER_EVENTS = ("PackagePurchased", "Transfer")
UNMINED = {"status": "sent", "block_number": None, "nft_token_id": None}  # for the relayer


@dataclass(frozen=True)
class Rollback:
    ancestor: int
    events_removed: int
    agents_touched: int


async def rollback_to(conn: AsyncConnection, ancestor: int) -> Rollback:
    """Remove every event above ``ancestor`` and all their effects."""
    affected: set[int] = set(
        await conn.scalars(
            select(ChainEvent.token_id)
            .where(ChainEvent.block_number > ancestor, ChainEvent.applied.is_(True))
            .where(ChainEvent.token_id.is_not(None))
            .distinct()
        )
    )
    await void_signed_mints(conn, ancestor)
    removed = await conn.execute(
        delete(table_of(ChainEvent)).where(table_of(ChainEvent).c.block_number > ancestor)
    )
    survivors = set(await conn.scalars(select(Agent.token_id).where(Agent.token_id.in_(affected))))
    for token_id in sorted(survivors):
        await _recompute_owner(conn, token_id)
        await _recompute_metadata(conn, token_id)
        await refresh_balances(conn, token_id)
    await conn.execute(
        update(table_of(Mint)).where(table_of(Mint).c.block_number > ancestor).values(**UNMINED)
    )
    await conn.execute(delete(table_of(BlockWindow)).where(BlockWindow.number > ancestor))
    await record_events(
        conn,
        [
            NewEvent(
                "agent.rolled_back" if t in survivors else "agent.removed",
                t,
                {"ancestor": ancestor},
            )
            for t in sorted(affected)
        ]
        # Last: rows of agents named by no event above changed too (a collaborator's
        # learning entry, a mint the relayer saw mined): copies of agents go, all of them.
        + [NewEvent(REORGED, None, {"ancestor": ancestor})],
    )
    return Rollback(ancestor, max(removed.rowcount, 0), len(survivors))


async def void_signed_mints(conn: AsyncConnection, ancestor: int) -> int:
    """Record the signed mints the rollback is about to delete with their generations (a
    request above ``ancestor``, or an agent bought above it): their nonces stay the key's,
    and a nonce nobody spends would hold back every later mint (found by bench.chaos)."""
    dropped = select(ChainEvent.id).where(ChainEvent.block_number > ancestor)
    doomed_agents = select(Agent.token_id).where(Agent.created_event_id.in_(dropped))
    doomed = (Generation.chain_event_id.in_(dropped)) | (Generation.token_id.in_(doomed_agents))
    # First wait for a relayer signing one of these mints (it holds the mint's row until
    # its attempts commit) and keep relayers off them until the delete: on PostgreSQL each
    # statement sees what committed before it, so attempts committed between the select
    # below and the delete were lost with their nonces (found by bench.chaos).
    await conn.execute(
        select(Mint.generation_id)
        .where(Mint.generation_id.in_(select(Generation.id).where(doomed)))
        .with_for_update()
    )

    def newest(column: Any) -> Any:  # of the mint's newest attempt
        return (
            select(column)
            .where(MintAttempt.generation_id == Mint.generation_id)
            .order_by(MintAttempt.id.desc())
            .limit(1)
            .scalar_subquery()
        )

    rows = (
        await conn.execute(
            select(
                Mint.generation_id,
                Mint.request_key,
                Mint.signer,
                Mint.nonce,
                newest(MintAttempt.max_fee_per_gas).label("max_fee"),
                newest(MintAttempt.max_priority_fee_per_gas).label("priority"),
            )
            .join(Generation, Generation.id == Mint.generation_id)
            .where(Mint.nonce.is_not(None), Mint.signer.is_not(None))
            .where(doomed)
        )
    ).all()
    for row in rows:
        values = {
            "generation_id": row.generation_id,
            "request_key": row.request_key,
            "signer": row.signer,
            "nonce": row.nonce,
            "max_fee_per_gas": row.max_fee or 0,
            "max_priority_fee_per_gas": row.priority or 0,
        }
        await conn.execute(insert_ignore(conn, table_of(VoidedMint)).values(**values))
    return len(rows)


async def _latest(conn: AsyncConnection, token_id: int, names: tuple[str, ...]) -> Row[Any] | None:
    return (
        await conn.execute(
            select(ChainEvent.name, ChainEvent.args, ChainEvent.block_number)
            .where(
                ChainEvent.token_id == token_id,
                ChainEvent.name.in_(names),
                ChainEvent.applied.is_(True),
                ChainEvent.problem.is_(None),
            )
            .order_by(ChainEvent.block_number.desc(), ChainEvent.log_index.desc())
            .limit(1)
        )
    ).first()


async def _recompute_owner(conn: AsyncConnection, token_id: int) -> None:
    latest = await _latest(conn, token_id, OWNER_EVENTS)
    if latest is None:
        return
    owner = latest.args["buyer"] if latest.name == "PackagePurchased" else latest.args["to"]
    await conn.execute(
        update(table_of(Agent))
        .where(table_of(Agent).c.token_id == token_id)
        .values(owner=owner, owner_since_block=latest.block_number)
    )


async def _recompute_metadata(conn: AsyncConnection, token_id: int) -> None:
    latest = await _latest(conn, token_id, ("AgentMetadataUpdated",))
    metadata = (
        {
            "uri": latest.args["uri"],
            "stateHash": latest.args["stateHash"],
            "block": latest.block_number,
        }
        if latest
        else {}
    )
    await conn.execute(
        update(table_of(Agent))
        .where(table_of(Agent).c.token_id == token_id)
        .values(agent_metadata=metadata)
    )


async def unmine_unseen(conn: AsyncConnection, first: int, last: int) -> int:
    """Mints the relayer saw mined in blocks [first, last] that the canonical blocks just
    written do not mint: the receipt came from a block a reorg replaced before the indexer
    reached it, so no rollback covers it. They go back to the relayer (``sent``); how many."""
    events = await conn.scalars(
        select(ChainEvent.args).where(
            ChainEvent.name == "GenerationMinted", ChainEvent.block_number.between(first, last)
        )
    )
    minted = {args["requestKey"] for args in events}
    claimed = await conn.execute(
        select(Mint.generation_id, Mint.request_key).where(
            Mint.block_number.between(first, last), Mint.status.in_(("mined", "confirmed"))
        )
    )
    gone = [row.generation_id for row in claimed if row.request_key not in minted]
    if gone:
        await conn.execute(
            update(table_of(Mint)).where(table_of(Mint).c.generation_id.in_(gone)).values(**UNMINED)
        )
    return len(gone)
