"""The agent as clients see it, with the seed's field names (``packageTokenId``, ...)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from inftd.agents.errors import UnknownAgent
from inftd.agents.writer import AGENT_ROW
from inftd.store.models import Agent, Generation, LearningEntry

RECENT_ITEMS = 20  # newest entries of the growing lists shown inline; the rest are paged


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC; SQLite hands back naive datetimes, which are UTC here."""
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def reset_after(evolution: Mapping[str, Any] | None) -> int:
    """Learning entries with ids up to this were reset (inftd.agents.learning): not shown."""
    value = (evolution or {}).get("resetAfter")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# Built once (building one cost more than running it): the reads of GET /v1/agents/{id}.
_LEARNING = (
    select(LearningEntry)
    .where(LearningEntry.token_id == bindparam("token_id"), LearningEntry.id > bindparam("after"))
    .order_by(LearningEntry.id.desc())
    .limit(RECENT_ITEMS)
)
_GENERATED = (  # the columns shown, not the rounds and parts of ``detail``
    select(
        Generation.id,
        Generation.kind,
        Generation.prompt,
        Generation.content_uri,
        Generation.content_hash,
        Generation.provider,
        Generation.created_at,
    )
    .where(Generation.token_id == bindparam("token_id"), Generation.status == "succeeded")
    .order_by(Generation.created_at.desc())
    .limit(RECENT_ITEMS)
)


_SUMMARIES = (  # a page of GET /v1/agents: one more than asked, to know whether more follow
    select(
        Agent.token_id,
        Agent.package_type,
        Agent.owner,
        Agent.total_credits,
        Agent.used_credits,
        Agent.reserved_credits,
        Agent.level,
        Agent.last_activity,
    )
    .where(Agent.token_id > bindparam("after"))
    .order_by(Agent.token_id)
    .limit(bindparam("more"))
)


def summary(agent: Any) -> dict[str, Any]:
    """An agent as the list shows it."""
    return {
        "packageTokenId": agent.token_id,
        "packageType": agent.package_type,
        "owner": agent.owner,
        "availableCredits": agent.total_credits - agent.used_credits - agent.reserved_credits,
        "level": agent.level,
        "lastActivity": iso(agent.last_activity),
    }


async def agent_page(
    conn: AsyncConnection, after: int, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    """Summaries of the ``limit`` agents after token id ``after``, and whether more follow."""
    rows = (await conn.execute(_SUMMARIES, {"after": after, "more": limit + 1})).all()
    return [summary(row) for row in rows[:limit]], len(rows) > limit


async def agent_state(conn: AsyncConnection, token_id: int) -> dict[str, Any]:
    agent = (await conn.execute(AGENT_ROW, {"token_id": token_id})).first()
    if agent is None:
        raise UnknownAgent(token_id)
    metadata = agent.agent_metadata or {}
    return {
        "packageTokenId": agent.token_id,
        "packageType": agent.package_type,
        "owner": agent.owner,
        "totalCredits": agent.total_credits,
        "usedCredits": agent.used_credits,
        "reservedCredits": agent.reserved_credits,
        "availableCredits": agent.total_credits - agent.used_credits - agent.reserved_credits,
        "level": agent.level,
        "experience": agent.experience,
        "agentMetadata": metadata.get("uri", ""),
        "agentStateHash": metadata.get("stateHash"),
        "learningData": await _learning(conn, token_id, reset_after(agent.evolution)),
        "collectionInfluences": list(agent.collection_influences or []),
        "generatedContent": await _generated(conn, token_id),
        "lastActivity": iso(agent.last_activity),
        "preferences": dict(agent.preferences or {}),
    }


async def _learning(conn: AsyncConnection, token_id: int, after: int) -> list[dict[str, Any]]:
    rows = await conn.execute(_LEARNING, {"token_id": token_id, "after": after})
    return [
        {
            "generationId": r.generation_id,
            "rating": r.rating,
            "tags": r.tags,
            "note": r.note,
            "createdAt": iso(r.created_at),
        }
        for r in rows
    ]


async def _generated(conn: AsyncConnection, token_id: int) -> list[dict[str, Any]]:
    rows = await conn.execute(_GENERATED, {"token_id": token_id})
    return [
        {
            "id": r.id,
            "kind": r.kind,
            "prompt": r.prompt,
            "contentUri": r.content_uri,
            "contentHash": r.content_hash,
            "provider": r.provider,
            "createdAt": iso(r.created_at),
        }
        for r in rows
    ]
