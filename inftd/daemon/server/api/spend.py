"""Spend on AI providers (the operator): ``GET /v1/analytics/providers?from=&to=``.

The window is read as for the other analytics (``api.analytics``: unix seconds or ISO 8601,
at most ``MAX_WINDOW``); see ``inftd.daemon.generation.spend`` for the figures.
"""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import Field

from inftd.daemon.generation.spend import MAX_AGENTS, provider_spend
from inftd.daemon.server.api import analytics
from inftd.daemon.server.api.analytics import AnalyticsWindowQuery
from inftd.daemon.server.contract.routes import OPERATOR, Answer, Routes
from inftd.daemon.server.contract.wire import Count, Time, Wire
from inftd.daemon.server.http import RUNTIME

ROUTES = Routes(analytics.ROUTES.tag, analytics.ROUTES.description)
PATH = "/v1/analytics/providers"
Amount = Annotated[float, Field(ge=0)]  # USD, or milliseconds


class SpendFigures(Wire):
    calls: Count = Field(description="Calls made, failed ones and cache hits included")
    failures: Count
    cache_hits: Count
    cost_usd: Amount = Field(description="USD spent")
    cache_saved_usd: Amount = Field(description="What the answers from the cache had cost")
    routing_saved_usd: Amount = Field(
        description="The same work on the dearest capable candidate, less its cost"
    )
    credits: Count = Field(description="Credits charged for succeeded generations")


class SpendProvider(SpendFigures):
    provider: str
    input_tokens: Count
    output_tokens: Count
    images: Count
    mean_latency_ms: Amount | None = Field(
        description="Of answered calls not served from the cache"
    )


class SpendAgent(SpendFigures):
    package_token_id: Count


class SpendProviders(Wire):
    start: Time = Field(alias="from")
    end: Time = Field(alias="to")
    totals: SpendFigures
    providers: list[SpendProvider]
    agents: list[SpendAgent] = Field(
        max_length=MAX_AGENTS, description=f"The {MAX_AGENTS} agents that spent most"
    )
    agents_total: Count = Field(description="Agents with calls in the window")


@ROUTES.get(
    PATH,
    "providerSpend",
    "Spend on AI providers by provider and by agent, and the savings from the cache and "
    "from routing, over a window (operator)",
    auth=OPERATOR,
    ok=Answer("The figures", SpendProviders),
)
async def get_provider_spend(request: web.Request, query: AnalyticsWindowQuery) -> SpendProviders:
    window = query.window()
    async with request.app[RUNTIME].engine.connect() as conn:
        return SpendProviders.model_validate(await provider_spend(conn, window))


add_routes = ROUTES.add_to
