"""The health of every process and role, read from the database, for ``inftd status`` and
``/v1/status``: heartbeats (heartbeat.py), the queue, mints, push deliveries.

Unhealthy (each one a line in ``problems``): no live process; no live indexer leader;
an indexer that halted; generation jobs queued, or push deliveries pending, with no live
worker; unsettled mints with no live relayer leader; no live API process.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from inftd.daemon.process.heartbeat import is_alive
from inftd.daemon.process.leader import LEADER, STANDBY
from inftd.store.models import DaemonProcess, Generation, Mint, MintAttempt, PushDelivery

UNSETTLED_MINTS = ("pending", "sent", "mined")


@dataclass(frozen=True)
class Process:
    id: str
    host: str
    pid: int
    roles: list[str]
    version: str
    started_at: datetime
    heartbeat_at: datetime
    age: float  # seconds since its last heartbeat
    alive: bool
    facts: dict[str, Any]

    def state(self, role: str) -> str | None:
        value = self.facts.get(role, {}).get("state")
        return value if isinstance(value, str) else None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "host": self.host,
            "pid": self.pid,
            "roles": self.roles,
            "version": self.version,
            "startedAt": self.started_at.isoformat(),
            "heartbeatAt": self.heartbeat_at.isoformat(),
            "ageSeconds": round(self.age, 3),
            "alive": self.alive,
            "facts": self.facts,
        }


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite drops the zone


async def processes(conn: AsyncConnection, now: datetime) -> list[Process]:
    rows = await conn.execute(select(DaemonProcess).order_by(DaemonProcess.started_at))
    found = []
    for row in rows:
        beat = _aware(row.heartbeat_at)
        found.append(
            Process(
                id=row.id,
                host=row.host,
                pid=row.pid,
                roles=list(row.roles),
                version=row.version,
                started_at=_aware(row.started_at),
                heartbeat_at=beat,
                age=max(0.0, (now - beat).total_seconds()),
                alive=is_alive(beat, row.heartbeat_interval, now),
                facts=dict(row.facts or {}),
            )
        )
    return found


async def _by_status(conn: AsyncConnection, column: Any) -> dict[str, int]:
    rows = await conn.execute(select(column, func.count()).group_by(column))
    return {str(status): int(count) for status, count in sorted(rows, key=lambda r: str(r[0]))}


def _roles(found: list[Process]) -> dict[str, Any]:
    live = [p for p in found if p.alive]

    def having(role: str, state: str | None = None) -> list[str]:
        return [p.id for p in live if role in p.roles and (state is None or p.state(role) == state)]

    signers: dict[str, dict[str, Any]] = {}
    for p in live:
        signer = p.facts.get("relayer", {}).get("signer")
        if "relayer" in p.roles and signer:
            entry = signers.setdefault(signer, {"leader": None, "standbys": [], "inFlight": None})
            if p.state("relayer") == LEADER:
                entry["leader"], entry["inFlight"] = p.id, p.facts["relayer"].get("inFlight")
            elif p.state("relayer") == STANDBY:
                entry["standbys"].append(p.id)
    leaders = having("indexer", LEADER)
    leader: dict[str, Any] = next((p.facts.get("indexer", {}) for p in live if p.id in leaders), {})
    running = [p.facts.get("worker", {}).get("jobsRunning") or 0 for p in live]
    return {
        "indexer": {
            "leader": leaders[0] if leaders else None,
            "standbys": having("indexer", STANDBY),
            "halted": leader.get("halted"),
            "failing": leader.get("failing"),
        },
        "worker": {"alive": having("worker"), "jobsRunning": sum(running)},
        "relayer": {"signers": signers},
        "api": {"alive": having("api")},
    }


async def cluster_report(conn: AsyncConnection, now: datetime | None = None) -> dict[str, Any]:
    """Processes, roles, queue, mints and push backlog, plus the problems they show."""
    found = await processes(conn, now or datetime.now(UTC))
    in_flight = await conn.scalar(
        select(func.count(func.distinct(MintAttempt.nonce))).where(MintAttempt.outcome.is_(None))
    )
    mints = await _by_status(conn, Mint.status)
    report = {
        "processes": [p.as_json() for p in found],
        "roles": _roles(found),
        "queue": await _by_status(conn, Generation.status),
        "mints": {
            "byStatus": mints,
            "unsettled": sum(mints.get(s, 0) for s in UNSETTLED_MINTS),
            "inFlight": int(in_flight or 0),
        },
        "push": await _by_status(conn, PushDelivery.status),
    }
    report["problems"] = problems(report)
    return report


def problems(report: dict[str, Any]) -> list[str]:
    roles, found = report["roles"], report["processes"]
    if not any(p["alive"] for p in found):
        return ["no live inftd process (no fresh heartbeat)"]
    found_problems = []
    if roles["indexer"]["leader"] is None:
        found_problems.append("no live indexer leader")
    elif roles["indexer"]["halted"]:
        found_problems.append(f"the indexer halted: {roles['indexer']['halted']}")
    elif roles["indexer"]["failing"]:
        found_problems.append(f"the indexer's syncs fail: {roles['indexer']['failing']}")
    no_worker = not roles["worker"]["alive"]
    if no_worker and report["queue"].get("queued", 0):
        found_problems.append(f"{report['queue']['queued']} job(s) queued and no live worker")
    if no_worker and report["push"].get("pending", 0):
        found_problems.append(
            f"{report['push']['pending']} push deliveries pending and no live worker"
        )
    leading = [s for s in roles["relayer"]["signers"].values() if s["leader"]]
    if report["mints"]["unsettled"] and not leading:
        found_problems.append(
            f"{report['mints']['unsettled']} mint(s) unsettled and no live relayer leader"
        )
    if not roles["api"]["alive"]:
        found_problems.append("no live API process")
    return found_problems
