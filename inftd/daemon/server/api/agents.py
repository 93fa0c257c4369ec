"""Agents: ``GET /v1/agents`` (a page of summaries), ``GET /v1/agents/{tokenId}``,
``PUT /v1/agents/{tokenId}/preferences`` (owner).

The reads answer the bytes of this process's live copies (``inftd.agents.live``, written
by ``inftd.agents.views``) with their ETags; the models here describe those documents for
the OpenAPI document, and a test validates real documents with them so they cannot drift.
"""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import Field, WithJsonSchema
from typing_extensions import TypeAliasType

from inftd.agents.preferences import (
    MAX_BYTES,
    MAX_KEY_CHARS,
    MAX_KEYS,
    MAX_NUMBER,
    set_preferences,
)
from inftd.daemon.server.contract.routes import OWNER, Answer, Routes
from inftd.daemon.server.contract.wire import (
    MAX_UINT256,
    UINT256_TEXT,
    Address,
    Code,
    Count,
    NoNul,
    Query,
    Time,
    TokenId,
    Wire,
)
from inftd.daemon.server.http import RUNTIME, ApiError, versioned_response

ROUTES = Routes("agents", "The agents of package tokens")
MAX_STORED_TOKEN_ID = 2**63 - 1  # token ids are sequential; larger ones cannot have an agent
MAX_TOKEN_DIGITS = len(str(MAX_UINT256))  # a uint256 has at most 78 decimal digits
LIST_PAGE = 50  # agents per page of GET /v1/agents unless ?limit= says otherwise
MAX_LIST_PAGE = 200  # the largest ?limit= accepted
NUMBER = {"type": "number", "minimum": -MAX_NUMBER, "maximum": MAX_NUMBER}  # exact everywhere
NO_NUL = "^[^\\u0000]*$"  # PostgreSQL's jsonb cannot hold NUL: refused on every database


# -- helpers the routes not yet declared still use (path values, NUL in a patch) ----------


def token_id_of(request: web.Request) -> int:
    raw = request.match_info["token_id"]
    # ASCII only: str.isdigit() also takes "²" (which int() refuses) and other scripts' digits.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > MAX_TOKEN_DIGITS:
        raise ApiError(400, "bad_token_id", f"token id must be a uint256 in decimal, got {raw!r}")
    return int(raw)


def has_nul(body: Any) -> bool:
    """Whether a key or string value of a flat JSON object holds a NUL character."""
    if not isinstance(body, dict):
        return False
    return any("\x00" in k or (isinstance(v, str) and "\x00" in v) for k, v in body.items())


# -- preferences ----------------------------------------------------------------------------

# Described by hand: pydantic writes a key pattern as patternProperties, which would leave
# keys that do not match it unchecked.
PREFERENCES_SCHEMA = {
    "type": "object",
    "description": f"At most {MAX_KEYS} keys of 1 to {MAX_KEY_CHARS} characters; values "
    f"strings, numbers or booleans; at most {MAX_BYTES} bytes as compact JSON",
    "maxProperties": MAX_KEYS,
    "propertyNames": {"minLength": 1, "maxLength": MAX_KEY_CHARS, "pattern": NO_NUL},
    "additionalProperties": {
        "anyOf": [{"type": "string", "pattern": NO_NUL}, NUMBER, {"type": "boolean"}]
    },
}
PreferenceKey = Annotated[NoNul, Field(min_length=1, max_length=MAX_KEY_CHARS)]
PreferenceValue = (
    NoNul
    | Annotated[int, Field(ge=-MAX_NUMBER, le=MAX_NUMBER)]
    | Annotated[float, Field(ge=-MAX_NUMBER, le=MAX_NUMBER, allow_inf_nan=False)]
    | bool
)
Preferences = TypeAliasType(
    "Preferences",
    Annotated[
        dict[PreferenceKey, PreferenceValue],
        Field(max_length=MAX_KEYS),
        WithJsonSchema(PREFERENCES_SCHEMA),
    ],
)
# The size as JSON is checked by the domain (inftd.agents.preferences), also bad_preferences.
NewPreferences = Annotated[Preferences, Code("bad_preferences")]


class PreferencesUpdated(Wire):
    package_token_id: Count
    preferences: Preferences


# -- the live documents (inftd.agents.views writes them) ------------------------------------


class AgentSummary(Wire):
    package_token_id: Count
    package_type: Count
    owner: Address
    available_credits: Count
    level: int
    last_activity: Time | None


class AgentList(Wire):
    agents: list[AgentSummary]
    next: Count | None = Field(description="Pass as after for the next page; null: the last")


class LearningEntry(Wire):
    generation_id: str | None
    rating: Annotated[int, Field(ge=1, le=5)]
    tags: list[str]
    note: str | None
    created_at: Time | None


class GeneratedContent(Wire):
    id: str
    kind: str
    prompt: str
    content_uri: str | None
    content_hash: str | None
    provider: str | None
    created_at: Time | None


class Agent(Wire):
    package_token_id: Count
    package_type: Count
    owner: Address
    total_credits: Count
    used_credits: Count
    reserved_credits: Count
    available_credits: Count
    level: int
    experience: Count
    agent_metadata: str = Field(description="The metadata URI, or ''")
    agent_state_hash: str | None
    learning_data: list[LearningEntry] = Field(description="The newest entries")
    collection_influences: list[str]
    generated_content: list[GeneratedContent] = Field(description="The newest that succeeded")
    last_activity: Time | None
    preferences: Preferences


# A uint256 is text in the document, as in paths (JSON readers cannot hold it as a number).
AfterTokenId = Annotated[
    int, Field(ge=0, le=MAX_UINT256), WithJsonSchema({**UINT256_TEXT, "examples": ["0", "1"]})
]


class AgentsQuery(Query):
    limit: Annotated[int, Field(ge=1, le=MAX_LIST_PAGE), Code("bad_limit")] = Field(
        LIST_PAGE,
        description=f"Agents per page, 1 to {MAX_LIST_PAGE} (default {LIST_PAGE})",
        examples=[1, LIST_PAGE],
    )
    after: Annotated[AfterTokenId | None, Code("bad_after")] = Field(
        None, description="Start after this token id (a uint256): the `next` of the previous page"
    )


@ROUTES.get(
    "/v1/agents",
    "listAgents",
    "A page of agent summaries, in token id order",
    ok=Answer("The page; its ETag names its content", AgentList),
    versioned=True,
)
async def list_agents(request: web.Request, query: AgentsQuery) -> AgentList | web.Response:
    """A page of agent summaries in token id order; ``next`` is the ``after`` of the next."""
    after = -1 if query.after is None else query.after
    if after >= MAX_STORED_TOKEN_ID:  # no stored id lies beyond; keeps the bind in BIGINT
        return AgentList(agents=[], next=None)
    page = await request.app[RUNTIME].live.page(after, query.limit)
    return versioned_response(request, page.body, page.etag)


@ROUTES.get(
    "/v1/agents/{token_id}",
    "getAgent",
    "The agent of a package token",
    ok=Answer("The agent; its ETag is its version, the seq of its last event", Agent),
    versioned=True,
    errors={404: ("unknown_agent",)},
)
async def get_agent(request: web.Request, token_id: TokenId) -> web.Response:
    """The agent from this process's live copy, its version (last event seq) as the ETag."""
    entry = await request.app[RUNTIME].live.agent(token_id)
    return versioned_response(request, entry.document, entry.etag)


@ROUTES.put(
    "/v1/agents/{token_id}/preferences",
    "putPreferences",
    "Replace the agent's preferences (owner or operator)",
    auth=OWNER,
    ok=Answer("The new preferences", PreferencesUpdated),
)
async def put_preferences(
    request: web.Request, token_id: TokenId, body: NewPreferences
) -> PreferencesUpdated:
    runtime = request.app[RUNTIME]
    async with runtime.writer.write(token_id) as (conn, _):
        preferences = await set_preferences(conn, token_id, body)
    runtime.hub.poke()
    return PreferencesUpdated(package_token_id=token_id, preferences=preferences)


add_routes = ROUTES.add_to
