"""Where the router writes down every provider call: a small interface, two implementations.

``MemoryRecorder`` keeps the calls in a list (router tests, tools); ``DbRecorder`` inserts
them into ``provider_calls`` (the daemon), the ledger that ``spend.provider_spend`` sums.
A call is recorded once it is over, whatever its outcome: answered, failed, or served from
the cache (cost 0, with what the stored answer had cost as the saving).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Protocol

from sqlalchemy import insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

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
    """Calls inserted into ``provider_calls``, one short transaction each."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def record(self, call: CallRecord) -> None:
        # Shielded: a job cancelled (timeout, shutdown) while its call is written down still
        # leaves the record of money that was spent.
        try:
            await asyncio.shield(self._insert(call))
        except SQLAlchemyError:
            log.exception("recording a %s call failed", call.provider)

    async def _insert(self, call: CallRecord) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(insert(table_of(ProviderCall)).values(**asdict(call)))
