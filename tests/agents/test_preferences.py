"""Preferences: a small flat object, validated before it replaces the stored one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.agents.errors import BadPreferences, UnknownAgent
from inftd.agents.preferences import (
    MAX_BYTES,
    MAX_KEY_CHARS,
    MAX_KEYS,
    MAX_NUMBER,
    set_preferences,
    validate_preferences,
)
from inftd.store.db import create_async
from inftd.store.models import Agent
from tests.support.schema import at_head


def test_flat_objects_of_strings_numbers_and_booleans_pass() -> None:
    value = {"style": "noir", "temperature": 0.7, "steps": 30, "nsfw": False, "": None}
    del value[""]
    assert validate_preferences(value) == value
    assert validate_preferences({}) == {}
    full = {f"k{i}": "v" for i in range(MAX_KEYS)}
    assert validate_preferences(full) == full
    big = {"k": "x" * (MAX_BYTES - len('{"k":""}'))}
    assert validate_preferences(big) == big


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ([], "must be a JSON object"),
        ("style", "must be a JSON object"),
        (None, "must be a JSON object"),
        ({"k": None}, "string, number or boolean"),
        ({"k": [1]}, "string, number or boolean"),
        ({"k": {"nested": 1}}, "string, number or boolean"),
        ({"k": float("nan")}, "finite"),
        ({"k": float("inf")}, "finite"),
        ({"k": 1e21}, "from -2\\^53 to 2\\^53"),
        ({"k": MAX_NUMBER + 1}, "from -2\\^53 to 2\\^53"),
        ({"k": -float(MAX_NUMBER) * 2}, "from -2\\^53 to 2\\^53"),
        ({"": 1}, "1 to 64 characters"),
        ({"k" * (MAX_KEY_CHARS + 1): 1}, "1 to 64 characters"),
        ({f"k{i}": 1 for i in range(MAX_KEYS + 1)}, "at most 50 preferences"),
        ({"k": "x" * MAX_BYTES}, "at most 16384"),
    ],
)
def test_anything_else_is_refused(value: Any, problem: str) -> None:
    with pytest.raises(BadPreferences, match=problem):
        validate_preferences(value)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    at_head(database_url)
    engine = create_async(database_url)
    async with engine.begin() as conn:
        await conn.execute(
            insert(Agent).values(
                token_id=1,
                package_type=0,
                owner="0x" + "11" * 20,
                created_block=1,
                owner_since_block=1,
                preferences={"old": "yes"},
            )
        )
    yield engine
    await engine.dispose()


async def test_new_preferences_replace_the_old(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        assert await set_preferences(conn, 1, {"style": "noir", "n": 2}) == {
            "style": "noir",
            "n": 2,
        }
    async with engine.connect() as conn:
        stored = await conn.scalar(select(Agent.preferences).where(Agent.token_id == 1))
    assert stored == {"style": "noir", "n": 2}


async def test_the_largest_numbers_come_back_as_they_went_in(engine: AsyncEngine) -> None:
    """jsonb turns a float of integral value into an integer: within the bounds, still one
    that every reader, and orjson, holds exactly."""
    edges = {"high": MAX_NUMBER, "low": -MAX_NUMBER, "float": float(MAX_NUMBER), "f": 0.1}
    async with engine.begin() as conn:
        await set_preferences(conn, 1, edges)
    async with engine.connect() as conn:
        stored = await conn.scalar(select(Agent.preferences).where(Agent.token_id == 1))
    assert stored == edges
    assert orjson.loads(orjson.dumps(stored)) == edges


async def test_unknown_agents_and_bad_values_change_nothing(engine: AsyncEngine) -> None:
    for token_id in (2, 2**64):
        async with engine.begin() as conn:
            with pytest.raises(UnknownAgent):
                await set_preferences(conn, token_id, {"a": 1})
    async with engine.begin() as conn:
        with pytest.raises(BadPreferences):
            await set_preferences(conn, 1, {"a": [1]})
    async with engine.connect() as conn:
        stored = await conn.scalar(select(Agent.preferences).where(Agent.token_id == 1))
    assert stored == {"old": "yes"}
