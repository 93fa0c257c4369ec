"""Spend on AI providers (the operator): ``GET /v1/analytics/providers?from=&to=``.

The window is read as for the other analytics (unix seconds or ISO 8601, at most
``MAX_WINDOW``); see ``inftd.daemon.generation.spend`` for the figures.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from inftd.agents.analytics import Window, window_of
from inftd.agents.errors import BadWindow
from inftd.daemon.generation.spend import provider_spend
from inftd.daemon.server.access import require_operator
from inftd.daemon.server.http import RUNTIME, ApiError, json_response

PATH = "/v1/analytics/providers"


def _window(request: web.Request) -> Window:
    try:
        return window_of(request.query.get("from"), request.query.get("to"), datetime.now(UTC))
    except BadWindow as exc:
        raise ApiError(400, "bad_window", str(exc)) from None


async def get_provider_spend(request: web.Request) -> web.Response:
    require_operator(request)
    window = _window(request)
    async with request.app[RUNTIME].engine.connect() as conn:
        return json_response(await provider_spend(conn, window))


def add_routes(app: web.Application) -> None:
    app.router.add_get(PATH, get_provider_spend)
