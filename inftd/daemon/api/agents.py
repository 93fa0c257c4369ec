"""Agents: ``GET /v1/agents`` (a page of summaries), ``GET /v1/agents/{tokenId}``,
``PUT /v1/agents/{tokenId}/preferences`` (owner)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select

from inftd.agents.errors import BadPreferences, UnknownAgent
from inftd.agents.preferences import set_preferences
from inftd.agents.views import agent_state, iso
from inftd.daemon.access import require_owner
from inftd.daemon.http import RUNTIME, ApiError, json_response, read_json
from inftd.store.models import Agent

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


SUMMARY_COLUMNS = (
    Agent.token_id,
    Agent.package_type,
    Agent.owner,
    Agent.total_credits,
    Agent.used_credits,
    Agent.reserved_credits,
    Agent.level,
    Agent.last_activity,
)


def _summary(agent: Any) -> dict[str, Any]:
    return {
        "packageTokenId": agent.token_id,
        "packageType": agent.package_type,
        "owner": agent.owner,
        "availableCredits": agent.total_credits - agent.used_credits - agent.reserved_credits,
        "level": agent.level,
        "lastActivity": iso(agent.last_activity),
    }


async def list_agents(request: web.Request) -> web.Response:
    """A page of agent summaries in token id order; ``next`` is the ``after`` of the next."""
    limit, after = _page_of(request)
    if after >= MAX_STORED_TOKEN_ID:  # no stored id lies beyond; keeps the bind in BIGINT
        return json_response({"agents": [], "next": None})
    query = (
        select(*SUMMARY_COLUMNS)
        .where(Agent.token_id > after)
        .order_by(Agent.token_id)
        .limit(limit + 1)
    )
    async with request.app[RUNTIME].engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    page = [_summary(row) for row in rows[:limit]]
    more = len(rows) > limit
    return json_response({"agents": page, "next": page[-1]["packageTokenId"] if more else None})


async def get_agent(request: web.Request) -> web.Response:
    token_id = token_id_of(request)
    if token_id > MAX_STORED_TOKEN_ID:
        raise ApiError(404, "unknown_agent", str(UnknownAgent(token_id)))
    async with request.app[RUNTIME].engine.connect() as conn:
        try:
            return json_response(await agent_state(conn, token_id))
        except UnknownAgent as exc:
            raise ApiError(404, "unknown_agent", str(exc)) from None


async def put_preferences(request: web.Request) -> web.Response:
    token_id = token_id_of(request)
    await require_owner(request, token_id)
    body = await read_json(request)
    if has_nul(body):  # PostgreSQL's jsonb cannot hold it: refused on every database alike
        raise ApiError(400, "bad_preferences", "preferences may not contain NUL (\\u0000)")
    async with request.app[RUNTIME].engine.begin() as conn:
        try:
            preferences = await set_preferences(conn, token_id, body)
        except BadPreferences as exc:
            raise ApiError(400, "bad_preferences", str(exc)) from None
        except UnknownAgent as exc:
            raise ApiError(404, "unknown_agent", str(exc)) from None
    return json_response({"packageTokenId": token_id, "preferences": preferences})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/agents", list_agents)
    app.router.add_get("/v1/agents/{token_id}", get_agent)
    app.router.add_put("/v1/agents/{token_id}/preferences", put_preferences)
