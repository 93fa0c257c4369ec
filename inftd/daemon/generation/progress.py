"""A run's progress events, and what it holds back for the transaction that ends it.

Progress goes to the agent's channel as ``generation.progress`` events, **private** (the
owner's and the operator's): the prompt is the owner's, and so is the text streaming out of
it until the generation succeeds, when the content becomes public (``/v1/content``, the
mint). Streamed text is batched: an event holds the text that came since the last write,
or ``progress_chars`` characters if that many came sooner (``offset`` places each piece);
the strategy's rounds, parts and provider attempts are events of their own, in the order
they came (an ``attempt`` voids the text before it).

The strategy never waits for the database: events are written behind it, at most one
transaction per ``progress_interval`` for all that piled up meanwhile. When the strategy
is over, the run ``hold``s the rest (``Held``): its last events and the provider calls it
made (``DbRecorder.hold``) go in its final transaction, ahead of its lifecycle event, so a
job costs no transaction of its own for them and its events stay in order. What no final
transaction took (a lost lease, a final write that failed) is written on its own as the
run ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from inftd.agents.events import NewEvent, record_events
from inftd.daemon.generation.context import WorkerContext, spawn
from inftd.daemon.generation.queue import Claimed, event
from inftd.daemon.generation.routing.recorder import CallRecord, record_calls

log = logging.getLogger(__name__)


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON (what a JSON column and a WebSocket take)."""
    return orjson.loads(orjson.dumps(value, default=str))


@dataclass
class _Stream:
    """The text of one stream (a job's, or one part's: the chunks' other fields say)."""

    tags: dict[str, Any]
    pending: list[str] = field(default_factory=list)
    offset: int = 0  # characters of this attempt's text sent before the pending ones


class ProgressWriter:
    """The ``Progress`` a run hands its strategy (see the module docstring). Parts made in
    parallel stream apart, each with its own offsets; events are written in order."""

    def __init__(self, ctx: WorkerContext, claimed: Claimed) -> None:
        self._ctx = ctx
        self._claimed = claimed
        self._streams: dict[bytes, _Stream] = {}
        self._chars = 0  # pending, in all streams
        self._events: list[NewEvent] = []  # made, not written yet
        self._due: asyncio.TimerHandle | None = None  # the next write
        self._writing: asyncio.Task[None] | None = None
        self._busy = False  # a write is under way
        self._holding = False  # the run is over: the rest waits for its final transaction

    async def __call__(self, stage: str, data: Mapping[str, Any]) -> None:
        if stage == "chunk":
            piece = str(data.get("text", ""))
            self._stream({k: v for k, v in data.items() if k != "text"}).pending.append(piece)
            self._chars += len(piece)
            if self._chars >= self._ctx.settings.generation.progress_chars:
                self._cut()
        else:
            self._cut()
            if stage == "attempt":  # another provider starts over: that stream's text is void
                for stream in self._streams.values():
                    if all(data.get(k) == v for k, v in stream.tags.items()):
                        stream.offset = 0
            self._add({**json_safe(dict(data)), "stage": stage})
        self._soon()

    def _stream(self, tags: dict[str, Any]) -> _Stream:
        tags = json_safe(tags)
        key = orjson.dumps(tags, option=orjson.OPT_SORT_KEYS)
        if key not in self._streams:
            self._streams[key] = _Stream(tags)
        return self._streams[key]

    def _cut(self) -> None:
        """Each stream's pending text becomes one chunk event."""
        for stream in self._streams.values():
            if not stream.pending:
                continue
            text = "".join(stream.pending)
            stream.pending.clear()
            self._chars -= len(text)
            offset, stream.offset = stream.offset, stream.offset + len(text)
            self._add({**stream.tags, "stage": "chunk", "text": text, "offset": offset})

    def _add(self, data: dict[str, Any]) -> None:
        payload = {**data, "id": self._claimed.id, "run": self._claimed.attempts}
        self._events.append(event("progress", self._claimed.token_id, payload, private=True))

    def _soon(self) -> None:
        """Write what piles up ``progress_interval`` from now (unless a write is set or
        under way: it sets the next one)."""
        if self._holding or self._busy or self._due is not None:
            return
        interval = self._ctx.settings.generation.progress_interval
        self._due = asyncio.get_running_loop().call_later(interval, self._on_due)

    def _on_due(self) -> None:
        self._due = None
        self._cut()
        if self._holding or not self._events:
            return
        self._busy = True
        self._writing = spawn(self._ctx, self._drain())

    async def _drain(self) -> None:
        try:
            batch, self._events = self._events, []
            await self._write(batch)
        finally:
            self._busy = False
        if self._events or self._chars:  # more came meanwhile
            self._soon()

    async def _settled(self) -> None:
        if self._due is not None:
            self._due.cancel()
            self._due = None
        if self._writing is not None:
            await asyncio.shield(self._writing)

    async def flush(self) -> None:
        """Everything told so far written, now."""
        await self._settled()
        self._cut()
        batch, self._events = self._events, []
        await self._write(batch)

    async def hold(self) -> list[NewEvent]:
        """The strategy is over: the write under way ends, and the rest (the last text
        included) is handed over for the run's final transaction."""
        self._holding = True
        await self._settled()
        self._cut()
        rest, self._events = self._events, []
        return rest

    async def _write(self, events: list[NewEvent]) -> None:
        if not events:
            return
        try:
            async with self._ctx.engine.begin() as conn:
                await record_events(conn, events)
        except SQLAlchemyError as exc:  # progress is a courtesy: the job goes on without it
            log.warning("generation %s: progress events were lost: %s", self._claimed.id, exc)
            return
        self._ctx.poke()


class Held:
    """What a run holds back for its final transaction: its last progress events and the
    provider calls made for it. ``record`` writes them in that transaction, ``committed``
    forgets them once it commits; ``write_rest`` writes what is left on its own."""

    def __init__(self, ctx: WorkerContext, claimed: Claimed) -> None:
        self.progress = ProgressWriter(ctx, claimed)
        self.claimed = claimed
        self._ctx = ctx
        self._id = claimed.id
        self._taking: asyncio.Future[None] | None = None
        self._recorded = False
        self.events: list[NewEvent] = []
        self.calls: list[CallRecord] = []
        if ctx.recorder is not None:
            ctx.recorder.hold(claimed.id)

    async def take(self) -> None:
        """The strategy is over: gather what it left (once; callers at the same time all
        wait for that one)."""
        if self._taking is None:
            self._taking = asyncio.ensure_future(self._take())
        await asyncio.shield(self._taking)

    async def _take(self) -> None:
        self.events = await self.progress.hold()
        if self._ctx.recorder is not None:
            self.calls = self._ctx.recorder.take(self._id)

    async def record(self, conn: AsyncConnection) -> None:
        """In the run's final transaction, before its lifecycle event."""
        await self.take()
        await record_events(conn, self.events)
        await record_calls(conn, self.calls)
        self._recorded = True

    def committed(self) -> None:
        """The final transaction committed: what it recorded is written."""
        if self._recorded:
            self.events, self.calls = [], []

    async def write_rest(self) -> None:
        """What no final transaction took, in a transaction of its own."""
        await self.take()
        if not self.events and not self.calls:
            return
        try:
            async with self._ctx.engine.begin() as conn:
                await record_events(conn, self.events)
                await record_calls(conn, self.calls)
        except SQLAlchemyError as exc:
            log.error("generation %s: its progress and provider calls were lost: %s", self._id, exc)
            return
        self.events, self.calls = [], []
        self._ctx.poke()
