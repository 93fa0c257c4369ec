"""The event hub: tails the events table in seq order and fans events out to subscribers.

Every process runs one hub. It wakes when its own writers poke it, when PostgreSQL
NOTIFYs a commit from any process, or at ``poll_interval`` as a floor. Each event goes
first to the live agents (``inftd.agents.live``), whose copies it keeps true, then to the
subscribers. Each subscriber has a bounded buffer: one that falls ``limit`` events behind
is cut off rather than allowed to slow the others or grow without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterable

import psycopg
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.agents.events import NOTIFY_CHANNEL, Event
from inftd.agents.live import LiveAgents
from inftd.store.db import sync_url
from inftd.store.models import EventRecord

log = logging.getLogger(__name__)

FETCH_BATCH = 1000  # events read from the table per query
LISTEN_RETRY = 2.0  # seconds before re-opening a lost LISTEN connection
READ_RETRY = 1.0  # seconds before reading the events table again after it failed
OWNER_CHANGED = "owner.changed"  # the indexer's event of a package token's Transfer


class Subscription:
    """What one client wants (some tokens, or everything) and the events waiting for it."""

    def __init__(
        self,
        limit: int,
        tokens: Iterable[int] = (),
        everything: bool = False,
        viewer: str | None = None,
    ) -> None:
        self.limit = limit
        self.tokens = set(tokens)
        self.private_tokens: set[int] = set()  # tokens whose private events it may see
        self.viewer = viewer  # the signed-in owner it serves, whose private view ends on a sale
        self.everything = everything
        self.overflowed = False
        self.cut_off = asyncio.Event()  # set when the subscriber fell ``limit`` events behind
        self._buffer: deque[Event] = deque()
        self._ready = asyncio.Event()

    def wants(self, event: Event) -> bool:
        if self.everything:
            return True
        if event.token_id not in self.tokens:
            return False
        self._follow_owner(event)
        return not event.private or event.token_id in self.private_tokens

    def _follow_owner(self, event: Event) -> None:
        """Events come in seq order: once the token moved to another owner, its private
        events that follow are that owner's, not this viewer's."""
        if event.type != OWNER_CHANGED or self.viewer is None:
            return
        if str(event.payload.get("to", "")).lower() != self.viewer.lower():
            self.private_tokens.discard(event.token_id)

    def offer(self, event: Event) -> None:
        if self.overflowed or not self.wants(event):
            return
        if len(self._buffer) >= self.limit:
            self.overflowed = True
            self._buffer.clear()
            self.cut_off.set()
        else:
            self._buffer.append(event)
        self._ready.set()

    async def next(self) -> Event | None:
        """The next event, or None once the subscriber fell too far behind."""
        while not self._buffer and not self.overflowed:
            self._ready.clear()
            await self._ready.wait()
        return None if self.overflowed else self._buffer.popleft()


class Hub:
    def __init__(self, engine: AsyncEngine, live: LiveAgents, poll_interval: float = 0.5) -> None:
        self.engine = engine
        self.live = live  # the agents' copies, kept true by every event dispatched
        self.poll_interval = poll_interval
        self.last_seq = 0  # every event up to here has been dispatched
        self.subscriptions: set[Subscription] = set()
        self._wake = asyncio.Event()
        self._started = asyncio.Event()
        self._dispatching = asyncio.Lock()

    def poke(self) -> None:
        """Read the table now: a writer of this process has just committed events."""
        self._wake.set()

    def subscribe(self, subscription: Subscription) -> int:
        """Start delivering; returns the seq after which live events begin."""
        self.subscriptions.add(subscription)
        return self.last_seq

    def unsubscribe(self, subscription: Subscription) -> None:
        self.subscriptions.discard(subscription)

    async def run(self, stop: asyncio.Event) -> None:
        async with self.engine.connect() as conn:
            self.last_seq = int(await conn.scalar(select(func.max(EventRecord.seq))) or 0)
        self.live.track(self.last_seq)
        self._started.set()
        listener = None
        if self.engine.dialect.name == "postgresql":
            listener = asyncio.create_task(self._listen(stop))
        try:
            while not stop.is_set():
                await self._dispatch_or_wait()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval)
                self._wake.clear()
        finally:
            self.live.untrack()
            if listener:
                listener.cancel()
                await asyncio.gather(listener, return_exceptions=True)

    async def _dispatch_or_wait(self) -> None:
        """A dispatch; if the database fails it, the copies are let go (reads go to SQL)
        until a dispatch succeeds again, and it is tried again after ``READ_RETRY``."""
        try:
            await self.dispatch_new()
        except (SQLAlchemyError, OSError) as exc:
            if self.live.tracking:
                log.warning("events unreadable, live agents off until they are: %s", exc)
            self.live.untrack()
            await asyncio.sleep(READ_RETRY)
            return
        if not self.live.tracking:
            log.info("events readable again, live agents on")
            self.live.track(self.last_seq)

    async def started(self) -> None:
        await self._started.wait()

    async def dispatch_new(self) -> int:
        """Deliver every event committed since the last call; returns how many.

        One call reads at a time: the loop's call and another caller's (one that wants its
        events out now) reading from the same ``last_seq`` would offer an event twice, and
        hand a client that just resumed events it had already replayed."""
        async with self._dispatching:
            delivered = 0
            while True:
                events = await self.read(after=self.last_seq, limit=FETCH_BATCH)
                for event in events:
                    self.live.apply(event)  # first: a subscriber told of it reads it
                    for subscription in list(self.subscriptions):
                        subscription.offer(event)
                    self.last_seq = event.seq
                delivered += len(events)
                if events:
                    await self.live.advanced(self.last_seq)
                if len(events) < FETCH_BATCH:
                    return delivered

    async def read(
        self,
        after: int,
        limit: int,
        until: int | None = None,
        tokens: Iterable[int] | None = None,
    ) -> list[Event]:
        query = select(EventRecord).where(EventRecord.seq > after)
        if until is not None:
            query = query.where(EventRecord.seq <= until)
        if tokens is not None:
            query = query.where(EventRecord.token_id.in_(list(tokens)))
        async with self.engine.connect() as conn:
            rows = await conn.execute(query.order_by(EventRecord.seq).limit(limit))
            return [Event.from_row(r) for r in rows]

    async def _listen(self, stop: asyncio.Event) -> None:
        """LISTEN for commits of other processes; reconnects until stopped."""
        url = sync_url(self.engine.url.render_as_string(hide_password=False))
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not stop.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self._wake.set()  # events may have committed while not listening
                    async for _ in conn.notifies():
                        self._wake.set()
            except psycopg.Error as exc:
                log.warning("LISTEN %s lost: %s", NOTIFY_CHANNEL, exc)
                await asyncio.sleep(LISTEN_RETRY)
