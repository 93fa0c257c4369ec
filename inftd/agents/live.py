"""Live agents: this process's copy of the agents it serves, answered from memory.

SQL stays the truth and the copy is only a copy: a process that dies loses nothing. An
agent is read on first use: its document, serialized once, and its version, the seq of its
last event, read before and after the document (equal, or the read is made again), so a
copy never mixes two states. It is kept while it is true:

- the hub, which tails the events table in seq order, hands each event to ``apply``
  before it moves past it. An event the copy holds already (seq <= version) changes
  nothing; one of a kind the copy does not show (``UNSHOWN``) moves its version forward;
  any other drops it, and the next read loads the agent again;
- a transaction of this process that recorded events reports them as its connection goes
  back to the pool, after the commit and before the writer answers (``written``): a client
  always reads its own writes from the process it wrote to;
- a read that an event overtook is handed to its readers but not kept.

Copies are kept only while the hub tails the log (``track``); without it every read goes
to SQL. Nothing that guards an invariant reads a copy: spends, limits and owners are
checked in the writer's transaction (``inftd.agents.writer``).

Memory: an entry counts its serialized answers plus a measured overhead; beyond ``budget``
bytes the least recently used leave first. Unknown agents are kept too (as absent), so a
flood of made-up ids costs one read each, not one per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from inftd.agents.errors import UnknownAgent
from inftd.agents.events import REORGED, Event, on_written
from inftd.agents.learning import generation_token
from inftd.agents.ledger import NO_CHANGE, Balances
from inftd.agents.owners import MAX_STORED_TOKEN_ID
from inftd.agents.views import agent_page, agent_state
from inftd.store.models import EventRecord

# Kinds of event that change nothing a copy holds (the document, owner, balances, list
# summary): the copy's version moves forward instead of the agent being read again. Each
# is checked against a fresh read by tests/agents/test_live.py.
UNSHOWN = frozenset(
    {
        "generation.progress",
        "generation.started",
        "generation.reserved",
        "generation.cancelling",
        "memory.added",
        "message.sent",
        "message.received",
        "collaboration.granted",
        "collaboration.revoked",
        "mint.requested",
        "mint.sent",
        "mint.confirmed",
        "mint.failed",
    }
)
ENTRY_OVERHEAD = 600  # bytes an entry holds beyond its document (420 measured; see tests)
PAGE_OVERHEAD = 400  # bytes a kept page holds beyond its answer
MAX_PAGES = 256  # list pages kept at most: each event looks at them all
READ_TRIES = 3  # reads of an agent that writes keep overtaking, before one is served unkept
NO_EVENT = 0  # the version of an agent no event names
UNVERSIONED = -1  # the version of a read that writes kept overtaking
DETACHED = 1 << 62  # a read's floor once it may not be kept whatever it finds

EXTRA_OVERHEAD = 300  # bytes an answer kept with an agent holds beyond its JSON
MAX_GENERATIONS = 16_384  # generation id → token id pairs kept (about 200 bytes each)

T = TypeVar("T")
Loader = Callable[[AsyncConnection], Awaitable[Any]]  # JSON-able, or None for nothing


# The largest seq the current request committed ([0]; 0: none), for its answer to name.
_WROTE: ContextVar[list[int] | None] = ContextVar("inftd_wrote", default=None)


@contextlib.contextmanager
def noting_writes() -> Iterator[list[int]]:
    """A holder of the largest seq that the code inside commits through a ``LiveAgents``'s
    engine (child tasks included): the seq a reader elsewhere may wait for (``reach``)."""
    holder = [NO_EVENT]
    token = _WROTE.set(holder)
    try:
        yield holder
    finally:
        _WROTE.reset(token)


def kept_json(value: Any) -> bytes:
    """``value`` as JSON, in a bytes object its own size: orjson's output holds the 4 to 8
    KiB it was written into, whatever its length (measured with tracemalloc)."""
    return bytes(memoryview(orjson.dumps(value)))


def etag_of(version: int) -> str:
    return f'"{version}"'


def content_etag(body: bytes) -> str:
    """An ETag that names the bytes, for answers with no version of their own."""
    return '"h' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


@dataclass(slots=True, eq=False)
class Entry:
    """One agent as this process holds it; ``exists`` False: there is no such agent."""

    token_id: int
    version: int
    exists: bool
    document: bytes = b""  # GET /v1/agents/{id}, serialized
    owner: str = ""
    balances: Balances = NO_CHANGE
    extras: dict[Hashable, tuple[Any, int]] = field(default_factory=dict)  # value, size
    size: int = ENTRY_OVERHEAD

    @classmethod
    def of(cls, token_id: int, version: int, state: dict[str, Any] | None) -> Entry:
        if state is None:
            return cls(token_id, version, exists=False)
        document = kept_json(state)
        balances = Balances(state["totalCredits"], state["usedCredits"], state["reservedCredits"])
        size = ENTRY_OVERHEAD + len(document)
        return cls(token_id, version, True, document, state["owner"], balances, size=size)

    @property
    def etag(self) -> str | None:
        """Its version as an ETag; None for a read that writes kept overtaking."""
        return etag_of(self.version) if self.version >= NO_EVENT else None

    def present(self) -> Entry:
        """Itself, if the agent exists; ``UnknownAgent`` if not."""
        if not self.exists:
            raise UnknownAgent(self.token_id)
        return self


@dataclass(slots=True, eq=False)
class Page:
    """One answer of the agents' list: the agents after ``after`` up to ``last``."""

    after: int
    limit: int
    last: int  # the page's last token id; MAX_STORED_TOKEN_ID for the final page
    seq: int  # the page holds every event up to here
    body: bytes
    etag: str

    @property
    def size(self) -> int:
        return PAGE_OVERHEAD + len(self.body)

    def covers(self, token_id: int) -> bool:
        return self.after < token_id <= self.last


@dataclass(slots=True, eq=False)
class _Reading:
    """A read under way, shared by the readers that come meanwhile. It is kept only if
    what it finds holds every event that went by (its version >= ``floor``)."""

    future: asyncio.Future[Any]
    floor: int = NO_EVENT


@dataclass
class Counters:
    hits: int = 0
    misses: int = 0
    reads: int = 0
    evictions: int = 0
    dropped: int = 0
    advanced: int = 0  # copies whose version an unshown event moved forward

    def hit_rate(self) -> float | None:
        asked = self.hits + self.misses
        return round(self.hits / asked, 4) if asked else None


# The version of one agent, and the newest seq of all (a page's), built once.
_VERSION = select(func.coalesce(func.max(EventRecord.seq), NO_EVENT)).where(
    EventRecord.token_id == bindparam("token_id")
)
_NEWEST = select(func.coalesce(func.max(EventRecord.seq), NO_EVENT))


class LiveAgents:
    def __init__(self, engine: AsyncEngine, budget: int) -> None:
        self.engine = engine
        self.budget = budget
        self.tracking = False
        self.position = 0  # the hub has applied every event up to here
        self.bytes = 0
        self.counters = Counters()
        self._entries: OrderedDict[int, Entry] = OrderedDict()  # least recently used first
        self._pages: OrderedDict[tuple[int, int], Page] = OrderedDict()
        self._reading: dict[tuple[Any, ...], _Reading] = {}
        self._generations: OrderedDict[str, int] = OrderedDict()
        self._moved = asyncio.Condition()
        on_written(engine, self.written)

    # -- what the hub and the writers say ---------------------------------------------------

    def track(self, position: int) -> None:
        """The hub tails the log from ``position``: copies may be kept from now on."""
        self.position = max(self.position, position)
        self.tracking = True

    def untrack(self) -> None:
        """The hub stopped, or lost the database: nothing kept can be trusted."""
        self.tracking = False
        self.clear()
        self._reading.clear()

    def apply(self, event: Event) -> None:
        """An event the hub read, in seq order, before it moves past it."""
        if event.token_id is not None:
            self._changed(event.token_id, event.seq, event.type in UNSHOWN)
        elif event.type == REORGED:
            self.clear()

    def written(self, written: Mapping[int | None, int]) -> None:
        """Events this process committed: {token id: largest seq}."""
        holder = _WROTE.get()
        if holder is not None:
            holder[0] = max(holder[0], *written.values())
        for token_id, seq in written.items():
            if token_id is not None:
                self._changed(token_id, seq, unshown=False)

    async def advanced(self, position: int) -> None:
        """The hub has applied every event up to ``position``: wake who waits for it."""
        self.position = max(self.position, position)
        async with self._moved:
            self._moved.notify_all()

    async def reach(self, seq: int, wait: float) -> bool:
        """Wait, ``wait`` seconds at most, until the copies hold every event up to ``seq``;
        whether they do. Without tracking every read is fresh: at once."""
        if not self.tracking or self.position >= seq:
            return True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait), self._moved:
                await self._moved.wait_for(lambda: self.position >= seq or not self.tracking)
        return not self.tracking or self.position >= seq

    def _changed(self, token_id: int, seq: int, unshown: bool) -> None:
        if not unshown:
            self._pages_changed(token_id, seq)
        for key, reading in self._reading.items():
            if key[0] == "agent" and key[1] == token_id:
                reading.floor = max(reading.floor, seq)
            elif key[0] == "extra" and key[1] == token_id:
                reading.floor = DETACHED
        entry = self._entries.get(token_id)
        if entry is None or seq <= entry.version:
            return  # nothing kept, or read after this event committed: it holds it
        if unshown:
            self._advance(entry, seq)
        else:
            self._drop(token_id)

    def _pages_changed(self, token_id: int, seq: int) -> None:
        for page_key, page in list(self._pages.items()):
            if page.covers(token_id) and seq > page.seq:
                self._drop_page(page_key)
        for key, reading in self._reading.items():
            if key[0] == "page" and key[1] < token_id:
                reading.floor = max(reading.floor, seq)

    # -- reads -----------------------------------------------------------------------------

    async def agent(self, token_id: int) -> Entry:
        """The agent's entry; ``UnknownAgent`` if there is none."""
        if not 0 <= token_id <= MAX_STORED_TOKEN_ID:
            raise UnknownAgent(token_id)
        entry = self._entries.get(token_id)
        if entry is not None:
            self._entries.move_to_end(token_id)
            self.counters.hits += 1
            return entry.present()
        self.counters.misses += 1
        entry = await self._shared(
            ("agent", token_id), lambda: self._read(token_id), self._keep_entry
        )
        return entry.present()

    async def owner(self, token_id: int) -> str:
        """The agent's owner as this process holds it: for reads, never for decisions."""
        return (await self.agent(token_id)).owner

    async def extra(self, token_id: int, key: Hashable, load: Loader) -> Any:
        """What ``load`` reads of the agent's rows (JSON-able; None: nothing), kept with the
        agent and dropped with it by any event of the agent."""
        entry = await self.agent(token_id)
        held = entry.extras.get(key)
        if held is not None:
            self.counters.hits += 1
            return held[0]
        self.counters.misses += 1

        def keep(value: Any) -> None:
            if value is not None and self._entries.get(token_id) is entry:
                self._keep_extra(entry, key, value)

        return await self._shared(("extra", token_id, key), lambda: self._load(load), keep)

    async def generation_token(self, generation_id: str) -> int:
        """The token id of a generation's agent (it never changes while the generation
        exists); ``UnknownGeneration``."""
        token_id = self._generations.get(generation_id)
        if token_id is not None:
            self._generations.move_to_end(generation_id)
            return token_id
        async with self.engine.connect() as conn:
            token_id = await generation_token(conn, generation_id)
        if self.tracking:
            self._generations[generation_id] = token_id
            if len(self._generations) > MAX_GENERATIONS:
                self._generations.popitem(last=False)
        return token_id

    async def page(self, after: int, limit: int) -> Page:
        """The list's page of ``limit`` agents after token id ``after``."""
        key = (after, limit)
        page = self._pages.get(key)
        if page is not None:
            self._pages.move_to_end(key)
            self.counters.hits += 1
            return page
        self.counters.misses += 1
        return await self._shared(
            ("page", after, limit), lambda: self._read_page(after, limit), self._keep_page
        )

    async def _shared(
        self, key: tuple[Any, ...], read: Callable[[], Awaitable[T]], keep: Callable[[T], None]
    ) -> T:
        """One read per key at a time, shared by the readers that come while it runs."""
        if not self.tracking:
            return await read()
        reading = self._reading.get(key)
        if reading is None:
            reading = self._reading[key] = _Reading(asyncio.ensure_future(read()))
            reading.future.add_done_callback(lambda _: self._read_done(key, reading, keep))
        result: T = await asyncio.shield(reading.future)
        return result

    def _read_done(
        self, key: tuple[Any, ...], reading: _Reading, keep: Callable[[T], None]
    ) -> None:
        if self._reading.get(key) is reading:
            del self._reading[key]
        else:
            reading.floor = DETACHED  # untracked meanwhile
        future = reading.future
        if future.cancelled() or future.exception() is not None:  # its readers get it
            return
        result = future.result()
        if self.tracking and _version(result) >= reading.floor:
            keep(result)

    async def _read(self, token_id: int) -> Entry:
        self.counters.reads += 1
        async with self.engine.connect() as conn:
            for _ in range(READ_TRIES):
                version = int(await conn.scalar(_VERSION, {"token_id": token_id}) or NO_EVENT)
                state: dict[str, Any] | None
                try:
                    state = await agent_state(conn, token_id)
                except UnknownAgent:
                    state = None
                if await conn.scalar(_VERSION, {"token_id": token_id}) == version:
                    return Entry.of(token_id, version, state)
        # Writes kept overtaking the read: the last one is served, with no version, unkept.
        return Entry.of(token_id, UNVERSIONED, state)

    async def _load(self, load: Loader) -> Any:
        self.counters.reads += 1
        async with self.engine.connect() as conn:
            return await load(conn)

    async def _read_page(self, after: int, limit: int) -> Page:
        self.counters.reads += 1
        async with self.engine.connect() as conn:
            seq = int(await conn.scalar(_NEWEST) or NO_EVENT)
            summaries, more = await agent_page(conn, after, limit)
        last = summaries[-1]["packageTokenId"] if more else MAX_STORED_TOKEN_ID
        body = kept_json({"agents": summaries, "next": last if more else None})
        return Page(after, limit, last, seq, body, content_etag(body))

    # -- memory ----------------------------------------------------------------------------

    def _keep_entry(self, entry: Entry) -> None:
        if entry.version == UNVERSIONED:
            return
        self._drop(entry.token_id)
        self._entries[entry.token_id] = entry
        self.bytes += entry.size
        self._evict()

    def _keep_extra(self, entry: Entry, key: Hashable, value: Any) -> None:
        if key in entry.extras:
            return
        size = EXTRA_OVERHEAD + len(orjson.dumps(value))
        entry.extras[key] = (value, size)
        entry.size += size
        self.bytes += size
        self._evict()

    def _keep_page(self, page: Page) -> None:
        key = (page.after, page.limit)
        if key in self._pages:
            return
        self._pages[key] = page
        self.bytes += page.size
        while len(self._pages) > MAX_PAGES:
            self._drop_page(next(iter(self._pages)))
        self._evict()

    def _advance(self, entry: Entry, seq: int) -> None:
        entry.version = seq
        freed = sum(size for _, size in entry.extras.values())
        entry.extras.clear()
        entry.size -= freed
        self.bytes -= freed
        self.counters.advanced += 1

    def _drop(self, token_id: int) -> None:
        entry = self._entries.pop(token_id, None)
        if entry is not None:
            self.bytes -= entry.size
            self.counters.dropped += 1

    def _drop_page(self, key: tuple[int, int]) -> None:
        self.bytes -= self._pages.pop(key).size

    def _evict(self) -> None:
        """Least recently used first; pages, the cheaper to read again, before agents."""
        while self.bytes > self.budget and (self._entries or self._pages):
            if self._pages:
                self._drop_page(next(iter(self._pages)))
            else:
                self.bytes -= self._entries.popitem(last=False)[1].size
            self.counters.evictions += 1

    def clear(self) -> None:
        """Forget every copy (a reorg rewrote history: cheaper to read again than to sort)."""
        self._entries.clear()
        self._pages.clear()
        self._generations.clear()
        for reading in self._reading.values():
            reading.floor = DETACHED
        self.bytes = 0

    def kept(self) -> tuple[list[Entry], list[Page]]:
        """The copies held now, agents and pages (for checks against the database)."""
        return list(self._entries.values()), list(self._pages.values())

    def report(self) -> dict[str, Any]:
        """What ``/v1/status`` shows of it."""
        counters = self.counters
        return {
            "tracking": self.tracking,
            "agents": len(self._entries),
            "pages": len(self._pages),
            "bytes": self.bytes,
            "budgetBytes": self.budget,
            "position": self.position,
            "hits": counters.hits,
            "misses": counters.misses,
            "hitRate": counters.hit_rate(),
            "reads": counters.reads,
            "evictions": counters.evictions,
            "dropped": counters.dropped,
            "advanced": counters.advanced,
        }


def _version(result: Any) -> int:
    """The newest event a read's result holds, for ``_Reading.floor``."""
    if isinstance(result, Entry):
        return result.version
    if isinstance(result, Page):
        return result.seq
    return NO_EVENT  # an extra: kept unless an event of its agent went by (DETACHED)
