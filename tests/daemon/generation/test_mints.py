"""The hand-over to the relayer: one pending mint per generation, keyed by its requestKey."""

from __future__ import annotations

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.daemon.generation.mints import add_mint, mint_of, request_key
from inftd.store.models import Generation, Mint
from tests.daemon.generation.support import add_agent


def test_the_request_key_is_keccak_of_the_generation_id() -> None:
    # keccak256("") is the well-known c5d246...; a different id gives a different key
    assert request_key("") == ("0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")
    assert request_key("a") != request_key("b")


async def test_a_generation_gets_one_pending_mint(engine: AsyncEngine) -> None:
    await add_agent(engine, 1)
    async with engine.begin() as conn:
        await conn.execute(
            insert(Generation).values(
                id="g-1", token_id=1, kind="text", prompt="p", source="api", status="succeeded"
            )
        )
        assert await add_mint(conn, "g-1") is True
        assert await add_mint(conn, "g-1") is False  # already there: written once
    async with engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(Mint)) == 1
        mint = await mint_of(conn, "g-1")
    assert mint is not None
    assert (mint["status"], mint["requestKey"]) == ("pending", request_key("g-1"))
