"""The fast path: new, confirmed events stored already applied, planned from memory.

``apply_confirmed`` (projections) reads stored events back and marks them applied with an
UPDATE that rewrites every row and its indexes. For a range read whole whose events are
confirmed, none stored before, and with nothing unapplied before them, none of that is
needed: the logs are decoded and planned in memory and each event is inserted already
applied.

A backfill range can hold 100,000 events, so they go in batches, and while the database
writes one batch the next is decoded and planned: that work pauses every ``SLICE`` logs so
the writer can hand the database its next statement. The database (another process, or
SQLite's own thread, which works without the GIL) and this work then run side by side.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from psycopg.errors import UniqueViolation
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from inftd.indexer.decode import ChainLog, Decoder
from inftd.indexer.errors import IndexerError
from inftd.indexer.events import StoredMeanwhile, store_new
from inftd.indexer.projections import ApplyResult, Plan, known_agents
from inftd.indexer.rpc import LogDict
from inftd.store.models import Agent

DIRECT_BATCH = 5000  # logs written together; the next batch is decoded and planned meanwhile
SLICE = 500  # logs decoded and planned between two turns of the writer


async def apply_new(
    conn: AsyncConnection, chain_id: int, raw: Sequence[LogDict], decoder: Decoder
) -> ApplyResult:
    """Decode ``raw`` (in chain order), store the events already applied, and apply them.

    The caller guarantees the events are confirmed, not stored, and that no unapplied event
    comes before them. The agents, ledger entries and told events are those
    ``apply_confirmed`` would make. Raises ``StoredMeanwhile`` if another writer stored one
    of them meanwhile (the caller rolls back), ``DecodeError`` for a malformed log.
    """
    known = await _known_before(conn, raw, decoder)
    batches = _Batches(chain_id, known)  # agents that exist before these logs, kept up to date
    with _collector_paused():
        return await _pipeline(conn, chain_id, raw, decoder, batches)


async def _known_before(
    conn: AsyncConnection, raw: Sequence[LogDict], decoder: Decoder
) -> set[int]:
    """The package tokens of ``raw`` that have an agent already. A first backfill starts with
    no agent at all: then the pass over every log for its token is skipped."""
    if await conn.scalar(select(Agent.token_id).limit(1)) is None:
        return set()
    return await known_agents(conn, {t for log in raw if (t := decoder.token_id(log)) is not None})


async def _pipeline(
    conn: AsyncConnection,
    chain_id: int,
    raw: Sequence[LogDict],
    decoder: Decoder,
    batches: _Batches,
) -> ApplyResult:
    """Each batch is written while the next one is decoded and planned."""
    result = ApplyResult()
    writing: asyncio.Task[None] | None = None
    try:
        for start in range(0, len(raw), DIRECT_BATCH):
            events, plan = await batches.next(raw[start : start + DIRECT_BATCH], decoder)
            if writing is not None:
                await writing
            writing = asyncio.create_task(_write(conn, chain_id, events, plan))
            result.add(plan.result)
            result.direct += len(events)
        if writing is not None:
            await writing
    finally:
        if writing is not None and not writing.done():  # decoding or planning failed
            writing.cancel()
            await asyncio.gather(writing, return_exceptions=True)
    return result


class _Pause:
    """How many callers want the cyclic garbage collector off, and whether it was on."""

    callers = 0
    was_enabled = False


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a range is decoded, planned and written.

    A range makes about ten small containers a log, all alive until its end: the collector
    would scan them over and over (a sixth of a backfill's CPU time) and free nothing, for
    none is in a cycle. Reference counting still frees everything as usual; the collector is
    switched back on when the last range being applied is done."""
    if _Pause.callers == 0:
        _Pause.was_enabled = gc.isenabled()
        gc.disable()
    _Pause.callers += 1
    try:
        yield
    finally:
        _Pause.callers -= 1
        if _Pause.callers == 0 and _Pause.was_enabled:
            gc.enable()


class _Batches:
    """Decodes and plans batches in chain order, carrying the known agents from one to the
    next."""

    def __init__(self, chain_id: int, known: set[int]) -> None:
        self.chain_id = chain_id
        self.known = known
        self.last = (-1, -1)  # the position of the last event planned

    async def next(self, raw: Sequence[LogDict], decoder: Decoder) -> tuple[list[ChainLog], Plan]:
        events: list[ChainLog] = []
        plan = Plan(self.chain_id, self.known)
        for start in range(0, len(raw), SLICE):
            for log in raw[start : start + SLICE]:
                event = decoder.decode(log)
                if event is not None:
                    self._check_order(event)
                    plan.add(event, len(events))
                    events.append(event)
            await asyncio.sleep(0)  # the writer's turn, if it waits to send its next statement
        return events, plan

    def _check_order(self, event: ChainLog) -> None:
        position = (event.block_number, event.log_index)
        if position <= self.last:
            raise IndexerError(f"logs out of chain order at block {event.block_number}")
        self.last = position


async def _write(
    conn: AsyncConnection, chain_id: int, events: Sequence[ChainLog], plan: Plan
) -> None:
    try:
        ids = await store_new(conn, chain_id, events)
        await plan.write(conn, ids, new=True)
    except UniqueViolation as exc:  # a COPY met a row stored meanwhile: all goes careful
        raise StoredMeanwhile(len(events)) from exc
