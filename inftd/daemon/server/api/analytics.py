"""Analytics over a time window (``?from=&to=``, unix seconds or ISO 8601):

    GET /v1/analytics/agents/{tokenId}   one agent (its owner or the operator)
    GET /v1/analytics/packages           every package type (the operator)

See ``inftd.agents.analytics`` for the figures.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from inftd.agents.analytics import Window, agent_analytics, package_analytics, window_of
from inftd.agents.errors import BadWindow, UnknownAgent
from inftd.daemon.server.access import require_operator, require_owner
from inftd.daemon.server.api.agents import token_id_of
from inftd.daemon.server.http import RUNTIME, ApiError, json_response


def _window(request: web.Request) -> Window:
    try:
        return window_of(request.query.get("from"), request.query.get("to"), datetime.now(UTC))
    except BadWindow as exc:
        raise ApiError(400, "bad_window", str(exc)) from None


async def get_agent_analytics(request: web.Request) -> web.Response:
    token_id = token_id_of(request)
    await require_owner(request, token_id)
    window = _window(request)
    async with request.app[RUNTIME].engine.connect() as conn:
        try:
            return json_response(await agent_analytics(conn, token_id, window))
        except UnknownAgent as exc:
            raise ApiError(404, "unknown_agent", str(exc)) from None


async def get_package_analytics(request: web.Request) -> web.Response:
    require_operator(request)
    window = _window(request)
    async with request.app[RUNTIME].engine.connect() as conn:
        return json_response(await package_analytics(conn, window))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/analytics/agents/{token_id}", get_agent_analytics)
    app.router.add_get("/v1/analytics/packages", get_package_analytics)
