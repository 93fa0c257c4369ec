"""What the indexer has done, read from the database (so any process can report it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from inftd.indexer.follower import CURSOR
from inftd.store.models import ChainEvent, SyncCursor


@dataclass(frozen=True)
class IndexerReport:
    indexed_block: int | None
    confirmed_block: int | None
    reorgs: int
    deepest_reorg: int
    pending_events: int
    problems: int
    events: dict[str, int] = field(default_factory=dict)

    def as_json(self, head: int | None) -> dict[str, Any]:
        lag = (
            head - self.indexed_block
            if head is not None and self.indexed_block is not None
            else None
        )
        return {
            "headBlock": head,
            "indexedBlock": self.indexed_block,
            "confirmedBlock": self.confirmed_block,
            "lagBlocks": lag,
            "reorgs": self.reorgs,
            "deepestReorg": self.deepest_reorg,
            "pendingEvents": self.pending_events,
            "projectionProblems": self.problems,
            "eventsByKind": self.events,
        }


async def indexer_report(
    conn: AsyncConnection, head: int | None, confirmations: int
) -> IndexerReport:
    cursor = (
        await conn.execute(
            select(SyncCursor.block_number, SyncCursor.reorgs, SyncCursor.deepest_reorg).where(
                SyncCursor.name == CURSOR
            )
        )
    ).first()
    counts = await conn.execute(
        select(
            ChainEvent.name, ChainEvent.applied, ChainEvent.problem.is_not(None), func.count()
        ).group_by(ChainEvent.name, ChainEvent.applied, ChainEvent.problem.is_not(None))
    )
    events: dict[str, int] = {}
    pending = problems = 0
    for name, applied, has_problem, count in counts:
        if not applied:
            pending += count
        elif has_problem:
            problems += count
        else:
            events[name] = events.get(name, 0) + count
    indexed = cursor[0] if cursor else None
    confirmed = None
    if indexed is not None:
        confirmed = indexed if head is None else min(indexed, head - confirmations)
    return IndexerReport(
        indexed_block=indexed,
        confirmed_block=confirmed,
        reorgs=cursor[1] if cursor else 0,
        deepest_reorg=cursor[2] if cursor else 0,
        pending_events=pending,
        problems=problems,
        events=dict(sorted(events.items())),
    )
