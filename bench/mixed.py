"""The mixed run of ``bench.api``: readers of ``GET /v1/agents/{id}`` while the chain and the
API write, and how stale what they read is.

Readers (one process, N keep-alive connections, spread over the servers) read the agents
in turn for a fixed time, each answer's version (its ``ETag``: the seq of the agent's last
event) noted with when the request was sent. Meanwhile a writer process buys packages and
tops the read agents up on chain (the indexer of the writing process applies them), asks
for generations (its worker runs them on the offline provider) and adjusts credits through
the API of the writing process. After each adjustment it reads the agent back from the
process it wrote to, and from the other (with ``?minSeq=``): an answer older than the
writer's own write is a miss, and there must be none.

Staleness, per event of a read agent: from the event's insert (its ``created_at``, a bound
on its commit) to the start of the last read of that agent, by that server, that began
after it and still answered an older version; 0 where no read after the event was stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any, NamedTuple

import aiohttp

from bench.api import (
    OPERATOR_KEY,
    RUN_TIMEOUT,
    SPAWN,
    BenchError,
    Server,
    child,
    percentile,
    raise_fd_limit,
    receive,
)

SECONDS = 10.0  # of each mixed run
OPERATOR = {"Authorization": f"Bearer {OPERATOR_KEY}"}
GENERATION = {"kind": "text", "prompt": "a harbour at dawn, in three lines"}
PACE = {"buy": 0.5, "top_up": 0.2, "generate": 0.3, "adjust": 0.2}  # seconds between writes
NO_VERSION = -1
READER_NICENESS = 10  # the readers yield the CPU to the writer and the daemon
SETTLE = 1.0  # seconds the observer watches after the writes, for their last commits


class Read(NamedTuple):
    server: int  # index into the servers read from
    token: int
    started: float  # wall clock (time.time): comparable with the events' created_at
    seconds: float
    version: int  # of the answer's ETag; NO_VERSION without one
    status: int


class OwnRead(NamedTuple):
    """A read of the agent just adjusted: its total must include the adjustment."""

    server: int
    written: int  # totalCredits the adjustment answered
    read: int  # totalCredits the read answered
    seconds: float  # the read's own time (with ?minSeq= on another process: its wait)


# -- readers -------------------------------------------------------------------------------


def etag_version(response: aiohttp.ClientResponse) -> int:
    etag = response.headers.get("ETag", "")
    return int(etag.strip('"')) if etag.strip('"').isdigit() else NO_VERSION


async def _read_for(
    urls: Sequence[str], tokens: Sequence[int], connections: int, seconds: float
) -> list[Read]:
    reads: list[Read] = []
    deadline = time.monotonic() + seconds

    async def one(index: int, session: aiohttp.ClientSession, server: int) -> None:
        for n in itertools.count(index):
            if time.monotonic() >= deadline:
                return
            token = tokens[n % len(tokens)]
            started, began = time.time(), time.perf_counter()
            async with session.get(f"{urls[server]}/v1/agents/{token}") as response:
                await response.read()
            reads.append(
                Read(
                    server,
                    token,
                    started,
                    time.perf_counter() - began,
                    etag_version(response),
                    response.status,
                )
            )

    timeout = aiohttp.ClientTimeout(total=None, sock_read=RUN_TIMEOUT)
    connector = aiohttp.TCPConnector(limit=connections, keepalive_timeout=RUN_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        gc.freeze()  # the tool's own full collections are not the server's latency
        await asyncio.gather(*(one(i, session, i % len(urls)) for i in range(connections)))
    return reads


def reader(
    messages: Queue[Any],
    urls: list[str],
    tokens: list[int],
    connections: int,
    seconds: float,
    barrier: Barrier,
) -> None:
    """The readers (a child process's target), at a lower CPU priority: on a machine that
    runs the load too, readers that take every cycle left would starve the writer and the
    daemon's indexer, and no write would keep its pace."""
    raise_fd_limit()
    os.nice(READER_NICENESS)
    barrier.wait()
    messages.put(("reads", asyncio.run(_read_for(urls, tokens, connections, seconds))))


# -- the writer ----------------------------------------------------------------------------


@dataclass
class Writes:
    counts: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)  # answers other than success
    own: list[OwnRead] = field(default_factory=list)


class Writer:
    def __init__(
        self, urls: Sequence[str], anvil_url: str, package: str, tokens: Sequence[int]
    ) -> None:
        self.urls = urls
        self.anvil_url = anvil_url
        self.package = package
        self.tokens = tokens
        self.writes = Writes()
        self._turn = itertools.count()

    def token(self) -> int:
        return self.tokens[next(self._turn) % len(self.tokens)]

    async def run(self, seconds: float) -> Writes:
        deadline = time.monotonic() + seconds
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(
                *(self._every(kind, pace, deadline, session) for kind, pace in PACE.items())
            )
        return self.writes

    async def _every(
        self, kind: str, pace: float, deadline: float, session: aiohttp.ClientSession
    ) -> None:
        write: Callable[[aiohttp.ClientSession], Any] = getattr(self, kind)
        while time.monotonic() < deadline:
            began = time.monotonic()
            await write(session)
            self.writes.counts[kind] += 1
            await asyncio.sleep(max(0.0, pace - (time.monotonic() - began)))

    async def buy(self, session: aiohttp.ClientSession) -> None:
        from bench.backfill import PURCHASE_SELECTOR, transact
        from inftd.daemon.cli.devnet import BUYER
        from inftd.daemon.config import DEFAULT_PACKAGES

        data = PURCHASE_SELECTOR + bytes(32)  # package type 0, ABI-encoded
        tx = {
            "from": BUYER.address,
            "to": self.package,
            "data": "0x" + data.hex(),
            "value": hex(DEFAULT_PACKAGES[0].price_wei),
        }
        await asyncio.to_thread(transact, self.anvil_url, tx)

    async def top_up(self, session: aiohttp.ClientSession) -> None:
        from bench.api import top_up

        await asyncio.to_thread(top_up, self.anvil_url, self.package, self.token())

    async def generate(self, session: aiohttp.ClientSession) -> None:
        path = f"{self.urls[0]}/v1/agents/{self.token()}/generations"
        async with session.post(path, json=GENERATION, headers=OPERATOR) as response:
            await response.read()
            if response.status != 202:
                self.writes.refused[f"generate {response.status}"] += 1

    async def adjust(self, session: aiohttp.ClientSession) -> None:
        """+1 credit through the writing process; read back there and from the others."""
        token = self.token()
        body = {"amount": 1, "note": "bench", "idempotencyKey": f"bench-{time.time_ns()}"}
        path = f"{self.urls[0]}/v1/agents/{token}/credits/adjust"
        async with session.post(path, json=body, headers=OPERATOR) as response:
            answer = await response.json()
            seq = response.headers["X-Inftd-Seq"]
        if response.status != 200:
            self.writes.refused[f"adjust {response.status}"] += 1
            return
        for server, url in enumerate(self.urls):
            query = "" if server == 0 else f"?minSeq={seq}"
            began = time.perf_counter()
            async with session.get(f"{url}/v1/agents/{token}{query}") as response:
                read = await response.json()
            took = time.perf_counter() - began
            self.writes.own.append(
                OwnRead(server, answer["totalCredits"], read["totalCredits"], took)
            )


def writer(
    messages: Queue[Any],
    urls: list[str],
    anvil_url: str,
    package: str,
    tokens: list[int],
    seconds: float,
    barrier: Barrier,
) -> None:
    """The writer (a child process's target)."""
    import eth_abi  # noqa: F401

    import bench.backfill  # noqa: F401 - web3 and friends: seconds of imports, before the clock

    barrier.wait()
    writes = asyncio.run(Writer(urls, anvil_url, package, tokens).run(seconds))
    messages.put(("writes", writes))


# -- commits, as an observer sees them -----------------------------------------------------

OBSERVE_POLL = 0.0005  # seconds between SQLite's data_version checks


def observer(messages: Queue[Any], database_url: str, seconds: float, barrier: Barrier) -> None:
    """When each event became visible to another connection, as a wall-clock time (a child
    process's target): on PostgreSQL at its commit's NOTIFY, on SQLite at the first check
    of ``PRAGMA data_version`` (every half millisecond) after it."""
    from inftd.store.db import is_sqlite

    watch = _watch_sqlite if is_sqlite(database_url) else _watch_postgres
    barrier.wait()
    messages.put(("commits", watch(database_url, time.monotonic() + seconds + SETTLE)))


def _watch_sqlite(database_url: str, until: float) -> dict[int, float]:
    import sqlite3

    from sqlalchemy.engine import make_url

    conn = sqlite3.connect(make_url(database_url).database or "", isolation_level=None)
    seen: dict[int, float] = {}
    last = _newest(conn.execute("SELECT max(seq) FROM events").fetchone())
    version = None
    while time.monotonic() < until:
        now = conn.execute("PRAGMA data_version").fetchone()[0]
        if now != version:
            version, at = now, time.time()
            for (seq,) in conn.execute("SELECT seq FROM events WHERE seq > ?", (last,)):
                seen[seq], last = at, max(last, seq)
        time.sleep(OBSERVE_POLL)
    conn.close()
    return seen


def _watch_postgres(database_url: str, until: float) -> dict[int, float]:
    import psycopg

    from inftd.agents.events import NOTIFY_CHANNEL
    from inftd.store.db import sync_url

    dsn = sync_url(database_url).set(drivername="postgresql").render_as_string(False)
    seen: dict[int, float] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
        last = _newest(conn.execute("SELECT max(seq) FROM events").fetchone())
        while time.monotonic() < until:
            # Taken out of the generator first: it holds the connection while it runs.
            if not list(conn.notifies(timeout=0.05, stop_after=1)):
                continue
            at = time.time()
            for (seq,) in conn.execute("SELECT seq FROM events WHERE seq > %s", (last,)):
                seen[seq], last = at, max(last, seq)
    return seen


def _newest(row: Any) -> int:
    return int(row[0] or 0)


# -- staleness -----------------------------------------------------------------------------


class Written(NamedTuple):
    seq: int
    token: int
    kind: str
    inserted: float  # wall clock of its insert (its created_at): before its commit
    committed: float  # when the observer saw it: just after its commit


def events_of(
    database_url: str, tokens: Sequence[int], since: float, commits: dict[int, float]
) -> list[Written]:
    from datetime import UTC, datetime

    from sqlalchemy import select

    from inftd.store.db import create_sync_engine
    from inftd.store.models import EventRecord

    engine = create_sync_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(
                    EventRecord.seq, EventRecord.token_id, EventRecord.type, EventRecord.created_at
                )
                .where(EventRecord.token_id.in_(list(tokens)))
                .where(EventRecord.created_at >= datetime.fromtimestamp(since, UTC))
                .order_by(EventRecord.seq)
            ).all()
    finally:
        engine.dispose()

    def wall(value: datetime) -> float:
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()

    return [
        Written(r.seq, r.token_id, r.type, wall(r.created_at), commits[r.seq])
        for r in rows
        if r.seq in commits  # committed while the observer watched
    ]


def staleness(
    reads: Sequence[Read], events: Sequence[Written], server: int, start: Callable[[Written], float]
) -> list[float]:
    """Per event: seconds from ``start`` of it (its commit, or its insert) to the start of
    the last read by ``server`` that began after that and answered an older version (0 if
    none did)."""
    by_token: dict[int, list[Read]] = defaultdict(list)
    for read in reads:
        if read.server == server and read.status == 200:
            by_token[read.token].append(read)
    for listed in by_token.values():
        listed.sort(key=lambda r: r.started)
    figures = []
    for event in events:
        at = start(event)
        stale = [
            r.started - at
            for r in by_token.get(event.token, ())
            # NO_VERSION: a read that writes kept overtaking, served fresh from SQL
            if r.started >= at and NO_VERSION < r.version < event.seq
        ]
        figures.append(max(stale, default=0.0))
    return figures


# -- one run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MixedRun:
    connections: int
    servers: int
    seconds: float
    reads: list[Read]
    writes: Writes
    stale: dict[int, list[float]]  # server index → staleness per event, from its commit
    stale_inserted: dict[int, list[float]]  # the same from its insert: an upper bound
    events: int

    def statuses(self) -> Counter[int]:
        return Counter(r.status for r in self.reads)

    def rate(self) -> float:
        return len(self.reads) / self.seconds

    def latency(self, p: float) -> float:
        return percentile([r.seconds for r in self.reads], p)

    def misses(self) -> int:
        """Reads older than the writer's own write (the total it was answered)."""
        return sum(1 for own in self.writes.own if own.read < own.written)


def run_mixed(
    servers: Sequence[Server],
    database_url: str,
    anvil_url: str,
    package: str,
    tokens: list[int],
    connections: int,
    seconds: float = SECONDS,
) -> MixedRun:
    """Readers and the writer at once, in their own processes; the run's figures."""
    urls = [s.url for s in servers]
    messages: Queue[Any] = SPAWN.Queue()
    barrier = SPAWN.Barrier(3)
    since = time.time()
    with contextlib.ExitStack() as stack:
        processes = [
            stack.enter_context(child(observer, messages, database_url, seconds, barrier)),
            stack.enter_context(
                child(reader, messages, urls, tokens, connections, seconds, barrier)
            ),
            stack.enter_context(
                child(writer, messages, urls, anvil_url, package, tokens, seconds, barrier)
            ),
        ]
        got = dict(receive(messages, processes, RUN_TIMEOUT) for _ in processes)
    reads: list[Read] = got["reads"]
    if not reads:
        raise BenchError("the readers read nothing")
    events = events_of(database_url, tokens, since, got["commits"])
    servers_read = range(len(servers))
    stale = {i: staleness(reads, events, i, lambda e: e.committed) for i in servers_read}
    inserted = {i: staleness(reads, events, i, lambda e: e.inserted) for i in servers_read}
    return MixedRun(
        connections, len(servers), seconds, reads, got["writes"], stale, inserted, len(events)
    )
