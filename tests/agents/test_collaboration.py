"""Collaboration grants: granted, listed both ways, revoked, re-granted, published to both
agents; refused to oneself or to an unknown agent."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.agents.collaboration import Grant, can_borrow, collaborations, grant, revoke
from inftd.agents.errors import SelfCollaboration, UnknownCollaboration, UnknownPeer
from inftd.agents.writer import AgentWriter
from inftd.store.db import create_async
from inftd.store.models import Agent, Collaboration, EventRecord
from tests.support.schema import at_head

ALICE = "0x" + "a1" * 20
BOB = "0x" + "b2" * 20


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """Agents 1, 2 and 3."""
    at_head(database_url)
    engine = create_async(database_url)
    async with engine.begin() as conn:
        for token_id in (1, 2, 3):
            await conn.execute(
                insert(Agent).values(
                    token_id=token_id,
                    package_type=0,
                    owner=ALICE,
                    created_block=1,
                    owner_since_block=1,
                )
            )
    yield engine
    await engine.dispose()


async def grant_as(
    engine: AsyncEngine, granter: int, grantee: int, by: str = ALICE
) -> tuple[Grant, bool]:
    async with AgentWriter(engine).write(granter) as (conn, _):
        return await grant(conn, granter, grantee, by)


async def revoke_as(engine: AsyncEngine, granter: int, grantee: int) -> Grant:
    async with AgentWriter(engine).write(granter) as (conn, _):
        return await revoke(conn, granter, grantee)


async def borrow(engine: AsyncEngine, granter: int, grantee: int) -> bool:
    async with engine.connect() as conn:
        return await can_borrow(conn, granter, grantee)


async def events(engine: AsyncEngine) -> list[tuple[str, int | None, bool]]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(EventRecord).order_by(EventRecord.seq))
        return [(r.type, r.token_id, r.private) for r in rows]


async def test_a_grant_is_one_way_listed_both_ways_and_published_to_both(
    engine: AsyncEngine,
) -> None:
    made, new = await grant_as(engine, 1, 2)
    assert (new, made.active) == (True, True)
    assert (made.granter, made.grantee, made.granted_by) == (1, 2, ALICE)
    assert await borrow(engine, 1, 2)
    assert not await borrow(engine, 2, 1)  # one way only
    assert not await borrow(engine, 1, 3)
    async with engine.connect() as conn:
        one, two = await collaborations(conn, 1), await collaborations(conn, 2)
    assert [(g.granter, g.grantee) for g in one["granted"]] == [(1, 2)]
    assert one["received"] == []
    assert [(g.granter, g.grantee) for g in two["received"]] == [(1, 2)]
    assert two["granted"] == []
    assert await events(engine) == [
        ("collaboration.granted", 1, False),
        ("collaboration.granted", 2, False),
    ]


async def test_granting_again_changes_nothing(engine: AsyncEngine) -> None:
    first, _ = await grant_as(engine, 1, 2)
    again, new = await grant_as(engine, 1, 2, by=BOB)
    assert not new
    assert (again.granted_by, again.created_at.replace(tzinfo=None)) == (
        ALICE,
        first.created_at.replace(tzinfo=None),
    )
    assert len(await events(engine)) == 2


async def test_revoke_ends_it_and_a_new_grant_reactivates_the_same_pair(
    engine: AsyncEngine,
) -> None:
    await grant_as(engine, 1, 2)
    revoked = await revoke_as(engine, 1, 2)
    assert revoked.revoked_at is not None
    assert not revoked.active
    assert not await borrow(engine, 1, 2)
    async with engine.connect() as conn:
        assert await collaborations(conn, 2) == {"granted": [], "received": []}
    with pytest.raises(UnknownCollaboration):
        await revoke_as(engine, 1, 2)  # already revoked
    with pytest.raises(UnknownCollaboration):
        await revoke_as(engine, 1, 2**64)  # beyond BIGINT: no agent, not a database error
    again, new = await grant_as(engine, 1, 2, by=BOB)
    assert (new, again.granted_by) == (True, BOB)
    assert await borrow(engine, 1, 2)
    async with engine.connect() as conn:
        rows = await conn.scalar(select(func.count()).select_from(Collaboration))
    assert rows == 1  # one row per pair, re-activated
    kinds = [kind for kind, _, _ in await events(engine)]
    assert (
        kinds
        == ["collaboration.granted"] * 2
        + ["collaboration.revoked"] * 2
        + ["collaboration.granted"] * 2
    )


async def test_refused_grants_change_nothing(engine: AsyncEngine) -> None:
    with pytest.raises(SelfCollaboration):
        await grant_as(engine, 1, 1)
    for nobody in (9, 2**63, -1):
        with pytest.raises(UnknownPeer) as caught:
            await grant_as(engine, 1, nobody)
        assert caught.value.role == "grantee"
    with pytest.raises(UnknownCollaboration):
        await revoke_as(engine, 1, 2)  # never granted
    async with engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(Collaboration)) == 0
    assert await events(engine) == []
