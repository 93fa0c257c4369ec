"""The roles one ``inftd run`` process can take (``--role`` / ``daemon.roles``):

    indexer   follows the chain. On PostgreSQL one process leads (an advisory lock, see
              leader.py) and the others stand by, taking over from the persisted cursor.
    worker    the generation service (claims jobs with SKIP LOCKED, APScheduler
              housekeeping: lease reaper, retries, probes, learning, cleanup) and the push
              dispatcher (leased). Any number run side by side.
    relayer   the mint relayer of INFTD_MINTER_KEY: one sender per key (an advisory lock
              keyed on the key's address), the others stand by.
    api       the HTTP API and WebSockets; the only role that listens on a port. Any number.

``all`` is every role, the default and the only choice on SQLite: several processes
writing one SQLite file fail with "database is locked", so split roles need PostgreSQL.
The hub (events to WebSocket clients and to the worker's wake-ups) runs with api or worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from inftd.daemon.config import ROLES, Settings
from inftd.daemon.errors import ConfigError
from inftd.daemon.process.heartbeat import Facts, Heartbeat
from inftd.daemon.process.leader import LEADER, Leadership, Work, libpq_dsn, lock_key
from inftd.daemon.relayer.relayer import minter_account, run_relayer
from inftd.daemon.relayer.store import open_nonce_count
from inftd.daemon.runtime import Runtime
from inftd.store.db import is_sqlite

log = logging.getLogger(__name__)

HUB_ROLES = frozenset({"api", "worker"})  # the roles that read events as they are stored
FAILING_AFTER = 3  # indexer syncs failed in a row before `inftd status` calls it a problem


def roles_of(settings: Settings) -> tuple[str, ...]:
    """The roles this process runs; a split of them on SQLite is a config error."""
    roles = tuple(settings.daemon.roles)
    if is_sqlite(settings.database) and set(roles) != set(ROLES):
        raise ConfigError(
            "daemon.roles",
            f"{','.join(roles)} needs PostgreSQL (INFTD_DATABASE_URL): on SQLite one process "
            "runs all roles, since several processes writing one SQLite file get "
            "'database is locked'",
        )
    return roles


class Elections:
    """The leaderships of one process: none on SQLite, where it is the only process."""

    def __init__(self, runtime: Runtime, beat: Heartbeat) -> None:
        self.runtime = runtime
        self.beat = beat
        self.postgres = runtime.engine.dialect.name == "postgresql"

    async def enter(self, role: str, *key: str) -> Leadership | None:
        """A leadership for ``role``, tried once now so the first process up leads."""
        if not self.postgres:
            self.beat.set(role, state=LEADER)
            return None
        leadership = Leadership(
            libpq_dsn(self.runtime.engine),
            role,
            lock_key(*key),
            self.runtime.settings.daemon.leader_retry,
            on_state=lambda state: self.beat.set(role, state=state),
        )
        await leadership.try_lead()
        return leadership


async def led(leadership: Leadership | None, work: Work, stop: asyncio.Event) -> None:
    if leadership is None:
        await work(stop)
    else:
        await leadership.run(work, stop)


async def run_indexer(runtime: Runtime, stop: asyncio.Event) -> None:
    try:
        await runtime.indexer.run(stop)
    except Exception:
        # The API stays up so operators can read /v1/status, which says why.
        log.exception("the indexer stopped")


async def indexer_role(elections: Elections) -> Work:
    runtime = elections.runtime

    async def health() -> Facts:
        stats = runtime.indexer.stats
        failing = stats.failing if stats.failures >= FAILING_AFTER else None
        return {"halted": stats.halted, "failing": failing}

    elections.beat.probes["indexer"] = health
    leadership = await elections.enter("indexer", "indexer")
    return lambda stop: led(leadership, lambda s: run_indexer(runtime, s), stop)


async def relayer_role(elections: Elections) -> Work | None:
    """The relayer of the minter key, or None (no key, or relayer.enabled off)."""
    runtime, beat = elections.runtime, elections.beat
    account = minter_account(runtime)
    if account is None or not runtime.settings.relayer.enabled:
        beat.set("relayer", state="off")
        log.info("mint relayer off: %s", "disabled" if account else "no INFTD_MINTER_KEY")
        return None
    signer = account.address
    beat.set("relayer", signer=signer)
    leadership = await elections.enter("relayer", "relayer", signer.lower())

    async def in_flight() -> Facts:
        if leadership is not None and not leadership.leading:
            return {"inFlight": None}
        async with runtime.engine.connect() as conn:
            return {"inFlight": await open_nonce_count(conn, signer)}

    beat.probes["relayer"] = in_flight
    return lambda stop: led(leadership, lambda s: run_relayer(runtime, s), stop)


def describe(roles: Sequence[str]) -> str:
    return ",".join(roles)
