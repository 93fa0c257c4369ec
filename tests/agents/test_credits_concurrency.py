"""One writer per agent: concurrent spends never take more credits than there are.

On PostgreSQL the spenders are two OS processes, each with its own engine and 25 tasks,
released together by a barrier; the agent's row lock is all that orders them. On SQLite
(one writer per database) the tasks share one process and its per-agent lock.
"""

from __future__ import annotations

import multiprocessing
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.agents.ledger import Balances
from inftd.store.db import create_async
from inftd.store.models import EventRecord
from tests.agents.credits_helpers import (
    add_agent,
    both_balances,
    concurrent_spends,
    entry_count,
    spend_in_process,
)
from tests.support.schema import at_head

PROCESSES = 2
TASKS = 25  # per process
RESULT_WAIT = 90  # seconds a spender process may take (spawning imports the project)


@pytest.fixture
async def engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    at_head(postgres_url)
    engine = create_async(postgres_url)
    yield engine
    await engine.dispose()


def spend_from_processes(url: str, token_id: int, keys: list[list[str]]) -> Counter[str]:
    """Each process spends its list of keys; the outcomes of all of them."""
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(len(keys)), context.Queue()
    processes = [
        context.Process(target=spend_in_process, args=(url, token_id, mine, start, results))
        for mine in keys
    ]
    for process in processes:
        process.start()
    try:
        outcomes = [results.get(timeout=RESULT_WAIT) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=RESULT_WAIT)
    assert all(isinstance(o, list) for o in outcomes), outcomes
    assert [p.exitcode for p in processes] == [0] * len(processes)
    return Counter(outcome for mine in outcomes for outcome in mine)


async def credit_events(engine: AsyncEngine, token_id: int) -> int:
    async with engine.connect() as conn:
        count = await conn.scalar(
            select(func.count()).select_from(EventRecord).where(EventRecord.token_id == token_id)
        )
    return int(count or 0)


async def assert_ledger(
    engine: AsyncEngine, token_id: int, expected: Balances, entries: int
) -> None:
    async with engine.connect() as conn:
        cached, ledger = await both_balances(conn, token_id)
        assert cached == ledger == expected
        assert await entry_count(conn, token_id) == entries


@pytest.mark.postgres
async def test_fifty_spends_from_two_processes_take_exactly_the_ten_credits(
    engine: AsyncEngine, postgres_url: str
) -> None:
    await add_agent(engine, 1, credits=10)
    keys = [[f"p{p}-{t}" for t in range(TASKS)] for p in range(PROCESSES)]
    outcomes = spend_from_processes(postgres_url, 1, keys)
    assert outcomes == Counter(ok=10, insufficient=40)
    await assert_ledger(engine, 1, Balances(total=10, used=10, reserved=0), entries=1 + 10 * 2)
    assert await credit_events(engine, 1) == 1 + 10  # the grant, then one per spend


@pytest.mark.postgres
async def test_the_same_keys_from_two_processes_are_spent_once(
    engine: AsyncEngine, postgres_url: str
) -> None:
    await add_agent(engine, 1, credits=100)
    same = [f"job-{t}" for t in range(TASKS)]
    outcomes = spend_from_processes(postgres_url, 1, [same, list(reversed(same))])
    assert outcomes == Counter(ok=TASKS, replayed=TASKS)
    await assert_ledger(engine, 1, Balances(100, TASKS, 0), entries=1 + TASKS * 2)


@pytest.fixture
async def sqlite_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    at_head(database_url)
    engine = create_async(database_url)
    yield engine
    await engine.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_fifty_concurrent_tasks_in_one_process_take_exactly_the_ten_credits(
    sqlite_engine: AsyncEngine,
) -> None:
    await add_agent(sqlite_engine, 1, credits=10)
    keys = [f"t{t}" for t in range(PROCESSES * TASKS)] + ["t0", "t1"]  # two keys again
    outcomes = Counter(await concurrent_spends(sqlite_engine, 1, keys))
    # The per-agent lock queues the tasks in order: t0..t9 spend, t0 and t1 come back as
    # replays of their first spend.
    assert outcomes == Counter(ok=10, insufficient=40, replayed=2)
    await assert_ledger(sqlite_engine, 1, Balances(10, 10, 0), entries=1 + 10 * 2)
