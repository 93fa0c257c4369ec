"""Where the router writes down every provider call: a small interface, two implementations.

``MemoryRecorder`` keeps the calls in a list (router tests, tools); ``DbRecorder`` inserts
them into ``provider_calls`` (the daemon), the ledger that ``spend.provider_spend`` sums.
A call is recorded once it is over, whatever its outcome: answered, failed, or served from
the cache (cost 0, with what the stored answer had cost as the saving).

A generation run ``hold``s the calls made for its job: ``DbRecorder`` keeps them until the
run ``take``s them and writes them (``record_calls``) in the transaction that ends the run,
one round trip fewer per call and no transaction of their own; a call that comes after the
take (a straggler of a cancelled strategy) is inserted at once, as any other.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Protocol

from sqlalchemy import insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from inftd.store.db import insert_many
from inftd.store.models import ProviderCall, table_of, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CallRecord:
    provider: str
    model: str
    capability: str  # "text" or "image"
    purpose: str  # generate, refine, judge, plan, part
    outcome: str  # "ok", or the ProviderError kind
    generation_id: str | None = None
    token_id: int | None = None
    http_status: int | None = None
    cached: bool = False
    input_tokens: int = 0
    output_tokens: int = 0
    images: int = 0
    estimated: bool = False
    cost_usd: float = 0.0
    baseline_usd: float = 0.0  # the same work on the dearest capable candidate
    cache_saved_usd: float = 0.0  # a cache hit: what the stored answer cost
    latency_ms: float = 0.0
    created_at: datetime = field(default_factory=utcnow)


class Recorder(Protocol):
    async def record(self, call: CallRecord) -> None:
        """Keep ``call``; never raises (a lost record must not fail a paid-for answer)."""
        ...


class MemoryRecorder:
    """Calls kept in order, in memory."""

    def __init__(self) -> None:
        self.calls: list[CallRecord] = []

    async def record(self, call: CallRecord) -> None:
        self.calls.append(call)


class DbRecorder:
    """Calls inserted into ``provider_calls``, one short transaction each, except those of
    held generations (see the module docstring)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._held: dict[str, list[CallRecord]] = {}

    def hold(self, generation_id: str) -> None:
        """Keep the calls made for ``generation_id`` until ``take``."""
        self._held.setdefault(generation_id, [])

    def take(self, generation_id: str) -> list[CallRecord]:
        """The calls held for ``generation_id``, for the caller to write; stops holding."""
        return self._held.pop(generation_id, [])

    async def record(self, call: CallRecord) -> None:
        held = self._held.get(call.generation_id) if call.generation_id else None
        if held is not None:
            held.append(call)
            return
        # Shielded: a job cancelled (timeout, shutdown) while its call is written down still
        # leaves the record of money that was spent.
        try:
            await asyncio.shield(self._insert(call))
        except SQLAlchemyError:
            log.exception("recording a %s call failed", call.provider)

    async def _insert(self, call: CallRecord) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(insert(table_of(ProviderCall)).values(**asdict(call)))


async def record_calls(conn: AsyncConnection, calls: Sequence[CallRecord]) -> None:
    """Insert ``calls`` in the caller's transaction, in one statement."""
    await insert_many(conn, table_of(ProviderCall), [asdict(call) for call in calls])
