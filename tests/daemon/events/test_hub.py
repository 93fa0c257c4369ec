"""The hub and the live agents: every event reaches the copies before any subscriber, and
a hub that cannot read the events table lets the copies go until it can again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy.exc
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.agents.credits import adjust
from inftd.agents.live import LiveAgents
from inftd.agents.writer import AgentWriter
from inftd.daemon.events import hub as hub_module
from inftd.daemon.events.hub import Hub, Subscription
from inftd.store.db import create_async
from tests.agents.credits_helpers import add_agent, as_writer
from tests.support.api import hub_running
from tests.support.processes import until
from tests.support.schema import at_head


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    at_head(database_url)
    engine = create_async(database_url)
    await add_agent(engine, 1, credits=10)
    yield engine
    await engine.dispose()


async def test_a_subscriber_told_of_an_event_reads_it_from_the_copy(engine: AsyncEngine) -> None:
    live = LiveAgents(engine, 1 << 20)
    hub = Hub(engine, live, poll_interval=0.01)
    other = create_async(engine.url.render_as_string(hide_password=False))
    try:
        async with hub_running(hub):
            await live.agent(1)  # a copy to keep true
            sub = Subscription(limit=10, tokens={1})
            hub.subscribe(sub)
            await as_writer(AgentWriter(other), 1, adjust, 4, "k", "elsewhere")
            event = await asyncio.wait_for(sub.next(), 10)
            assert event is not None
            assert event.type == "credits.changed"
            assert (await live.agent(1)).balances.total == 14  # already true when told
    finally:
        await other.dispose()


async def test_an_unreadable_events_table_lets_the_copies_go_until_it_reads_again(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub_module, "READ_RETRY", 0.01)
    live = LiveAgents(engine, 1 << 20)
    hub = Hub(engine, live, poll_interval=0.01)
    failing = asyncio.Event()
    real = hub.read

    async def read(*args: Any, **kwargs: Any) -> Any:
        if failing.is_set():
            raise sqlalchemy.exc.OperationalError("SELECT", {}, Exception("database gone"))
        return await real(*args, **kwargs)

    monkeypatch.setattr(hub, "read", read)
    async with hub_running(hub):
        await live.agent(1)
        assert live.kept()[0]
        failing.set()
        await until(lambda: _is(not live.tracking), "the hub lets the copies go")
        assert live.kept() == ([], [])
        reads = live.counters.reads
        await live.agent(1)
        await live.agent(1)
        assert live.counters.reads == reads + 2  # straight to the database meanwhile
        failing.clear()
        await until(lambda: _is(live.tracking), "the hub keeps copies again")
        await live.agent(1)
        await live.agent(1)
        assert live.counters.reads == reads + 3  # kept again


async def _is(value: bool) -> bool:
    return value
