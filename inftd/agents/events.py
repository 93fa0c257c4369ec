"""Domain events: written in the same transaction as the change they describe (an outbox).

Each event gets the next ``seq``; subscribers resume from a seq, so nothing is lost across
a dropped connection or a restart. On PostgreSQL, writers of events take one transaction-
scoped advisory lock, so seqs become visible in order (no reader ever skips a seq that
commits later), and a NOTIFY wakes the readers of every process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from inftd.agents.views import iso
from inftd.store.db import insert_numbered
from inftd.store.models import EventRecord, table_of

EVENTS_LOCK = 0x1F7D_0001  # advisory lock key that orders event writers on PostgreSQL
NOTIFY_CHANNEL = "inftd_events"
# Recorded (with no token) by a reorg's rollback, which can change rows of agents it names
# no event for (a collaborator's learning entry, a mint): readers of copies drop them all.
REORGED = "chain.reorged"
BATCH = "inftd.events.batch"  # conn.info key: the events held back by ``batched_events``
WRITTEN = "inftd.events.written"  # conn.info key: token id (None: none) → largest seq written
COMMITTED = "inftd.events.committed"  # conn.info key: the same, of transactions committed
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
    _wire: list[bytes] = field(default_factory=list, compare=False, repr=False)

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

    def wire(self) -> bytes:
        """``as_json`` serialized, once however many subscribers it goes to."""
        if not self._wire:
            self._wire.append(orjson.dumps(self.as_json()))
        return self._wire[0]


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
    numbered = await insert_numbered(
        conn,
        table_of(EventRecord),
        [
            {"type": e.type, "token_id": e.token_id, "payload": e.payload, "private": e.private}
            for e in events
        ],
        "token_id",
        first=LOCK_AND_NOTIFY if postgres else None,
    )
    written: dict[int | None, int] = conn.info.setdefault(WRITTEN, {})
    for seq, token_id in numbered:
        written[token_id] = max(seq, written.get(token_id, 0))


Written = Callable[[Mapping[int | None, int]], None]


def on_written(engine: AsyncEngine, listener: Written) -> None:
    """Call ``listener`` with {token id: largest seq} of the events each transaction on
    ``engine`` committed, as its connection goes back to the pool: after the commit, before
    the code that wrote them goes on. Transactions rolled back report nothing.

    Nothing is done on a rollback: it may be of a connection that broke (a cancelled task's,
    at shutdown), where even reading ``conn.info`` raises and leaves the pool stuck. A
    commit moves what its transaction wrote aside; the pool's check-in reports that and
    forgets the rest."""

    def committing(conn: Any) -> None:
        written = conn.info.pop(WRITTEN, None)
        if written:
            committed: dict[int | None, int] = conn.info.setdefault(COMMITTED, {})
            for token_id, seq in written.items():
                committed[token_id] = max(seq, committed.get(token_id, 0))

    def checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info.pop(WRITTEN, None)  # rolled back
        committed = record.info.pop(COMMITTED, None)
        if committed:
            listener(committed)

    sa_event.listen(engine.sync_engine, "commit", committing)
    sa_event.listen(engine.sync_engine.pool, "checkin", checkin)
