"""Who owns an agent now: the projection of the package token's latest indexed Transfer."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from inftd.agents.errors import UnknownAgent
from inftd.store.models import Agent

MAX_STORED_TOKEN_ID = 2**63 - 1  # token ids are BIGINT columns; larger ones have no agent


async def current_owner(conn: AsyncConnection, token_id: int) -> str:
    """The checksummed owner address; raises ``UnknownAgent``."""
    if not 0 <= token_id <= MAX_STORED_TOKEN_ID:
        raise UnknownAgent(token_id)
    owner = await conn.scalar(select(Agent.owner).where(Agent.token_id == token_id))
    if owner is None:
        raise UnknownAgent(token_id)
    return owner
