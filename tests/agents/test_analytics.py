"""Analytics: every figure against totals worked out by hand from the rows inserted here,
inside and just outside the window, per agent and per package type, on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.agents.analytics import (
    DEFAULT_WINDOW,
    MAX_WINDOW,
    Window,
    agent_analytics,
    package_analytics,
    parse_time,
    window_of,
)
from inftd.agents.errors import BadWindow, UnknownAgent
from inftd.store.db import create_async
from inftd.store.models import Agent, AgentMessage, CreditEntry, Generation, LearningEntry
from tests.support.schema import at_head

T0 = datetime(2024, 3, 1, tzinfo=UTC)
WINDOW = Window(T0, T0 + timedelta(days=7))
IN = T0 + timedelta(hours=1)
LATE_IN = T0 + timedelta(days=7) - timedelta(seconds=1)
BEFORE = T0 - timedelta(seconds=1)
AT_END = T0 + timedelta(days=7)  # the window is half-open: excluded
AFTER = T0 + timedelta(days=30)

# (token, package type, created at)
AGENTS = [(1, 0, BEFORE), (2, 0, IN), (3, 1, BEFORE), (4, 2, AFTER), (5, 2, IN)]
# (token, kind, amount, at)
CREDITS = [
    (1, "grant", 100, IN),
    (1, "topup", 50, LATE_IN),
    (1, "reserve", 10, IN),
    (1, "commit", 8, IN),
    (1, "release", 2, IN),
    (1, "refund", 3, IN),
    (1, "grant", 1000, BEFORE),
    (1, "commit", 500, AT_END),
    (2, "grant", 100, IN),
    (2, "reserve", 5, IN),
    (2, "commit", 5, IN),
    (3, "grant", 600, IN),
    (3, "adjust", 7, IN),
    (3, "reserve", 20, AFTER),
]
# (token, kind, status, cost, at)
GENERATIONS = [
    (1, "text", "succeeded", 0.01, IN),
    (1, "text", "failed", 0.0, IN),
    (1, "image", "succeeded", 0.04, LATE_IN),
    (1, "image", "succeeded", 1.0, BEFORE),
    (2, "text", "queued", 0.0, IN),
    (3, "image", "succeeded", 0.25, IN),
    (3, "text", "succeeded", 0.5, AT_END),
]
# (token, rating, at)
FEEDBACK = [(1, 5, IN), (1, 4, LATE_IN), (1, 1, BEFORE), (2, 2, IN), (3, 5, AFTER)]
# (from, to, at)
MESSAGES = [(1, 2, IN), (1, 3, IN), (2, 1, LATE_IN), (3, 1, BEFORE), (1, 2, AT_END)]

NO_CREDITS = {"granted": 0, "reserved": 0, "used": 0, "released": 0, "refunded": 0}
NO_REQUESTS = {"total": 0, "byKind": {}, "byStatus": {}}


async def _insert(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        for token, package_type, at in AGENTS:
            await conn.execute(
                insert(Agent).values(
                    token_id=token,
                    package_type=package_type,
                    owner="0x" + "11" * 20,
                    created_block=1,
                    owner_since_block=1,
                    created_at=at,
                )
            )
        for i, (token, kind, amount, at) in enumerate(CREDITS):
            await conn.execute(
                insert(CreditEntry).values(
                    token_id=token, kind=kind, amount=amount, idempotency_key=f"k{i}", created_at=at
                )
            )
        for i, (token, kind, status, cost, at) in enumerate(GENERATIONS):
            await conn.execute(
                insert(Generation).values(
                    id=f"g{i}",
                    token_id=token,
                    kind=kind,
                    prompt="p",
                    source="api",
                    status=status,
                    cost_usd=cost,
                    created_at=at,
                )
            )
        for token, rating, at in FEEDBACK:
            await conn.execute(
                insert(LearningEntry).values(token_id=token, rating=rating, created_at=at)
            )
        for sender, receiver, at in MESSAGES:
            await conn.execute(
                insert(AgentMessage).values(
                    from_token_id=sender, to_token_id=receiver, kind="text", body={}, created_at=at
                )
            )


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    at_head(database_url)
    engine = create_async(database_url)
    await _insert(engine)
    yield engine
    await engine.dispose()


async def for_agent(engine: AsyncEngine, token_id: int, window: Window = WINDOW) -> Any:
    async with engine.connect() as conn:
        return await agent_analytics(conn, token_id, window)


async def test_one_agents_figures_count_only_its_rows_inside_the_window(
    engine: AsyncEngine,
) -> None:
    one = await for_agent(engine, 1)
    assert one == {
        "packageTokenId": 1,
        "packageType": 0,
        "from": "2024-03-01T00:00:00+00:00",
        "to": "2024-03-08T00:00:00+00:00",
        "credits": {"granted": 150, "reserved": 10, "used": 8, "released": 2, "refunded": 3},
        "requests": {
            "total": 3,
            "byKind": {"text": 2, "image": 1},
            "byStatus": {"succeeded": 2, "failed": 1},
        },
        "feedback": {"count": 2, "meanRating": 4.5},
        "messages": {"sent": 2, "received": 1},
        "costUsd": 0.05,
    }
    two = await for_agent(engine, 2)
    assert two["credits"] == {
        "granted": 100,
        "reserved": 5,
        "used": 5,
        "released": 0,
        "refunded": 0,
    }
    assert two["requests"] == {"total": 1, "byKind": {"text": 1}, "byStatus": {"queued": 1}}
    assert two["feedback"] == {"count": 1, "meanRating": 2.0}
    assert (two["messages"], two["costUsd"]) == ({"sent": 1, "received": 1}, 0.0)
    three = await for_agent(engine, 3)
    assert (three["credits"]["granted"], three["credits"]["reserved"]) == (607, 0)
    assert three["feedback"] == {"count": 0, "meanRating": None}
    assert (three["messages"], three["costUsd"]) == ({"sent": 0, "received": 1}, 0.25)


async def test_an_idle_agent_has_zeros_and_an_unknown_one_is_refused(engine: AsyncEngine) -> None:
    idle = await for_agent(engine, 5)
    assert (idle["credits"], idle["requests"], idle["costUsd"]) == (NO_CREDITS, NO_REQUESTS, 0.0)
    assert idle["messages"] == {"sent": 0, "received": 0}
    for unknown in (99, 2**63, -1):
        with pytest.raises(UnknownAgent):
            await for_agent(engine, unknown)


async def test_package_types_aggregate_their_agents(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        report = await package_analytics(conn, WINDOW)
    assert (report["from"], report["to"]) == (
        "2024-03-01T00:00:00+00:00",
        "2024-03-08T00:00:00+00:00",
    )
    zero, one, two = report["packages"]
    assert zero["packageType"] == 0
    assert (zero["agents"], zero["activeAgents"]) == (2, 2)
    assert zero["credits"] == {
        "granted": 250,
        "reserved": 15,
        "used": 13,
        "released": 2,
        "refunded": 3,
    }
    assert zero["requests"] == {
        "total": 4,
        "byKind": {"text": 3, "image": 1},
        "byStatus": {"succeeded": 2, "failed": 1, "queued": 1},
    }
    assert zero["feedback"]["count"] == 3
    assert zero["feedback"]["meanRating"] == pytest.approx(11 / 3)
    assert zero["messages"] == {"sent": 3, "received": 2}
    assert zero["costUsd"] == 0.05
    assert one == {
        "packageType": 1,
        "agents": 1,
        "activeAgents": 1,
        "credits": {**NO_CREDITS, "granted": 607},
        "requests": {"total": 1, "byKind": {"image": 1}, "byStatus": {"succeeded": 1}},
        "feedback": {"count": 0, "meanRating": None},
        "messages": {"sent": 0, "received": 1},
        "costUsd": 0.25,
    }
    # Agent 4 was created after the window: only agent 5 counts, and it did nothing.
    assert (two["packageType"], two["agents"], two["activeAgents"]) == (2, 1, 0)
    assert (two["credits"], two["requests"], two["costUsd"]) == (NO_CREDITS, NO_REQUESTS, 0.0)


async def test_other_windows_see_other_rows(engine: AsyncEngine) -> None:
    before = Window(T0 - timedelta(days=1), T0)
    one = await for_agent(engine, 1, before)
    assert one["credits"] == {**NO_CREDITS, "granted": 1000}
    assert one["requests"]["byKind"] == {"image": 1}
    assert (one["costUsd"], one["feedback"]) == (1.0, {"count": 1, "meanRating": 1.0})
    assert one["messages"] == {"sent": 0, "received": 1}
    later = Window(AT_END, AT_END + timedelta(seconds=1))  # just the rows at the old end
    assert (await for_agent(engine, 1, later))["credits"]["used"] == 500
    assert (await for_agent(engine, 3, later))["costUsd"] == 0.5
    # The default window ends now and reaches back DEFAULT_WINDOW: here, the same rows.
    assert window_of(None, None, WINDOW.end) == WINDOW
    assert WINDOW.end - WINDOW.start == DEFAULT_WINDOW


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1709251200", T0),
        ("1709251200.5", T0 + timedelta(milliseconds=500)),
        ("2024-03-01T00:00:00Z", T0),
        ("2024-03-01", T0),
        ("2024-03-01T01:00:00+01:00", T0),
        (" 2024-03-01T00:00:00 ", T0),
    ],
)
def test_times_are_unix_seconds_or_iso_8601(raw: str, expected: datetime) -> None:
    assert parse_time(raw, "from") == expected


@pytest.mark.parametrize(
    ("start", "end", "problem"),
    [
        ("yesterday", None, "from must be unix seconds or ISO 8601"),
        (None, "-5", "to must be"),
        (None, "9" * 40, "to must be"),
        (None, "1e9", "to must be"),
        ("\x00", None, "from must be"),
        ("²", None, "from must be"),
        ("2024-03-02", "2024-03-01", "before"),
        ("2024-03-01", "2024-03-01", "before"),
        ("2024-01-01", "2024-06-01", f"longer than {MAX_WINDOW.days} days"),
        (None, "0001-01-02", "year 1"),
    ],
)
def test_bad_windows_are_refused(start: str | None, end: str | None, problem: str) -> None:
    with pytest.raises(BadWindow, match=problem):
        window_of(start, end, datetime(2024, 3, 1, tzinfo=UTC))
