"""Spend on AI providers (``inftd.daemon.server.api.spend``)."""

from __future__ import annotations

from typing import Any

from inftd.daemon.generation.spend import MAX_AGENTS
from inftd.daemon.server.api.spend import PATH
from inftd.daemon.server.openapi.parts import (
    COUNT,
    STRING,
    TIME,
    Schema,
    answer,
    error,
    nullable,
    obj,
    operation,
    ref,
)
from inftd.daemon.server.openapi.section import Section

USD = {"type": "number", "minimum": 0}


def _money() -> dict[str, Schema]:
    return {
        "calls": {**COUNT, "description": "Calls made, failed ones and cache hits included"},
        "failures": COUNT,
        "cacheHits": COUNT,
        "costUsd": {**USD, "description": "USD spent"},
        "cacheSavedUsd": {**USD, "description": "What the answers from the cache had cost"},
        "routingSavedUsd": {
            **USD,
            "description": "The same work on the dearest capable candidate, less its cost",
        },
        "credits": {**COUNT, "description": "Credits charged for succeeded generations"},
    }


def _paths() -> dict[str, Any]:
    return {
        PATH: {
            "get": operation(
                "providerSpend",
                "analytics",
                "Spend on AI providers by provider and by agent, and the savings from the "
                "cache and from routing, over a window (operator)",
                {
                    "200": answer("The figures", ref("SpendProviders")),
                    "400": error("A window that is not a bounded time range", "bad_window"),
                    "401": ref("Unauthorized", "responses"),
                    "403": error("Signed in, but not as the operator", "not_operator"),
                },
                parameters=[ref("AnalyticsFrom", "parameters"), ref("AnalyticsTo", "parameters")],
                security=[{"operatorKey": []}],
            )
        }
    }


def _schemas() -> dict[str, Schema]:
    provider = obj(
        {
            "provider": STRING,
            **_money(),
            "inputTokens": COUNT,
            "outputTokens": COUNT,
            "images": COUNT,
            "meanLatencyMs": {
                **nullable({"type": "number", "minimum": 0}),
                "description": "Of answered calls not served from the cache",
            },
        }
    )
    agent = obj({"packageTokenId": COUNT, **_money()})
    return {
        "SpendProviders": obj(
            {
                "from": TIME,
                "to": TIME,
                "totals": obj(_money()),
                "providers": {"type": "array", "items": provider},
                "agents": {
                    "type": "array",
                    "items": agent,
                    "maxItems": MAX_AGENTS,
                    "description": f"The {MAX_AGENTS} agents that spent most",
                },
                "agentsTotal": {**COUNT, "description": "Agents with calls in the window"},
            }
        )
    }


def section() -> Section:
    """Provider spend; its tag (analytics) and window parameters are the social section's."""
    return Section(tags={}, paths=_paths(), schemas=_schemas())
