"""Raw events in the database: stored once per (chain, block hash, tx hash, log index)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from inftd.indexer.decode import ChainLog
from inftd.store.db import insert_many
from inftd.store.models import ChainEvent, table_of

CHAIN_EVENTS = table_of(ChainEvent)


def _row(chain_id: int, log: ChainLog, source: str) -> dict[str, object]:
    return {
        "chain_id": chain_id,
        "block_number": log.block_number,
        "block_hash": log.block_hash,
        "tx_hash": log.tx_hash,
        "log_index": log.log_index,
        "address": log.address,
        "name": log.name,
        "args": log.args,
        "token_id": log.token_id,
        "source": source,
        "applied": False,
    }


async def store_logs(
    conn: AsyncConnection, chain_id: int, logs: Sequence[ChainLog], source: str
) -> int:
    """Insert the logs not stored yet; returns how many were new."""
    # One statement for the lot (a backfill range holds thousands of logs); the count is the
    # rows really inserted, those already stored are skipped.
    rows = [_row(chain_id, log, source) for log in logs]
    return await insert_many(conn, CHAIN_EVENTS, rows, skip_conflicts=True)


async def drop_unseen(
    conn: AsyncConnection, first: int, last: int, seen: set[tuple[str, str, int]]
) -> int:
    """Forget unapplied events in [first, last] that a whole read of that range did not return.

    They came by webhook from a block that has since left the canonical chain.
    """
    stale = [
        row.id
        for row in await conn.execute(
            select(
                ChainEvent.id, ChainEvent.block_hash, ChainEvent.tx_hash, ChainEvent.log_index
            ).where(ChainEvent.block_number.between(first, last), ChainEvent.applied.is_(False))
        )
        if (row.block_hash, row.tx_hash, row.log_index) not in seen
    ]
    if stale:
        await conn.execute(delete(CHAIN_EVENTS).where(and_(CHAIN_EVENTS.c.id.in_(stale))))
    return len(stale)
