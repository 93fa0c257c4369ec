"""Agents and succeeded generations in a real database, for the learning tests."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from inftd.agents.embeddings import LocalEmbedder
from inftd.agents.learning import Feedback, FeedbackOutcome, give_feedback
from inftd.agents.writer import AgentWriter
from inftd.store.models import Agent, EventRecord, Generation
from tests.support.state import migrated as migrated  # shared; the tests import it here

EMBEDDER = LocalEmbedder(64)
NOW = datetime(2030, 1, 1, tzinfo=UTC)
OWNER = "0x" + "11" * 20


async def add_agent(
    engine: AsyncEngine, token_id: int, package_type: int = 0, **values: Any
) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            insert(Agent).values(
                token_id=token_id,
                package_type=package_type,
                owner=values.pop("owner", OWNER),
                created_block=1,
                owner_since_block=1,
                **values,
            )
        )


async def add_generation(
    engine: AsyncEngine,
    token_id: int,
    options: dict[str, Any] | None = None,
    *,
    status: str = "succeeded",
    collaborator: int | None = None,
    provider: str | None = "local",
    model: str | None = "template-text-1",
    kind: str = "image",
) -> str:
    """A generation inserted as the pipeline of issue #6 would leave it."""
    generation_id = str(uuid.uuid4())
    async with engine.begin() as conn:
        await conn.execute(
            insert(Generation).values(
                id=generation_id,
                token_id=token_id,
                kind=kind,
                prompt="a lighthouse at dusk",
                options=options or {},
                source="api",
                status=status,
                provider=provider,
                model=model,
                collaborator_token_id=collaborator,
            )
        )
    return generation_id


async def rate(
    engine: AsyncEngine,
    token_id: int,
    rating: int,
    options: dict[str, Any] | None = None,
    *,
    tags: Sequence[str] = (),
    now: datetime = NOW,
    collaborator: int | None = None,
) -> FeedbackOutcome:
    """A new succeeded generation of ``token_id``, rated through ``give_feedback``."""
    generation_id = await add_generation(engine, token_id, options, collaborator=collaborator)
    feedback = Feedback(rating, tuple(tags))
    return await give_feedback(AgentWriter(engine), EMBEDDER, generation_id, feedback, now)


async def agent_row(engine: AsyncEngine, token_id: int) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(select(Agent).where(Agent.token_id == token_id))).one()


async def event_types(conn: AsyncConnection, token_id: int) -> list[str]:
    rows = await conn.scalars(
        select(EventRecord.type).where(EventRecord.token_id == token_id).order_by(EventRecord.seq)
    )
    return list(rows)
