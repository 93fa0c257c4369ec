"""Domain events: written in the same transaction as the change they describe (an outbox).

Each event gets the next ``seq``; subscribers resume from a seq, so nothing is lost across
a dropped connection or a restart. On PostgreSQL, writers of events take one transaction-
scoped advisory lock, so seqs become visible in order (no reader ever skips a seq that
commits later), and a NOTIFY wakes the readers of every process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from inftd.agents.views import iso
from inftd.store.db import insert_many
from inftd.store.models import EventRecord, table_of

EVENTS_LOCK = 0x1F7D_0001  # advisory lock key that orders event writers on PostgreSQL
NOTIFY_CHANNEL = "inftd_events"
BATCH = "inftd.events.batch"  # conn.info key: the events held back by ``batched_events``
# Run by the events' INSERT before it makes a row (one round trip); the NOTIFY is delivered
# at commit, whenever it is asked.
LOCK_AND_NOTIFY = f"SELECT pg_advisory_xact_lock({EVENTS_LOCK}), pg_notify('{NOTIFY_CHANNEL}', '')"


@dataclass(frozen=True, slots=True)
class NewEvent:
    type: str
    token_id: int | None
    payload: dict[str, Any]
    private: bool = False  # only the owner (and operators) may see it


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    type: str
    token_id: int | None
    payload: dict[str, Any]
    private: bool
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> Event:
        """From a row of the events table."""
        return cls(row.seq, row.type, row.token_id, row.payload, row.private, row.created_at)

    def as_json(self) -> dict[str, Any]:
        return {
            "type": "event",
            "seq": self.seq,
            "event": self.type,
            "tokenId": self.token_id,
            "data": self.payload,
            "at": iso(self.created_at),
        }


@asynccontextmanager
async def batched_events(conn: AsyncConnection) -> AsyncIterator[None]:
    """Events recorded on ``conn`` inside are written together as the block ends, in the
    order they came: one insert, one lock and one NOTIFY for a transaction that records
    several (the lock, taken late, is held for less of it). Written only if the block
    ends without an error (one raised rolls the transaction back anyway)."""
    if BATCH in conn.info:  # an outer batch writes them
        yield
        return
    held: list[NewEvent] = []
    conn.info[BATCH] = held
    try:
        yield
    finally:
        del conn.info[BATCH]
    await record_events(conn, held)


async def record_events(conn: AsyncConnection, events: Sequence[NewEvent]) -> None:
    """Append events inside the caller's transaction; they publish when it commits."""
    if not events:
        return
    held: list[NewEvent] | None = conn.info.get(BATCH)
    if held is not None:
        held.extend(events)
        return
    postgres = conn.dialect.name == "postgresql"
    await insert_many(
        conn,
        table_of(EventRecord),
        [
            {"type": e.type, "token_id": e.token_id, "payload": e.payload, "private": e.private}
            for e in events
        ],
        first=LOCK_AND_NOTIFY if postgres else None,
    )
