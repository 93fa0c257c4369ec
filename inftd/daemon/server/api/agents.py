"""Agents: ``GET /v1/agents`` (a page of summaries), ``GET /v1/agents/{tokenId}``,
``PUT /v1/agents/{tokenId}/preferences`` (owner)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from inftd.agents.errors import BadPreferences, UnknownAgent
from inftd.agents.preferences import set_preferences
from inftd.daemon.server.access import require_owner
from inftd.daemon.server.http import (
    RUNTIME,
    ApiError,
    json_response,
    reach_min_seq,
    read_json,
    versioned_response,
)

MAX_STORED_TOKEN_ID = 2**63 - 1  # token ids are sequential; larger ones cannot have an agent
MAX_TOKEN_DIGITS = 78  # a uint256 has at most 78 decimal digits
LIST_PAGE = 50  # agents per page of GET /v1/agents unless ?limit= says otherwise
MAX_LIST_PAGE = 200  # the largest ?limit= accepted


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


def _decimal_query(request: web.Request, name: str, code: str) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > MAX_TOKEN_DIGITS:
        raise ApiError(400, code, f"{name} must be an integer in decimal, got {raw!r}")
    return int(raw)


def _page_of(request: web.Request) -> tuple[int, int]:
    """(limit, after) from ``?limit=&after=``; ``after`` -1 is the start."""
    limit = _decimal_query(request, "limit", "bad_limit")
    if limit is not None and not 1 <= limit <= MAX_LIST_PAGE:
        raise ApiError(400, "bad_limit", f"limit must be 1 to {MAX_LIST_PAGE}, got {limit}")
    after = _decimal_query(request, "after", "bad_after")
    return limit or LIST_PAGE, -1 if after is None else after


async def list_agents(request: web.Request) -> web.Response:
    """A page of agent summaries in token id order; ``next`` is the ``after`` of the next."""
    limit, after = _page_of(request)
    if after >= MAX_STORED_TOKEN_ID:  # no stored id lies beyond; keeps the bind in BIGINT
        return json_response({"agents": [], "next": None})
    await reach_min_seq(request)
    page = await request.app[RUNTIME].live.page(after, limit)
    return versioned_response(request, page.body, page.etag)


async def get_agent(request: web.Request) -> web.Response:
    """The agent from this process's live copy, its version (last event seq) as the ETag."""
    token_id = token_id_of(request)
    await reach_min_seq(request)
    try:
        entry = await request.app[RUNTIME].live.agent(token_id)
    except UnknownAgent as exc:
        raise ApiError(404, "unknown_agent", str(exc)) from None
    return versioned_response(request, entry.document, entry.etag)


async def put_preferences(request: web.Request) -> web.Response:
    token_id = token_id_of(request)
    await require_owner(request, token_id)
    body = await read_json(request)
    if has_nul(body):  # PostgreSQL's jsonb cannot hold it: refused on every database alike
        raise ApiError(400, "bad_preferences", "preferences may not contain NUL (\\u0000)")
    runtime = request.app[RUNTIME]
    try:
        async with runtime.writer.write(token_id) as (conn, _):
            preferences = await set_preferences(conn, token_id, body)
    except BadPreferences as exc:
        raise ApiError(400, "bad_preferences", str(exc)) from None
    except UnknownAgent as exc:
        raise ApiError(404, "unknown_agent", str(exc)) from None
    runtime.hub.poke()
    return json_response({"packageTokenId": token_id, "preferences": preferences})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/agents", list_agents)
    app.router.add_get("/v1/agents/{token_id}", get_agent)
    app.router.add_put("/v1/agents/{token_id}/preferences", put_preferences)
