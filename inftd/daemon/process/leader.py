"""One leader among processes, by a PostgreSQL session-level advisory lock.

A process that wants to lead opens a connection of its own and calls
``pg_try_advisory_lock``; while it holds the lock it runs the work, and every
``retry`` seconds it checks that connection. Standbys try the lock every ``retry``
seconds. When a leader dies its connection drops and PostgreSQL frees the lock, so a
standby leads within about ``retry`` seconds and resumes from what the database holds.

Fencing: a leader whose lock connection fails a check cancels its work at once, before
anyone else can hold the lock. The server side of the lock session is told (``SESSION``)
to close a silent client's session only after ``SERVER_GIVES_UP`` seconds, longer than the
leader needs to notice (``retry`` <= 5 s, plus ``CHECK_TIMEOUT``), so two leaders never
both hold the lock. In the gap before the old leader notices, its in-flight transaction
may still commit; what protects us then is the data: chain events are unique by
(tx hash, log index, block hash) and projections apply once per event key, and the
relayer stores each signed mint before broadcast and the contract mints a requestKey once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import psycopg
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.store.db import sync_url

log = logging.getLogger(__name__)

CHECK_TIMEOUT = 3.0  # seconds a lock check may take before the lock counts as lost
CONNECT_TIMEOUT = 10  # seconds to open the lock connection
SERVER_GIVES_UP = 15  # seconds: PostgreSQL closes a lock session whose client went silent
SESSION = (
    f"-c tcp_user_timeout={SERVER_GIVES_UP * 1000} -c tcp_keepalives_idle=5 "
    "-c tcp_keepalives_interval=2 -c tcp_keepalives_count=5 -c application_name=inftd-lock"
)
LEADER, STANDBY = "leader", "standby"

Work = Callable[[asyncio.Event], Coroutine[Any, Any, None]]  # runs until the event is set
OnState = Callable[[str], None]  # told LEADER or STANDBY as it changes


def lock_key(*parts: str) -> int:
    """A signed 64-bit advisory lock key for a name (``lock_key("relayer", address)``);
    advisory locks are per database, so two databases on one server never collide."""
    digest = hashlib.sha256(":".join(("inftd", *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def libpq_dsn(engine: AsyncEngine) -> str:
    url = sync_url(engine.url.render_as_string(hide_password=False))
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


class Leadership:
    """Who leads ``name``: ``run(work, stop)`` runs ``work`` only while holding the lock."""

    def __init__(
        self, dsn: str, name: str, key: int, retry: float, on_state: OnState = lambda s: None
    ) -> None:
        self.dsn = dsn
        self.name = name
        self.key = key
        self.retry = retry
        self.on_state = on_state
        self.leading = False
        self._told: bool | None = None  # the state last logged
        self._conn: psycopg.AsyncConnection[tuple[object, ...]] | None = None
        self._strays: set[asyncio.Task[object]] = set()  # checks given up on, still ending

    async def try_lead(self) -> bool:
        """One try at the lock (the connection opened if needed); True while held."""
        if self.leading:
            return True
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT + CHECK_TIMEOUT):
                if self._conn is None or self._conn.closed:
                    self._conn = await psycopg.AsyncConnection.connect(
                        self.dsn, autocommit=True, options=SESSION, connect_timeout=CONNECT_TIMEOUT
                    )
                cursor = await self._conn.execute(
                    "SELECT pg_try_advisory_lock(%s::bigint)", (self.key,)
                )
                row = await cursor.fetchone()
        except (psycopg.Error, OSError, TimeoutError) as exc:
            log.warning("%s lock: cannot try it: %s", self.name, exc)
            await self.close()
            return False
        self._set(bool(row and row[0]))
        return self.leading

    async def run(self, work: Work, stop: asyncio.Event) -> None:
        """Stand by until leading, lead until the lock is lost, stand by again... until
        ``stop``; then the lock is given up with its connection."""
        try:
            while not stop.is_set():
                if await self.try_lead():
                    await self._lead(work, stop)
                else:
                    await _pause(stop, self.retry)
        finally:
            await self.close()

    async def _lead(self, work: Work, stop: asyncio.Event) -> None:
        task = asyncio.create_task(work(stop), name=self.name)
        lost = False
        try:
            # Work that ends by itself (a halted indexer) keeps the lock: a standby would
            # only halt the same way; /v1/status and `inftd status` say why.
            while not stop.is_set() and not lost:
                await _pause(stop, self.retry)
                lost = not stop.is_set() and not await self._alive()
        finally:
            if lost:
                log.error("%s: lock connection lost; stopping at once", self.name)
            task.cancel()  # first: its writes are transactions, a cancelled one rolls back
            await asyncio.gather(task, return_exceptions=True)
        if lost:
            await self.close()

    async def _alive(self) -> bool:
        conn = self._conn
        if conn is None or conn.closed:
            return False
        check = asyncio.create_task(conn.execute("SELECT 1"))
        done, _ = await asyncio.wait({check}, timeout=CHECK_TIMEOUT)
        if not done:
            # Not awaited: a cancelled psycopg query asks the server to cancel it, for up to
            # 10 s on a line that is cut off; the fence must not wait for that.
            check.cancel()
            self._strays.add(check)
            check.add_done_callback(self._strays.discard)
            log.warning("%s lock check: no answer within %s s", self.name, CHECK_TIMEOUT)
            return False
        if (failure := check.exception()) is not None:
            log.warning("%s lock check failed: %s", self.name, failure)
            return False
        return True

    def _set(self, leading: bool) -> None:
        if leading != self._told:
            log.info("%s: %s", self.name, "leading" if leading else "standing by")
        self.leading, self._told = leading, leading
        self.on_state(LEADER if leading else STANDBY)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if self.leading:
            self._set(False)
        if conn is not None:
            with contextlib.suppress(psycopg.Error, OSError, TimeoutError):
                async with asyncio.timeout(CHECK_TIMEOUT):  # a cut-off line never answers
                    await conn.close()
