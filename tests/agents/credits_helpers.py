"""Agents with credits for the credits tests, and the spender the concurrency test runs in
other processes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from inftd.agents.credits import grant, spend
from inftd.agents.errors import InsufficientCredits
from inftd.agents.ledger import Balances, cached_balances, ledger_balances
from inftd.agents.writer import AgentWriter
from inftd.store.db import create_async
from inftd.store.models import Agent, CreditEntry

T = TypeVar("T")
OWNER = "0x" + "11" * 20


async def add_agent(engine: AsyncEngine, token_id: int, credits: int = 0) -> None:
    """An agent with ``credits`` granted through the ledger."""
    async with engine.begin() as conn:
        await conn.execute(
            insert(Agent).values(
                token_id=token_id,
                package_type=0,
                owner=OWNER,
                created_block=1,
                owner_since_block=1,
            )
        )
    if credits:
        await as_writer(AgentWriter(engine), token_id, grant, credits, "initial")


async def as_writer(
    writer: AgentWriter,
    token_id: int,
    operation: Callable[..., Awaitable[T]],
    *args: Any,
    **kwargs: Any,
) -> T:
    """``operation(conn, agent, *args)`` in the agent's writer transaction."""
    async with writer.write(token_id) as (conn, agent):
        return await operation(conn, agent, *args, **kwargs)


async def both_balances(conn: AsyncConnection, token_id: int) -> tuple[Balances, Balances]:
    """(cached on the agent row, summed from the ledger)."""
    return await cached_balances(conn, token_id), await ledger_balances(conn, token_id)


async def entry_count(conn: AsyncConnection, token_id: int) -> int:
    count = await conn.scalar(
        select(func.count()).select_from(CreditEntry).where(CreditEntry.token_id == token_id)
    )
    return int(count or 0)


async def concurrent_spends(engine: AsyncEngine, token_id: int, keys: list[str]) -> list[str]:
    """Spend 1 credit per key, all at once in tasks: "ok", "replayed" or "insufficient"."""
    writer = AgentWriter(engine)

    async def one(key: str) -> str:
        try:
            change = await as_writer(writer, token_id, spend, 1, key)
        except InsufficientCredits:
            return "insufficient"
        return "replayed" if change.replayed else "ok"

    return list(await asyncio.gather(*(one(key) for key in keys)))


def spend_in_process(url: str, token_id: int, keys: list[str], start: Any, results: Any) -> None:
    """The body of one spender process: its own engine, ``keys`` spent concurrently once
    every process is ready (``start``, a multiprocessing barrier); the outcomes, or the
    error, go to the ``results`` queue."""

    async def main() -> list[str]:
        engine = create_async(url)
        try:
            async with engine.connect() as conn:  # connected before the start line
                await conn.scalar(select(1))
            await asyncio.to_thread(start.wait)
            return await concurrent_spends(engine, token_id, keys)
        finally:
            await engine.dispose()

    try:
        results.put(asyncio.run(main()))
    except BaseException as exc:
        results.put(f"error: {exc!r}")
        raise
