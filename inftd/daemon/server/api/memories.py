"""An agent's memories (owner or operator only: they are private).

GET  /v1/agents/{tokenId}/memories?q=...&k=...      the k best for a query
GET  /v1/agents/{tokenId}/memories?limit=&before=   newest written first, paged
POST /v1/agents/{tokenId}/memories                  add a note {text, importance?}
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from inftd.agents.errors import BadMemory, UnknownAgent
from inftd.agents.memory import (
    MAX_K,
    MAX_QUERY,
    Recalled,
    StoredMemory,
    list_memories,
    recall,
    remember,
)
from inftd.agents.owners import MAX_STORED_TOKEN_ID
from inftd.agents.views import iso
from inftd.daemon.errors import EmbeddingError
from inftd.daemon.server.access import require_owner
from inftd.daemon.server.api.agents import MAX_TOKEN_DIGITS, token_id_of
from inftd.daemon.server.http import RUNTIME, ApiError, json_response, read_json

DEFAULT_PAGE = 20  # memories per page without ?limit
MAX_PAGE = 100  # memories per page at most
NOTE = "note"  # the kind of memories the owner adds
NOTE_FIELDS = frozenset({"text", "importance"})
DEFAULT_IMPORTANCE = 0.5  # of a note that does not say
NOTE_HELP = 'send {"text": "...", "importance"?: 0..1}'


def memory_json(memory: StoredMemory | Recalled) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": memory.id,
        "kind": memory.kind,
        "text": memory.text,
        "importance": memory.importance,
        "merged": memory.merged,
        "createdAt": iso(memory.created_at),
    }
    if isinstance(memory, StoredMemory):
        item["sourceId"] = memory.source_id
    else:
        item["score"] = round(memory.score, 6)
    return item


def _int_query(request: web.Request, name: str, default: int | None, low: int, high: int) -> Any:
    """An integer query parameter of at least ``low`` (larger ones are cut to ``high``)."""
    raw = request.query.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > MAX_TOKEN_DIGITS or int(raw) < low:
        raise ApiError(400, "bad_query", f"{name} must be an integer of at least {low}")
    return min(int(raw), high)


def _query_text(request: web.Request) -> str:
    q = request.query["q"].strip()
    if not q or len(q) > MAX_QUERY or "\x00" in q:
        raise ApiError(400, "bad_query", f"q must have 1 to {MAX_QUERY} characters and no NUL")
    return q


def _embedding_failed(exc: EmbeddingError) -> ApiError:
    return ApiError(502, "embedding_failed", str(exc))  # names the provider, never the key


async def get_memories(request: web.Request) -> web.Response:
    token_id = token_id_of(request)
    await require_owner(request, token_id)
    if "q" in request.query:
        return await _search(request, token_id)
    limit = _int_query(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
    # Ids beyond the column's range: "before" them is every memory.
    before = _int_query(request, "before", None, 1, MAX_STORED_TOKEN_ID)
    async with request.app[RUNTIME].engine.connect() as conn:
        page = await list_memories(conn, token_id, limit, before)
    more = page[-1].id if len(page) == limit else None
    return json_response({"memories": [memory_json(m) for m in page], "nextBefore": more})


async def _search(request: web.Request, token_id: int) -> web.Response:
    runtime = request.app[RUNTIME]
    query = _query_text(request)
    k = _int_query(request, "k", runtime.settings.memory.top_k, 1, MAX_K)
    async with runtime.engine.connect() as conn:
        try:
            found = await recall(conn, runtime.embedder, token_id, query, k)
        except EmbeddingError as exc:
            raise _embedding_failed(exc) from None
    return json_response({"query": query, "memories": [memory_json(m) for m in found]})


def parse_note(body: Any) -> tuple[str, float]:
    """(text, importance) of a note; 400 if the body has another shape."""
    if not isinstance(body, dict) or "text" not in body or set(body) - NOTE_FIELDS:
        raise ApiError(400, "bad_request", NOTE_HELP)
    text, importance = body["text"], body.get("importance", DEFAULT_IMPORTANCE)
    if not isinstance(text, str):
        raise ApiError(400, "bad_memory", "text must be a string")
    if isinstance(importance, bool) or not isinstance(importance, int | float):
        raise ApiError(400, "bad_memory", "importance must be a number between 0 and 1")
    return text, float(importance)


async def post_memory(request: web.Request) -> web.Response:
    token_id = token_id_of(request)
    await require_owner(request, token_id)
    text, importance = parse_note(await read_json(request))
    runtime = request.app[RUNTIME]
    bound = runtime.settings.memory.max_per_agent
    try:
        async with runtime.writer.write(token_id) as (conn, _):
            memory_id = await remember(
                conn, runtime.embedder, token_id, NOTE, text, importance, max_per_agent=bound
            )
            [stored] = await list_memories(conn, token_id, 1, before=memory_id + 1)
    except BadMemory as exc:
        raise ApiError(400, "bad_memory", str(exc)) from None
    except UnknownAgent as exc:  # gone between the owner check and the write (a reorg)
        raise ApiError(404, "unknown_agent", str(exc)) from None
    except EmbeddingError as exc:
        raise _embedding_failed(exc) from None
    runtime.hub.poke()
    return json_response(memory_json(stored), 201)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/agents/{token_id}/memories", get_memories)
    app.router.add_post("/v1/agents/{token_id}/memories", post_memory)
