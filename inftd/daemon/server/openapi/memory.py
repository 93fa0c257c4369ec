"""An agent's memories (``inftd.daemon.server.api.memories``)."""

from __future__ import annotations

from typing import Any

from inftd.agents import memory
from inftd.daemon.server.api.memories import DEFAULT_IMPORTANCE, DEFAULT_PAGE, MAX_PAGE
from inftd.daemon.server.openapi.parts import (
    BAD_BODY,
    COUNT,
    OWNER,
    STRING,
    TIME,
    Schema,
    answer,
    error,
    json_body,
    nullable,
    obj,
    operation,
    ref,
)
from inftd.daemon.server.openapi.section import Section

MEMORIES = "/v1/agents/{token_id}/memories"
TOKEN = ref("TokenId", "parameters")
OWNER_ERRORS = {
    "401": ref("Unauthorized", "responses"),
    "403": ref("NotOwner", "responses"),
    "404": ref("UnknownAgent", "responses"),
}
EMBEDDING_FAILED = error(
    "The configured embedding provider failed or refused (the message names it)",
    "embedding_failed",
)
UNIT = {"type": "number", "minimum": 0, "maximum": 1}


def _paths() -> dict[str, Any]:
    query = [ref(name, "parameters") for name in ("MemoryQ", "MemoryK", "MemoryLimit")]
    return {
        MEMORIES: {
            "get": operation(
                "listMemories",
                "memory",
                "The agent's memories: the best for ?q=, else newest first (owner or operator)",
                {
                    "200": answer(
                        "With q: the k best by relevance, recency and importance; "
                        "without: a page, newest written first",
                        {"oneOf": [ref("MemorySearch"), ref("MemoryPage")]},
                    ),
                    "400": error("Bad token id or query", "bad_token_id", "bad_query"),
                    **OWNER_ERRORS,
                    "502": EMBEDDING_FAILED,
                },
                parameters=[TOKEN, *query, ref("MemoryBefore", "parameters")],
                security=OWNER,
            ),
            "post": operation(
                "addMemory",
                "memory",
                "Add a note to the agent's memory (owner or operator)",
                {
                    "201": answer("Stored; the owner gets memory.added", ref("MemoryItem")),
                    "400": error(
                        "Bad token id, body not JSON or of another shape, or a bad note",
                        "bad_token_id",
                        *BAD_BODY,
                        "bad_memory",
                    ),
                    **OWNER_ERRORS,
                    "413": ref("BodyTooLarge", "responses"),
                    "502": EMBEDDING_FAILED,
                },
                parameters=[TOKEN],
                security=OWNER,
                requestBody=json_body(ref("MemoryNote"), "The note"),
            ),
        }
    }


def _query(name: str, description: str, schema: Schema) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def _parameters() -> dict[str, Any]:
    digits = {"type": "string", "pattern": "^[0-9]{1,20}$"}
    return {
        "MemoryQ": _query(
            "q",
            f"What to recall: 1 to {memory.MAX_QUERY} characters (after trimming), no NUL",
            {"type": "string", "examples": ["watercolor lighthouse", "the cat Miso"]},
        ),
        "MemoryK": _query(
            "k",
            f"With q: how many, 1 to {memory.MAX_K} (default: memory.top_k of the settings)",
            digits,
        ),
        "MemoryLimit": _query(
            "limit",
            f"Without q: memories per page, 1 to {MAX_PAGE} (default {DEFAULT_PAGE})",
            digits,
        ),
        "MemoryBefore": _query(
            "before", "Without q: only smaller ids, the previous page's nextBefore", digits
        ),
    }


def _schemas() -> dict[str, Schema]:
    item: dict[str, Schema] = {
        "id": COUNT,
        "kind": {
            "type": "string",
            "description": "note, generation, feedback, message, summary...",
        },
        "text": STRING,
        "importance": UNIT,
        "merged": {**COUNT, "description": "For a summary: how many memories it stands for"},
        "createdAt": nullable(TIME),
    }
    return {
        "MemoryItem": obj(
            {**item, "sourceId": nullable(STRING)},
        ),
        "MemoryFound": obj(
            {**item, "score": {"type": "number", "description": "relevance, recency, importance"}}
        ),
        "MemoryPage": obj(
            {
                "memories": {"type": "array", "items": ref("MemoryItem")},
                "nextBefore": nullable({**COUNT, "description": "Pass as before for more"}),
            }
        ),
        "MemorySearch": obj(
            {"query": STRING, "memories": {"type": "array", "items": ref("MemoryFound")}}
        ),
        "MemoryNote": obj(
            {
                "text": {"type": "string", "minLength": 1, "maxLength": memory.MAX_TEXT},
                "importance": {**UNIT, "description": f"Default {DEFAULT_IMPORTANCE}"},
            },
            "importance",
        ),
    }


def section() -> Section:
    """An agent's memories."""
    return Section(
        tags={"memory": "An agent's memories: notes, generations, feedback, messages"},
        paths=_paths(),
        schemas=_schemas(),
        parameters=_parameters(),
    )
