"""``bench.replay``: what an engine sent, replayed through the bare driver, does the same."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update

from bench import replay
from bench.generation import overhead
from inftd.store import migrate
from inftd.store.db import create_async, is_sqlite
from inftd.store.models import Agent

OWNER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
NEW_OWNER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


def _agent(token: int) -> dict[str, Any]:
    return {
        "token_id": token,
        "package_type": 1,
        "owner": OWNER,
        "created_block": 1,
        "owner_since_block": 1,
    }


def _backend(url: str) -> str:
    return "SQLite" if is_sqlite(url) else "PostgreSQL"


async def _agents(url: str) -> list[tuple[int, str]]:
    engine = create_async(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(select(Agent.token_id, Agent.owner).order_by(Agent.token_id))
            return [(r.token_id, r.owner) for r in rows]
    finally:
        await engine.dispose()


async def _workload(url: str) -> replay.Capture:
    """Writes in two jobs: an executemany, a read, a rolled-back write, an update."""
    engine = create_async(url)
    captured = replay.Capture()
    captured.watch(engine)
    try:
        captured.next_job()
        async with engine.begin() as conn:
            await conn.execute(insert(Agent), [_agent(1), _agent(2)])
        captured.next_job()
        async with engine.connect() as conn:
            await conn.scalar(select(Agent.owner).where(Agent.token_id == 1))
        with contextlib.suppress(RuntimeError):
            async with engine.begin() as conn:
                await conn.execute(insert(Agent).values(_agent(3)))
                raise RuntimeError("rolled back")
        async with engine.begin() as conn:
            changed = update(Agent).where(Agent.token_id == 1).values(owner=NEW_OWNER)
            await conn.execute(changed)
    finally:
        await engine.dispose()
    return captured


async def test_a_replay_leaves_the_copy_as_the_workload_left_the_original(
    database_url: str,
) -> None:
    migrate.upgrade(database_url)
    backend = _backend(database_url)
    with replay.copy(backend, database_url) as copied:
        assert await _agents(copied) == []
        captured = await _workload(database_url)
        times = replay.replay(backend, copied, captured.jobs)
        assert len(times) == 2
        assert all(t > 0 for t in times)
        expected = [(1, NEW_OWNER), (2, OWNER)]  # agent 3 was rolled back, in both
        assert await _agents(database_url) == expected
        assert await _agents(copied) == expected


async def test_the_generation_benchmarks_overhead_run_checks_its_work(
    database_url: str, tmp_path: Path
) -> None:
    """A tiny run of ``bench.generation``'s overhead part: its jobs succeed (it checks
    that itself) and the same SQL replays on the copy. Counts, never times."""
    found = await overhead(_backend(database_url), database_url, tmp_path / "data", 3)
    assert found.jobs == 3
    assert found.statements > 10
    assert found.transactions >= 2
    assert found.floor_p50_ms > 0
