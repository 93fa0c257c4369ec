"""One writer at a time per agent.

Every change to an agent's state (credits, learning, memory, messages it sends) runs
inside ``AgentWriter.write``: an asyncio lock per token serializes writers in this
process, and the agent's row is locked in the database (``SELECT ... FOR UPDATE`` on
PostgreSQL) so writers in other processes wait too. SQLite has one writer per database
and no row locks; the scale-out target with several processes is PostgreSQL.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from inftd.agents.errors import UnknownAgent
from inftd.agents.owners import MAX_STORED_TOKEN_ID
from inftd.store.models import Agent

# Built once, as the hot statements are: building one cost more than running it.
AGENT_ROW = select(Agent).where(Agent.token_id == bindparam("token_id"))
# FOR NO KEY UPDATE: inserting a row that references another agent (a message, a grant)
# takes KEY SHARE on that agent, which FOR UPDATE would conflict with, so two agents
# writing to each other at once would deadlock. Agents' keys never change.
_AGENT_HELD = AGENT_ROW.with_for_update(key_share=True)


async def lock_agent(conn: AsyncConnection, token_id: int) -> Any:
    """The agent's row, locked for the rest of ``conn``'s transaction; ``UnknownAgent`` if none."""
    if not 0 <= token_id <= MAX_STORED_TOKEN_ID:
        raise UnknownAgent(token_id)
    query = _AGENT_HELD if conn.dialect.name == "postgresql" else AGENT_ROW
    row = (await conn.execute(query, {"token_id": token_id})).first()
    if row is None:
        raise UnknownAgent(token_id)
    return row


class AgentWriter:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()

    def _lock(self, token_id: int) -> asyncio.Lock:
        lock = self._locks.get(token_id)
        if lock is None:
            lock = self._locks[token_id] = asyncio.Lock()
        return lock

    @asynccontextmanager
    async def write(self, token_id: int) -> AsyncIterator[tuple[AsyncConnection, Any]]:
        """A transaction holding the agent: yields the connection and the locked row.

        The transaction commits when the block ends and rolls back if it raises.
        """
        async with self._lock(token_id), self.engine.begin() as conn:
            yield conn, await lock_agent(conn, token_id)
