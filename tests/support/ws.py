"""Reading a WebSocket of the API in a test: JSON messages, each within a failure bound."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp

from tests.support.processes import BOUND

Socket = aiohttp.ClientWebSocketResponse
Message = dict[str, Any]


async def receive(ws: Socket) -> Message:
    try:
        message = await asyncio.wait_for(ws.receive_json(), BOUND)  # a failure bound only
    except TimeoutError:
        raise AssertionError(f"no message within {BOUND} s") from None
    assert isinstance(message, dict)
    return message


async def events_until(ws: Socket, done: Callable[[list[Message]], bool]) -> list[Message]:
    """Events from ``ws`` (other messages skipped) until ``done`` says so."""
    events: list[Message] = []
    while not done(events):
        message = await receive(ws)
        if message["type"] == "event":
            events.append(message)
    return events


def with_kind(kind: str) -> Callable[[list[Message]], bool]:
    return lambda events: any(e["event"] == kind for e in events)
