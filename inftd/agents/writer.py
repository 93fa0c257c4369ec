"""One writer at a time per agent.

Every change to an agent's state (credits, learning, memory, messages it sends) runs
inside ``AgentWriter.write``: an asyncio lock per token serializes writers in this
process, and the agent's row is locked in the database (``SELECT ... FOR UPDATE`` on
PostgreSQL) so writers in other processes wait too. SQLite has one writer per database
and no row locks; the scale-out target with several processes is PostgreSQL.

A request let in as an agent's owner (``admit``: the API checks the owner on this
process's live copy, which can lag a sale by a moment) is checked again on the locked row:
``NotOwner`` if the token changed hands since, so a stale copy never lets a seller write.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from inftd.agents.errors import NotOwner, UnknownAgent
from inftd.agents.owners import MAX_STORED_TOKEN_ID
from inftd.store.models import Agent

# Built once, as the hot statements are: building one cost more than running it.
AGENT_ROW = select(Agent).where(Agent.token_id == bindparam("token_id"))
# FOR NO KEY UPDATE: inserting a row that references another agent (a message, a grant)
# takes KEY SHARE on that agent, which FOR UPDATE would conflict with, so two agents
# writing to each other at once would deadlock. Agents' keys never change.
_AGENT_HELD = AGENT_ROW.with_for_update(key_share=True)


# The owner each token's writes were let in as, in this request (its task and the tasks
# it starts); empty outside requests, and for the operator, who may write to any agent.
_ADMITTED: ContextVar[Mapping[int, str]] = ContextVar("inftd_admitted", default={})  # noqa: B039


def admit(token_id: int, owner: str) -> None:
    """The current request acts as ``owner`` of ``token_id``: its writes must find it so."""
    _ADMITTED.set({**_ADMITTED.get(), token_id: owner})


def check_admitted(token_id: int, row: Any) -> None:
    """``NotOwner`` if the request was let in as an owner the locked row no longer has."""
    admitted = _ADMITTED.get().get(token_id)
    if admitted is not None and row.owner != admitted:
        raise NotOwner(token_id, admitted, row.owner)


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
            row = await lock_agent(conn, token_id)
            check_admitted(token_id, row)
            yield conn, row
