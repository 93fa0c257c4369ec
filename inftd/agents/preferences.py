"""An agent's preferences: a small flat JSON object the owner sets as a whole or patches.

Values are strings, numbers from -2^53 to 2^53 or booleans; at most ``MAX_KEYS`` keys of at most
``MAX_KEY_CHARS`` characters, and at most ``MAX_BYTES`` as compact JSON. Either change
records ``agent.updated`` (``{"fields": ["preferences"]}``) in its transaction.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from inftd.agents.errors import BadPreferences, UnknownAgent
from inftd.agents.events import NewEvent, record_events
from inftd.agents.owners import MAX_STORED_TOKEN_ID
from inftd.store.models import Agent

MAX_BYTES = 16 * 1024  # size of the preferences as compact JSON
MAX_KEYS = 50  # keys in the preferences object
MAX_KEY_CHARS = 64  # characters in one key
# Numbers every JSON reader holds exactly: PostgreSQL's jsonb keeps 1e21 as an integer of
# 22 digits, which then no 64-bit writer (orjson) can write back, breaking the agent's reads.
MAX_NUMBER = 2**53

Preferences = dict[str, str | int | float | bool]


def _check_value(key: str, value: Any) -> None:
    if not isinstance(value, str | int | float):  # bool is an int
        raise BadPreferences(f"preference {key!r} must be a string, number or boolean")
    if isinstance(value, float) and not math.isfinite(value):
        raise BadPreferences(f"preference {key!r} must be a finite number")
    if not isinstance(value, str) and abs(value) > MAX_NUMBER:
        raise BadPreferences(f"preference {key!r} must be a number from -2^53 to 2^53")


def validate_preferences(value: Any) -> Preferences:
    """The preferences if ``value`` is an acceptable object; raises ``BadPreferences``."""
    if not isinstance(value, dict):
        raise BadPreferences("preferences must be a JSON object")
    if len(value) > MAX_KEYS:
        raise BadPreferences(f"at most {MAX_KEYS} preferences, got {len(value)}")
    for key, item in value.items():
        if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_CHARS:
            raise BadPreferences(f"keys must have 1 to {MAX_KEY_CHARS} characters: {key!r:.80}")
        _check_value(key, item)
    size = len(orjson.dumps(value))
    if size > MAX_BYTES:
        raise BadPreferences(f"preferences take {size} bytes as JSON; at most {MAX_BYTES}")
    return dict(value)


async def set_preferences(conn: AsyncConnection, token_id: int, value: Any) -> Preferences:
    """Replace the agent's preferences with ``value`` once it is validated."""
    preferences = validate_preferences(value)
    if not 0 <= token_id <= MAX_STORED_TOKEN_ID:
        raise UnknownAgent(token_id)
    result = await conn.execute(
        update(Agent).where(Agent.token_id == token_id).values(preferences=preferences)
    )
    if result.rowcount != 1:
        raise UnknownAgent(token_id)
    await _changed(conn, token_id)
    return preferences


async def _changed(conn: AsyncConnection, token_id: int) -> None:
    await record_events(conn, [NewEvent("agent.updated", token_id, {"fields": ["preferences"]})])


def merge_preferences(current: Preferences, patch: Any) -> Preferences:
    """``current`` with a JSON merge patch (RFC 7396) applied: ``null`` deletes a key, any
    other value sets it; the result is validated like a whole new set of preferences."""
    if not isinstance(patch, dict):
        raise BadPreferences("a merge patch must be a JSON object")
    merged: dict[str, Any] = dict(current)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return validate_preferences(merged)


async def patch_preferences(conn: AsyncConnection, agent: Any, patch: Any) -> Preferences:
    """Merge ``patch`` into the preferences of ``agent``, a row its writer holds locked."""
    preferences = merge_preferences(dict(agent.preferences or {}), patch)
    await conn.execute(
        update(Agent).where(Agent.token_id == agent.token_id).values(preferences=preferences)
    )
    await _changed(conn, agent.token_id)
    return preferences
