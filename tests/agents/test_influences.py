"""collectionInfluences: from the collection, from collaboration grants (revoked ones not),
and the anonymous shared view, built only from and given only to agents that opted in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import fields
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.agents.influences import (
    MIN_SHARED_AGENTS,
    SharedStyle,
    influences_of,
    refresh_influences,
    shared_styles,
)
from inftd.agents.learning import Lesson, learn
from inftd.agents.writer import AgentWriter
from inftd.store.models import Agent, Collaboration
from tests.agents.learning_helpers import (
    NOW,
    OWNER,
    add_agent,
    agent_row,
    event_types,
    migrated,
    rate,
)


def taught(*styles: str) -> dict[str, Any]:
    """An evolution with a 5-star lesson for each style named (repeat a name for more)."""
    evolution: dict[str, Any] = {}
    for style in styles:
        evolution = learn(evolution, Lesson({"styles": (style,)}, 1.0), NOW)
    return evolution


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    async with migrated(database_url) as engine:
        yield engine


async def styles_of(engine: AsyncEngine, token_id: int) -> list[str]:
    async with engine.connect() as conn:
        return (await influences_of(conn, token_id, NOW)).styles


async def test_the_collection_is_the_other_agents_of_the_package_type_by_level(
    engine: AsyncEngine,
) -> None:
    await add_agent(engine, 1, evolution=taught("self portrait", "self portrait"))
    await add_agent(engine, 2, evolution=taught("noir", "noir"))
    await add_agent(engine, 3, evolution=taught("noir", "ink"))
    await add_agent(engine, 4, level=11, evolution=taught("pop"))
    await add_agent(engine, 5, package_type=1, evolution=taught("vaporwave", "vaporwave"))
    async with engine.connect() as conn:
        found = await influences_of(conn, 1, NOW)
    scores = {s.style: (round(s.score, 3), s.agents) for s in found.collection}
    assert scores == {"pop": (2.0, 1), "noir": (1.5, 2), "ink": (0.5, 1)}
    assert found.styles == ["pop", "noir", "ink"]
    assert found.shared is None
    assert await styles_of(engine, 5) == []  # alone in its package type
    assert "vaporwave" not in await styles_of(engine, 2)
    assert "self portrait" in await styles_of(engine, 2)


async def grant(engine: AsyncEngine, granter: int, grantee: int, revoked: bool = False) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            insert(Collaboration).values(
                granter_token_id=granter,
                grantee_token_id=grantee,
                granted_by=OWNER,
                revoked_at=NOW if revoked else None,
            )
        )


async def test_collaborators_lend_their_styles_until_the_grant_is_revoked(
    engine: AsyncEngine,
) -> None:
    await add_agent(engine, 1)
    await add_agent(engine, 6, package_type=1, evolution=taught("cyberpunk", "cyberpunk"))
    await add_agent(engine, 7, package_type=1, evolution=taught("baroque", "baroque"))
    await add_agent(engine, 8, package_type=1, evolution=taught("gothic"))
    await grant(engine, 6, 1)
    await grant(engine, 7, 1, revoked=True)
    await grant(engine, 1, 8)  # the other way: 8 may borrow from 1, not 1 from 8
    async with engine.connect() as conn:
        found = await influences_of(conn, 1, NOW)
    assert [
        (lender.token_id, [s.style for s in lender.styles]) for lender in found.collaborators
    ] == [(6, ["cyberpunk"])]
    assert found.styles == ["cyberpunk"]
    async with engine.begin() as conn:
        await conn.execute(
            update(Collaboration)
            .where(Collaboration.granter_token_id == 6)
            .values(revoked_at=NOW + timedelta(seconds=1))
        )
    assert await styles_of(engine, 1) == []


async def share(engine: AsyncEngine, token_id: int, flag: bool) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            update(Agent).where(Agent.token_id == token_id).values(share_learning=flag)
        )


async def test_the_shared_view_is_anonymous_and_only_from_and_for_opted_in_agents(
    engine: AsyncEngine,
) -> None:
    sharing, private, other_type = (2, 3, 4), (10, 11, 12), 9
    await add_agent(engine, 1)
    for token_id in (*sharing, *private):
        await add_agent(engine, token_id, share_learning=token_id in sharing)
    await add_agent(engine, other_type, package_type=1, share_learning=True)
    for token_id in sharing:
        await rate(engine, token_id, 5, {"style": "ukiyo-e"})
        await rate(engine, token_id, 1, {"style": "sepia"})  # rates badly
    for token_id in sharing[:2]:
        await rate(engine, token_id, 5, {"style": "glitch"})  # too few agents to show
    for token_id in private:
        await rate(engine, token_id, 5, {"subject": "x"}, tags=["style:lowpoly"])
    for _ in range(MIN_SHARED_AGENTS):
        await rate(engine, other_type, 5, {"style": "bauhaus"})

    async with engine.connect() as conn:
        assert await shared_styles(conn, 0) == [SharedStyle("ukiyo-e", 5.0, 3)]
        assert (await influences_of(conn, 1, NOW)).shared is None  # not opted in
    await share(engine, 1, True)
    async with engine.connect() as conn:
        found = await influences_of(conn, 1, NOW)
    assert found.shared == [SharedStyle("ukiyo-e", 5.0, 3)]
    # What the shared view holds of a style: nothing that names an agent or an owner.
    assert [f.name for f in fields(SharedStyle)] == ["style", "average_rating", "ratings"]
    assert "ukiyo-e" in found.styles

    await share(engine, sharing[0], False)  # its ratings leave the view at once
    async with engine.connect() as conn:
        assert (await influences_of(conn, 1, NOW)).shared == []


async def test_refresh_stores_the_influences_and_tells_only_on_change(engine: AsyncEngine) -> None:
    await add_agent(engine, 1)
    await add_agent(engine, 2, evolution=taught("noir", "noir"))
    writer = AgentWriter(engine)
    for _ in range(2):
        async with writer.write(1) as (conn, _agent):
            await refresh_influences(conn, 1, NOW)
    assert (await agent_row(engine, 1)).collection_influences == ["noir"]
    async with engine.connect() as conn:
        assert await event_types(conn, 1) == ["agent.updated"]
