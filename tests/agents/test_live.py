"""Live agents: copies read once and answered from memory, dropped by the events that
change them (a commit of this process at once, the hub's events of other processes when
applied), never kept when an event overtook their read, bounded in memory."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.agents import live as live_module
from inftd.agents.credits import adjust, grant
from inftd.agents.errors import NotOwner, UnknownAgent
from inftd.agents.events import REORGED, Event, NewEvent, record_events
from inftd.agents.live import LiveAgents, noting_writes
from inftd.agents.views import agent_state
from inftd.agents.writer import AgentWriter, admit
from inftd.store.db import create_async
from inftd.store.models import Agent, EventRecord
from tests.agents.credits_helpers import OWNER, add_agent, as_writer
from tests.support.schema import at_head

BUDGET = 1 << 20
BUYER = "0x" + "22" * 20


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    at_head(database_url)
    engine = create_async(database_url)
    for token_id in (1, 2, 3):
        await add_agent(engine, token_id, credits=10 * token_id)
    yield engine
    await engine.dispose()


@pytest.fixture
async def other(engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """Another engine on the same database: the writes of another process."""
    other = create_async(engine.url.render_as_string(hide_password=False))
    yield other
    await other.dispose()


def tracked(engine: AsyncEngine, budget: int = BUDGET) -> LiveAgents:
    live = LiveAgents(engine, budget)
    live.track(0)
    return live


async def fresh(engine: AsyncEngine, token_id: int) -> bytes:
    async with engine.connect() as conn:
        return orjson.dumps(await agent_state(conn, token_id))


async def events_after(engine: AsyncEngine, seq: int) -> list[Event]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(EventRecord).where(EventRecord.seq > seq).order_by(EventRecord.seq)
        )
        return [Event.from_row(r) for r in rows]


async def newest_seq(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.max(EventRecord.seq))) or 0)


async def apply_new(live: LiveAgents, engine: AsyncEngine) -> None:
    """What the hub does: every event after the live agents' position, in seq order."""
    events = await events_after(engine, live.position)
    for event in events:
        live.apply(event)
    if events:
        await live.advanced(events[-1].seq)


async def test_a_read_is_kept_and_answered_from_memory(engine: AsyncEngine) -> None:
    live = tracked(engine)
    first = await live.agent(1)
    again = await live.agent(1)
    assert again is first
    assert first.document == await fresh(engine, 1)
    assert (first.owner, first.balances.available) == (OWNER, 10)
    assert first.version == await newest_seq_of(engine, 1)
    assert (live.counters.reads, live.counters.hits, live.counters.misses) == (1, 1, 1)


async def newest_seq_of(engine: AsyncEngine, token_id: int) -> int:
    async with engine.connect() as conn:
        query = select(func.max(EventRecord.seq)).where(EventRecord.token_id == token_id)
        return int(await conn.scalar(query) or 0)


async def test_without_the_hub_every_read_goes_to_the_database(engine: AsyncEngine) -> None:
    live = LiveAgents(engine, BUDGET)
    await live.agent(1)
    await live.agent(1)
    assert (live.counters.reads, live.bytes) == (2, 0)


async def test_a_commit_of_this_process_is_read_back_at_once(engine: AsyncEngine) -> None:
    """Read your writes: the copy is gone by the time the writer's block has ended."""
    live = tracked(engine)
    before = await live.agent(2)
    with noting_writes() as wrote:
        await as_writer(AgentWriter(engine), 2, adjust, 5, "k1", "a gift")
    after = await live.agent(2)
    assert (before.balances.total, after.balances.total) == (20, 25)
    assert after.version == wrote[0] == await newest_seq_of(engine, 2) > before.version
    # The hub brings the same event later: the copy holds it already and is kept.
    await apply_new(live, engine)
    assert await live.agent(2) is after


async def test_a_rolled_back_write_reports_nothing(engine: AsyncEngine) -> None:
    live = tracked(engine)
    kept = await live.agent(2)

    async def undone() -> None:
        async with AgentWriter(engine).write(2) as (conn, agent):
            await adjust(conn, agent, 5, "k2", "undone")
            raise RuntimeError("rolled back")

    with noting_writes() as wrote, pytest.raises(RuntimeError):
        await undone()
    assert wrote[0] == 0
    assert await live.agent(2) is kept


async def test_another_process_s_write_shows_once_its_event_is_applied(
    engine: AsyncEngine, other: AsyncEngine
) -> None:
    live = tracked(engine)
    stale = await live.agent(3)
    await as_writer(AgentWriter(other), 3, adjust, 7, "k3", "from elsewhere")
    assert await live.agent(3) is stale  # nothing told this process yet
    await apply_new(live, engine)
    shown = await live.agent(3)
    assert shown.balances.total == 37
    assert shown.document == await fresh(engine, 3)


async def test_an_event_that_overtakes_a_read_keeps_it_from_being_kept(
    engine: AsyncEngine, other: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read that began before a commit elsewhere, and ends after the hub applied it, is
    served to its readers but not kept: the next read is fresh."""
    live = tracked(engine)
    reading, go_on = asyncio.Event(), asyncio.Event()
    real = live_module.agent_state

    async def slow_state(conn: Any, token_id: int) -> dict[str, Any]:
        state = await real(conn, token_id)
        reading.set()
        await go_on.wait()
        return state

    monkeypatch.setattr(live_module, "agent_state", slow_state)
    read = asyncio.create_task(live.agent(1))
    await reading.wait()
    await as_writer(AgentWriter(other), 1, adjust, 1, "k4", "meanwhile")
    await apply_new(live, engine)
    monkeypatch.setattr(live_module, "agent_state", real)
    go_on.set()
    served = await read
    assert served.balances.total in (10, 11)
    assert (await live.agent(1)).balances.total == 11


async def test_readers_of_one_agent_share_one_read(engine: AsyncEngine) -> None:
    live = tracked(engine)
    entries = await asyncio.gather(*(live.agent(2) for _ in range(50)))
    assert all(e is entries[0] for e in entries)
    assert live.counters.reads == 1


async def test_an_unknown_agent_is_kept_as_absent_until_it_is_created(
    engine: AsyncEngine,
) -> None:
    live = tracked(engine)
    for _ in range(3):
        with pytest.raises(UnknownAgent):
            await live.agent(9)
    assert live.counters.reads == 1
    await add_agent(engine, 9)
    async with AgentWriter(engine).write(9) as (conn, _):
        await record_events(conn, [NewEvent("agent.created", 9, {})])
    assert (await live.agent(9)).owner == OWNER
    with pytest.raises(UnknownAgent):
        await live.agent(2**63)  # beyond any stored id: no read at all


async def test_an_unshown_event_moves_the_version_without_a_read(engine: AsyncEngine) -> None:
    live = tracked(engine)
    entry = await live.agent(1)
    async with other_process(engine) as writer, writer.write(1) as (conn, _):
        await record_events(conn, [NewEvent("memory.added", 1, {}, private=True)])
    await apply_new(live, engine)
    assert await live.agent(1) is entry
    assert entry.version == await newest_seq_of(engine, 1)
    assert entry.document == await fresh(engine, 1)
    assert live.counters.reads == 1


class other_process:
    """A writer over its own engine, as another process's would be."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = create_async(engine.url.render_as_string(hide_password=False))

    async def __aenter__(self) -> AgentWriter:
        return AgentWriter(self.engine)

    async def __aexit__(self, *exc: object) -> None:
        await self.engine.dispose()


async def test_a_reorg_drops_every_copy(engine: AsyncEngine) -> None:
    live = tracked(engine)
    for token_id in (1, 2, 3):
        await live.agent(token_id)
    await live.page(-1, 10)
    live.apply(Event(10**6, REORGED, None, {"ancestor": 1}, False, _now()))
    assert (live.report()["agents"], live.report()["pages"], live.bytes) == (0, 0, 0)


def _now() -> Any:
    from inftd.store.models import utcnow

    return utcnow()


def tokens_of(page: Any) -> list[int]:
    return [a["packageTokenId"] for a in orjson.loads(page.body)["agents"]]


async def test_a_page_is_kept_until_an_event_of_its_range(
    engine: AsyncEngine, other: AsyncEngine
) -> None:
    live = tracked(engine)
    first = await live.page(-1, 2)
    final = await live.page(2, 2)
    assert (tokens_of(first), orjson.loads(first.body)["next"]) == ([1, 2], 2)
    assert (tokens_of(final), orjson.loads(final.body)["next"]) == ([3], None)
    await as_writer(AgentWriter(other), 3, adjust, 1, "k5", "in the final page")
    await apply_new(live, engine)
    assert await live.page(-1, 2) is first
    refreshed = await live.page(2, 2)
    assert refreshed is not final
    assert orjson.loads(refreshed.body)["agents"][0]["availableCredits"] == 31
    # A new agent beyond every page lands in the final one.
    await add_agent(other, 4)
    async with AgentWriter(other).write(4) as (conn, _):
        await record_events(conn, [NewEvent("agent.created", 4, {})])
    await apply_new(live, engine)
    assert await live.page(-1, 2) is first
    assert tokens_of(await live.page(2, 2)) == [3, 4]


async def test_memory_stays_within_the_budget_least_recent_first(engine: AsyncEngine) -> None:
    for token_id in range(10, 60):
        await add_agent(engine, token_id)
    one = len(await fresh(engine, 10)) + live_module.ENTRY_OVERHEAD
    live = tracked(engine, budget=one * 10)
    for token_id in range(10, 60):
        await live.agent(token_id)
        await live.agent(10)  # kept in use: never the least recent
    assert live.bytes <= live.budget
    assert live.report()["agents"] == 10
    assert live.counters.evictions == 40
    reads = live.counters.reads
    await live.agent(10)
    await live.agent(59)
    assert live.counters.reads == reads  # the most recent are the ones kept


async def test_the_counted_size_is_not_less_than_the_memory_held(engine: AsyncEngine) -> None:
    """ENTRY_OVERHEAD is measured: the budget bounds what the copies really hold."""
    for token_id in range(100, 400):
        await add_agent(engine, token_id)
    live = tracked(engine, budget=1 << 30)
    states = {}
    async with engine.connect() as conn:
        for token_id in range(100, 400):
            states[token_id] = await agent_state(conn, token_id)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for token_id, state in states.items():
            live._keep_entry(live_module.Entry.of(token_id, token_id, state))
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held <= live.bytes, (held, live.bytes)
    assert live.bytes <= 3 * held  # and not so high that the budget means little


async def test_reach_waits_for_the_position(engine: AsyncEngine) -> None:
    live = tracked(engine)
    waiting = asyncio.create_task(live.reach(5, wait=5))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    await live.advanced(5)
    assert await waiting is True
    assert await live.reach(6, wait=0.01) is False  # bounded: answers with what it has
    live.untrack()
    assert await live.reach(10**9, wait=5) is True  # reads go to the database now


async def test_a_write_admitted_for_an_old_owner_is_refused_on_the_locked_row(
    engine: AsyncEngine,
) -> None:
    """The live copy may still show the seller; the writer's row says who owns it now."""

    async def sold_then_written() -> None:
        admit(1, OWNER)
        async with engine.begin() as conn:
            await conn.execute(
                update(Agent).where(Agent.token_id == 1).values(owner="0x" + "22" * 20)
            )
        await as_writer(AgentWriter(engine), 1, grant, 5, "k6")

    with pytest.raises(NotOwner):
        await asyncio.create_task(sold_then_written())
    # Outside that request nothing is admitted: the operator's path writes freely.
    await as_writer(AgentWriter(engine), 1, grant, 5, "k7")


async def test_a_commit_reports_the_seqs_of_its_events(engine: AsyncEngine) -> None:
    """The seq a writer's answer names is the seq its last event got, token or none."""
    tracked(engine)  # as the runtime does: its LiveAgents hears the engine's commits
    for token_id in (1, 2):
        with noting_writes() as wrote:
            async with AgentWriter(engine).write(token_id) as (conn, _):
                events = [NewEvent("memory.added", token_id, {}), NewEvent("x", None, {})]
                await record_events(conn, events)
        assert wrote[0] == await newest_seq(engine)
        assert await newest_seq_of(engine, token_id) == wrote[0] - 1


async def test_a_connection_broken_mid_transaction_rolls_back_cleanly(
    engine: AsyncEngine,
) -> None:
    """A writer whose connection breaks mid-transaction (a cancelled task's at shutdown, a
    dropped server): its rollback must go through, and nothing of the copies' bookkeeping
    may stand in its way (it once did: reading conn.info raised, and the pool stuck)."""
    live = tracked(engine)

    async def broken() -> None:
        async with AgentWriter(engine).write(2) as (conn, agent):
            await adjust(conn, agent, 5, "cut", "never committed")
            await conn.invalidate()  # as SQLAlchemy does when the connection fails
            raise ConnectionError("the connection broke")

    with pytest.raises(ConnectionError):
        await broken()
    assert (await live.agent(2)).balances.total == 20  # the broken write is not there
    with noting_writes() as wrote:
        await as_writer(AgentWriter(engine), 2, adjust, 1, "after", "the engine still writes")
    assert wrote[0] > 0
    assert (await live.agent(2)).balances.total == 21
