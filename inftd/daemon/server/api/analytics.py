"""Analytics over a time window (``?from=&to=``, unix seconds or ISO 8601):

    GET /v1/analytics/agents/{tokenId}   one agent (its owner or the operator)
    GET /v1/analytics/packages           every package type (the operator)

See ``inftd.agents.analytics`` for the figures.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from aiohttp import web
from pydantic import Field

from inftd.agents.analytics import (
    DEFAULT_WINDOW,
    MAX_WINDOW,
    Window,
    agent_analytics,
    package_analytics,
    window_of,
)
from inftd.daemon.server.contract.routes import OPERATOR, OWNER, Answer, Routes
from inftd.daemon.server.contract.wire import Count, Query, Time, TokenId, Wire
from inftd.daemon.server.http import RUNTIME

ROUTES = Routes("analytics", "Credit usage, engagement and cost over a time window")
FORMS = "unix seconds or ISO 8601 (UTC unless it names an offset)"
MAX_MOMENT = 64  # characters of a from or to: any ISO 8601 the window takes is shorter
Moment = Annotated[str, Field(max_length=MAX_MOMENT)]
EXAMPLES = ["1709251200", "2024-03-01T00:00:00Z"]


class AnalyticsWindowQuery(Query):
    """The window; a value that is not a time, or a window that is not a bounded range,
    is refused as bad_window."""

    error_code = "bad_window"
    start: Moment | None = Field(
        None,
        alias="from",
        description=f"Start of the window, {FORMS}; default: {DEFAULT_WINDOW.days} days before to",
        examples=EXAMPLES,
    )
    end: Moment | None = Field(
        None,
        alias="to",
        description=f"End of the window (excluded), {FORMS}; default: now. At most "
        f"{MAX_WINDOW.days} days after from",
        examples=EXAMPLES,
    )

    def window(self) -> Window:
        return window_of(self.start, self.end, datetime.now(UTC))


class AnalyticsCredits(Wire):
    granted: int = Field(description="Grants, top-ups and adjustments")
    reserved: int
    used: int = Field(description="Committed")
    released: int
    refunded: int


class AnalyticsRequests(Wire):
    total: Count
    by_kind: dict[str, Count] = Field(description="Generation requests by kind")
    by_status: dict[str, Count] = Field(description="Generation requests by status")


class AnalyticsFeedback(Wire):
    count: Count
    mean_rating: float | None


class AnalyticsMessages(Wire):
    sent: Count
    received: Count


class AnalyticsAgent(Wire):
    package_token_id: Count
    package_type: Count
    start: Time = Field(alias="from")
    end: Time = Field(alias="to")
    credits: AnalyticsCredits
    requests: AnalyticsRequests
    feedback: AnalyticsFeedback
    messages: AnalyticsMessages
    cost_usd: float


class AnalyticsPackage(Wire):
    package_type: Count
    agents: Count
    active_agents: Count
    credits: AnalyticsCredits
    requests: AnalyticsRequests
    feedback: AnalyticsFeedback
    messages: AnalyticsMessages
    cost_usd: float


class AnalyticsPackages(Wire):
    start: Time = Field(alias="from")
    end: Time = Field(alias="to")
    packages: list[AnalyticsPackage]


@ROUTES.get(
    "/v1/analytics/agents/{token_id}",
    "agentAnalytics",
    "Credits, engagement and cost of one agent over a window (owner or operator)",
    auth=OWNER,
    ok=Answer("The figures", AnalyticsAgent),
)
async def get_agent_analytics(
    request: web.Request, token_id: TokenId, query: AnalyticsWindowQuery
) -> AnalyticsAgent:
    window = query.window()
    async with request.app[RUNTIME].engine.connect() as conn:
        return AnalyticsAgent.model_validate(await agent_analytics(conn, token_id, window))


@ROUTES.get(
    "/v1/analytics/packages",
    "packageAnalytics",
    "The same figures per package type, with agent counts (operator)",
    auth=OPERATOR,
    ok=Answer("The figures", AnalyticsPackages),
)
async def get_package_analytics(
    request: web.Request, query: AnalyticsWindowQuery
) -> AnalyticsPackages:
    window = query.window()
    async with request.app[RUNTIME].engine.connect() as conn:
        return AnalyticsPackages.model_validate(await package_analytics(conn, window))


add_routes = ROUTES.add_to
