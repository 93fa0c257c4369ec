"""Raw events in the database: stored once per (chain, block hash, tx hash, log index)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from inftd.indexer.bulk import copies, copy_columns, next_ids
from inftd.indexer.decode import ChainLog
from inftd.indexer.errors import IndexerError
from inftd.store.db import insert_columns, insert_returning
from inftd.store.models import ChainEvent, table_of

CHAIN_EVENTS = table_of(ChainEvent)


class StoredMeanwhile(IndexerError):
    """Some of the events being inserted as new were stored by another writer meanwhile (a
    webhook): the transaction is rolled back and the range stored the careful way."""

    def __init__(self, expected: int, inserted: int | None = None) -> None:
        some = "some" if inserted is None else str(expected - inserted)
        super().__init__(f"{some} of {expected} new events were already stored")


def _columns(chain_id: int, logs: Sequence[ChainLog], source: str) -> dict[str, Sequence[object]]:
    return {
        "chain_id": [chain_id] * len(logs),
        "block_number": [log.block_number for log in logs],
        "block_hash": [log.block_hash for log in logs],
        "tx_hash": [log.tx_hash for log in logs],
        "log_index": [log.log_index for log in logs],
        "address": [log.address for log in logs],
        "name": [log.name for log in logs],
        "args": [log.args for log in logs],
        "token_id": [log.token_id for log in logs],
        "source": [source] * len(logs),
    }


async def store_logs(
    conn: AsyncConnection, chain_id: int, logs: Sequence[ChainLog], source: str
) -> int:
    """Insert the logs not stored yet, unapplied; returns how many were new."""
    # One statement for the lot (a backfill range holds thousands of logs); the count is the
    # rows really inserted, those already stored are skipped.
    columns = _columns(chain_id, logs, source) | {"applied": [False] * len(logs)}
    return await insert_columns(conn, CHAIN_EVENTS, columns, skip_conflicts=True)


async def store_new(conn: AsyncConnection, chain_id: int, logs: Sequence[ChainLog]) -> list[int]:
    """Insert logs known to be new, already marked applied; returns their ids, in order.

    The caller applies them in the same transaction. If another writer stored any of them
    after all, raises ``StoredMeanwhile`` (by INSERT) or psycopg's ``UniqueViolation`` (by
    COPY: a big batch on PostgreSQL): the caller must then roll back."""
    if not logs:
        return []
    columns = _columns(chain_id, logs, "poll") | {"applied": [True] * len(logs)}
    if copies(conn, len(logs)):
        return await _copy_new(conn, columns)
    if conn.dialect.name == "postgresql":
        rows = await insert_returning(
            conn, CHAIN_EVENTS, columns, ("id", "block_number", "log_index"), skip_conflicts=True
        )
        if len(rows) != len(logs):
            raise StoredMeanwhile(len(logs), len(rows))
        # (block, log index) is unique among logs read from one chain
        found = {(number, index): event_id for event_id, number, index in rows}
        return [found[log.block_number, log.log_index] for log in logs]
    # SQLite hands out max(id) + 1 itself; the caller has written in this transaction
    # already, so it holds the only write lock and no other writer can take these ids.
    top = int(await conn.scalar(select(func.coalesce(func.max(ChainEvent.id), 0))) or 0)
    ids = list(range(top + 1, top + 1 + len(logs)))
    inserted = await insert_columns(conn, CHAIN_EVENTS, columns | {"id": ids}, skip_conflicts=True)
    if inserted != len(logs):
        raise StoredMeanwhile(len(logs), inserted)
    return ids


async def _copy_new(conn: AsyncConnection, columns: dict[str, Sequence[object]]) -> list[int]:
    """``store_new`` by COPY (PostgreSQL, a big batch): ids are taken first, in chain order."""
    ids = await next_ids(conn, CHAIN_EVENTS, len(columns["block_number"]))
    await copy_columns(conn, CHAIN_EVENTS, columns | {"id": ids})  # fails on a stored one
    return ids


async def any_stored(conn: AsyncConnection, first: int, last: int) -> bool:
    """Whether any event of blocks [first, last] is stored (by a webhook, say)."""
    found = await conn.scalar(
        select(ChainEvent.id).where(ChainEvent.block_number.between(first, last)).limit(1)
    )
    return found is not None


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
