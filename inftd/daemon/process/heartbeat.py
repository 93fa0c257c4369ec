"""This process's row in ``daemon_processes``: who it is, its roles and what they are
doing, written every ``daemon.heartbeat_interval`` seconds and removed on a clean stop.

``inftd status`` and ``/v1/status`` read the rows: one whose ``heartbeat_at`` is older than
``STALE_AFTER`` of its own intervals belongs to a process that died (SIGKILL, lost host).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, update
from sqlalchemy.ext.asyncio import AsyncEngine

import inftd
from inftd.store.models import DaemonProcess, utcnow

log = logging.getLogger(__name__)

STALE_AFTER = 3  # heartbeat intervals without a write before a process counts as gone
FORGET_AFTER = timedelta(days=1)  # rows of dead processes are deleted after this long

Facts = dict[str, Any]
Probe = Callable[[], Awaitable[Facts]]  # more facts of a role, read at each beat


class Heartbeat:
    def __init__(
        self, engine: AsyncEngine, ident: str, roles: Sequence[str], interval: float
    ) -> None:
        self.engine = engine
        self.id = ident
        self.roles = list(roles)
        self.interval = interval
        self.started_at = utcnow()
        self.facts: dict[str, Facts] = {}  # role -> its facts, set by the role's code
        self.probes: dict[str, Probe] = {}  # role -> more facts, read at each beat
        self._changed = asyncio.Event()

    def set(self, role: str, **facts: Any) -> None:
        """Change a role's facts; a change is written at once, not at the next beat."""
        new = {**self.facts.get(role, {}), **facts}
        if new != self.facts.get(role):
            self.facts[role] = new
            self._changed.set()

    async def current_facts(self) -> dict[str, Facts]:
        facts = {role: dict(values) for role, values in self.facts.items()}
        for role, probe in self.probes.items():
            try:
                more = await probe()
            except Exception as exc:  # a fact missing this once; the beat itself goes on
                log.warning("heartbeat: facts of %s unavailable: %s", role, exc)
                continue
            facts.setdefault(role, {}).update(more)
        return facts

    async def beat(self) -> None:
        row = {
            "host": socket.gethostname()[:255],
            "pid": os.getpid(),
            "roles": self.roles,
            "version": inftd.__version__,
            "heartbeat_interval": self.interval,
            "facts": await self.current_facts(),
            "heartbeat_at": utcnow(),
        }
        async with self.engine.begin() as conn:  # only this process writes its row
            found = await conn.execute(
                update(DaemonProcess).where(DaemonProcess.id == self.id).values(**row)
            )
            if found.rowcount == 0:
                await conn.execute(
                    insert(DaemonProcess).values(id=self.id, started_at=self.started_at, **row)
                )

    async def forget_dead(self) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(DaemonProcess).where(DaemonProcess.heartbeat_at < utcnow() - FORGET_AFTER)
            )

    async def run(self) -> None:
        """Beats until cancelled: every interval, and at once when a fact changed."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self.interval)
            self._changed.clear()
            try:
                await self.beat()
            except Exception as exc:  # the database is away: the row goes stale, and says so
                log.warning("heartbeat not written: %s", exc)

    async def remove(self) -> None:
        try:
            async with self.engine.begin() as conn:
                await conn.execute(delete(DaemonProcess).where(DaemonProcess.id == self.id))
        except Exception as exc:
            log.warning("heartbeat row not removed (it goes stale instead): %s", exc)


def is_alive(heartbeat_at: datetime, interval: float, now: datetime) -> bool:
    return (now - heartbeat_at).total_seconds() <= STALE_AFTER * interval
