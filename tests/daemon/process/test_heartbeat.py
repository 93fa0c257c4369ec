"""Heartbeat rows and what ``cluster_report`` reads from them, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.daemon.process.cluster import cluster_report
from inftd.daemon.process.heartbeat import STALE_AFTER, Facts, Heartbeat
from inftd.daemon.process.leader import LEADER, STANDBY
from inftd.store.models import Agent, DaemonProcess, Generation, utcnow
from tests.support.state import migrated

INTERVAL = 1.0


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    async with migrated(database_url) as engine:
        yield engine


async def rows(engine: AsyncEngine) -> list[DaemonProcess]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(DaemonProcess))).all())  # type: ignore[arg-type]


async def test_a_beat_writes_the_row_then_updates_it_and_remove_deletes_it(
    engine: AsyncEngine,
) -> None:
    beat = Heartbeat(engine, "h:1:a", ["indexer", "worker"], INTERVAL)
    beat.set("indexer", state=LEADER)

    async def running() -> Facts:
        return {"jobsRunning": 2}

    async def broken() -> Facts:
        raise RuntimeError("no figure this time")

    beat.probes |= {"worker": running, "relayer": broken}
    await beat.beat()
    (first,) = await rows(engine)
    assert (first.id, first.roles, first.heartbeat_interval) == ("h:1:a", ["indexer", "worker"], 1)
    assert first.facts == {"indexer": {"state": LEADER}, "worker": {"jobsRunning": 2}}

    beat.set("indexer", state=STANDBY)
    await beat.beat()
    (second,) = await rows(engine)
    assert second.facts["indexer"] == {"state": STANDBY}
    assert second.heartbeat_at >= first.heartbeat_at
    assert second.started_at == first.started_at

    await beat.remove()
    assert await rows(engine) == []


async def beating(engine: AsyncEngine, ident: str, roles: list[str], **facts: Facts) -> None:
    beat = Heartbeat(engine, ident, roles, INTERVAL)
    for role, values in facts.items():
        beat.set(role, **values)
    await beat.beat()


async def report(engine: AsyncEngine, later: float = 0) -> dict[str, object]:
    async with engine.connect() as conn:
        return await cluster_report(conn, utcnow() + timedelta(seconds=later))


async def test_the_report_names_leaders_and_standbys_and_is_healthy(engine: AsyncEngine) -> None:
    await beating(
        engine,
        "a",
        ["indexer", "relayer"],
        indexer={"state": LEADER},
        relayer={"state": LEADER, "signer": "0xM"},
    )
    await beating(
        engine,
        "b",
        ["indexer", "relayer"],
        indexer={"state": STANDBY},
        relayer={"state": STANDBY, "signer": "0xM"},
    )
    await beating(engine, "c", ["worker", "api"])
    found = await report(engine)
    assert found["problems"] == []
    assert found["roles"] == {
        "indexer": {"leader": "a", "standbys": ["b"], "halted": None, "failing": None},
        "worker": {"alive": ["c"], "jobsRunning": 0},
        "relayer": {"signers": {"0xM": {"leader": "a", "standbys": ["b"], "inFlight": None}}},
        "api": {"alive": ["c"]},
    }


async def test_stale_processes_count_for_nothing(engine: AsyncEngine) -> None:
    await beating(engine, "a", ["indexer", "worker", "api"], indexer={"state": LEADER})
    assert (await report(engine))["problems"] == []
    later = await report(engine, later=STALE_AFTER * INTERVAL + 1)
    assert [p["alive"] for p in later["processes"]] == [False]  # type: ignore[index]
    assert later["problems"] == ["no live inftd process (no fresh heartbeat)"]


async def test_work_without_its_role_is_a_problem(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            insert(Agent).values(
                token_id=1, package_type=0, owner="0x0", created_block=1, owner_since_block=1
            )
        )
        await conn.execute(
            insert(Generation).values(
                id="g1", token_id=1, kind="text", prompt="p", source="api", status="queued"
            )
        )
    await beating(engine, "a", ["indexer", "api"], indexer={"state": STANDBY})
    assert (await report(engine))["problems"] == [
        "no live indexer leader",
        "1 job(s) queued and no live worker",
    ]
    await beating(engine, "b", ["indexer"], indexer={"state": LEADER, "halted": "reorg too deep"})
    assert (await report(engine))["problems"] == [
        "the indexer halted: reorg too deep",
        "1 job(s) queued and no live worker",
    ]
    await beating(engine, "b", ["indexer"], indexer={"state": LEADER, "failing": "database locked"})
    assert (await report(engine))["problems"] == [
        "the indexer's syncs fail: database locked",
        "1 job(s) queued and no live worker",
    ]
