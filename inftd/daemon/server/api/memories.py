"""An agent's memories (owner or operator only: they are private).

GET  /v1/agents/{tokenId}/memories?q=...&k=...      the k best for a query
GET  /v1/agents/{tokenId}/memories?limit=&before=   newest written first, paged
POST /v1/agents/{tokenId}/memories                  add a note {text, importance?}
"""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import Field

from inftd.agents.memory import MAX_K, MAX_QUERY, MAX_TEXT, list_memories, recall, remember
from inftd.daemon.server.contract.routes import OWNER, Answer, Routes
from inftd.daemon.server.contract.wire import (
    MAX_BIGINT,
    Body,
    Code,
    Count,
    Query,
    Time,
    TokenId,
    Unit,
    Visible,
    Wire,
)
from inftd.daemon.server.http import RUNTIME

ROUTES = Routes("memory", "An agent's memories: notes, generations, feedback, messages")
MEMORIES = "/v1/agents/{token_id}/memories"
DEFAULT_PAGE = 20  # memories per page without ?limit
MAX_PAGE = 100  # memories per page at most
NOTE = "note"  # the kind of memories the owner adds
DEFAULT_IMPORTANCE = 0.5  # of a note that does not say


class MemoryItem(Wire):
    id: Count
    kind: str = Field(description="note, generation, feedback, message, summary...")
    text: str
    importance: Unit
    merged: Count = Field(description="For a summary: how many memories it stands for")
    created_at: Time | None
    source_id: str | None


class MemoryFound(Wire):
    id: Count
    kind: str
    text: str
    importance: Unit
    merged: Count
    created_at: Time | None
    score: float = Field(description="relevance, recency, importance")


class MemoryPage(Wire):
    memories: list[MemoryItem]
    next_before: Count | None = Field(description="Pass as before for more")


class MemorySearch(Wire):
    query: str
    memories: list[MemoryFound]


class MemoriesQuery(Query):
    q: Annotated[Visible, Field(max_length=MAX_QUERY)] | None = Field(
        None,
        description=f"What to recall: at most {MAX_QUERY} characters, not only spaces, no NUL",
        examples=["watercolor lighthouse", "the cat Miso"],
    )
    k: Annotated[int, Field(ge=1, le=MAX_K)] | None = Field(
        None, description=f"With q: how many, 1 to {MAX_K} (default: memory.top_k)"
    )
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = Field(
        DEFAULT_PAGE, description=f"Without q: memories per page, 1 to {MAX_PAGE}"
    )
    before: Annotated[int, Field(ge=1, le=MAX_BIGINT)] | None = Field(
        None, description="Without q: only smaller ids, the previous page's nextBefore"
    )


class MemoryNote(Body):
    text: Annotated[Visible, Field(max_length=MAX_TEXT), Code("bad_memory")]
    importance: Annotated[Unit, Code("bad_memory")] = Field(
        DEFAULT_IMPORTANCE, description=f"Default {DEFAULT_IMPORTANCE}"
    )


@ROUTES.get(
    MEMORIES,
    "listMemories",
    "The agent's memories: the best for ?q=, else newest first (owner or operator)",
    auth=OWNER,
    ok=Answer(
        "With q: the k best by relevance, recency and importance; "
        "without: a page, newest written first",
        MemorySearch | MemoryPage,
    ),
    errors={502: ("embedding_failed",)},
)
async def get_memories(
    request: web.Request, token_id: TokenId, query: MemoriesQuery
) -> MemorySearch | MemoryPage:
    runtime = request.app[RUNTIME]
    async with runtime.engine.connect() as conn:
        if query.q is not None:
            k = query.k or runtime.settings.memory.top_k
            found = await recall(conn, runtime.embedder, token_id, query.q, k)
            memories = [MemoryFound.model_validate(m, from_attributes=True) for m in found]
            return MemorySearch(query=query.q, memories=memories)
        page = await list_memories(conn, token_id, query.limit, query.before)
    more = page[-1].id if len(page) == query.limit else None
    items = [MemoryItem.model_validate(m, from_attributes=True) for m in page]
    return MemoryPage(memories=items, next_before=more)


@ROUTES.post(
    MEMORIES,
    "addMemory",
    "Add a note to the agent's memory (owner or operator)",
    auth=OWNER,
    ok=Answer("Stored; the owner gets memory.added", MemoryItem, status=201),
    errors={400: ("bad_memory",), 502: ("embedding_failed",)},
)
async def post_memory(request: web.Request, token_id: TokenId, body: MemoryNote) -> MemoryItem:
    runtime = request.app[RUNTIME]
    bound = runtime.settings.memory.max_per_agent
    async with runtime.writer.write(token_id) as (conn, _):
        memory_id = await remember(
            conn, runtime.embedder, token_id, NOTE, body.text, body.importance, max_per_agent=bound
        )
        [stored] = await list_memories(conn, token_id, 1, before=memory_id + 1)
    runtime.hub.poke()
    return MemoryItem.model_validate(stored, from_attributes=True)


add_routes = ROUTES.add_to
