"""Agents: ``GET /v1/agents/{tokenId}``, ``PUT /v1/agents/{tokenId}/preferences`` (owner)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from inftd.agents.errors import BadPreferences, UnknownAgent
from inftd.agents.preferences import set_preferences
from inftd.agents.views import agent_state
from inftd.daemon.access import require_owner
from inftd.daemon.http import RUNTIME, ApiError, json_response, read_json

MAX_STORED_TOKEN_ID = 2**63 - 1  # token ids are sequential; larger ones cannot have an agent
MAX_TOKEN_DIGITS = 78  # a uint256 has at most 78 decimal digits


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
    app.router.add_get("/v1/agents/{token_id}", get_agent)
    app.router.add_put("/v1/agents/{token_id}/preferences", put_preferences)
