"""GET /v1/analytics/providers: the operator's view of provider spend, over the real app,
each answer checked against the OpenAPI document and read back by its model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from inftd.agents.analytics import DEFAULT_WINDOW
from inftd.daemon.cli.devnet import BUYER
from inftd.daemon.generation.routing.recorder import CallRecord, DbRecorder
from inftd.daemon.server.api.spend import SpendProviders
from inftd.daemon.server.app import api_document
from tests.support.api import OPERATOR_KEY, OpenApi, bearer, runtime_of, sign_in
from tests.support.openapi import Operation, Spec

OPERATOR = bearer(OPERATOR_KEY)
PATH = "/v1/analytics/providers"
Client = TestClient[web.Request, web.Application]
SPEC = Spec(api_document())


@pytest.fixture
async def client(open_api: OpenApi) -> AsyncIterator[Client]:
    async with open_api(api={"rate_per_ip": 100_000, "rate_per_address": 100_000}) as client:
        yield client


def documented(path: str) -> Operation:
    (op,) = [op for op in SPEC.operations() if op.method == "GET" and op.template == path]
    return op


async def get(client: Client, query: str, headers: dict[str, str]) -> tuple[int, Any]:
    async with client.get(f"{PATH}{query}", headers=headers) as response:
        raw = await response.read()
        SPEC.check(documented(PATH), response.status, response.content_type, raw)
        return response.status, orjson.loads(raw)


def code(answer: tuple[int, Any]) -> tuple[int, str]:
    status, body = answer
    return status, body["error"]["code"] if status >= 400 else "ok"


def answered(provider: str, **fields: Any) -> CallRecord:
    return CallRecord(provider, f"{provider}-model", "text", "generate", "ok", **fields)


async def test_the_operator_sees_spend_and_savings(client: Client) -> None:
    recorder = DbRecorder(runtime_of(client).engine)
    await recorder.record(answered("openai", token_id=4, cost_usd=0.25, baseline_usd=0.25))
    await recorder.record(answered("cloudflare", token_id=4, cost_usd=0.125, baseline_usd=0.5))
    await recorder.record(answered("openai", token_id=5, cached=True, cache_saved_usd=0.25))
    status, spend = await get(client, "", OPERATOR)
    assert status == 200
    totals = spend["totals"]
    assert (totals["calls"], totals["cacheHits"], totals["costUsd"]) == (3, 1, 0.375)
    assert (totals["cacheSavedUsd"], totals["routingSavedUsd"]) == (0.25, 0.375)
    assert [p["provider"] for p in spend["providers"]] == ["openai", "cloudflare"]
    assert [(a["packageTokenId"], a["costUsd"]) for a in spend["agents"]] == [(4, 0.375), (5, 0.0)]
    # A window before any of it sees nothing.
    status, past = await get(client, "?from=2020-01-01&to=2020-01-02", OPERATOR)
    assert (status, past["totals"]["calls"], past["providers"]) == (200, 0, [])


async def test_only_the_operator_may_look(client: Client) -> None:
    assert code(await get(client, "", {})) == (401, "unauthenticated")
    assert code(await get(client, "", bearer("forged"))) == (401, "invalid_token")
    buyer = bearer(await sign_in(client, BUYER))
    assert code(await get(client, "", buyer)) == (403, "not_operator")


@pytest.mark.parametrize(
    "query",
    [
        "?from=yesterday",
        "?from=2020-01-01&to=2021-01-01",
        "?from=2999-01-01",
        "?to=x",
        "?to=" + "%20" * 55 + "1709251200",  # 65 characters: beyond any time (was taken)
    ],
)
async def test_a_bad_window_is_a_400(client: Client, query: str) -> None:
    assert code(await get(client, query, OPERATOR)) == (400, "bad_window")


async def test_a_time_of_64_characters_is_read(client: Client) -> None:
    status, spend = await get(client, "?to=" + "%20" * 54 + "1709251200", OPERATOR)
    assert (status, spend["to"]) == (200, "2024-03-01T00:00:00+00:00")


def test_the_route_is_documented_with_the_analytics_window() -> None:
    operation = documented(PATH).spec
    (agents,) = [op for op in SPEC.operations() if op.template == "/v1/analytics/packages"]
    assert operation["parameters"] == agents.spec["parameters"]
    assert [p["name"] for p in operation["parameters"]] == ["from", "to"]
    assert operation["security"] == [{"operatorKey": []}]


async def test_the_answers_bytes_are_the_model(client: Client) -> None:
    """Read back by the closed model: a figure added, renamed or dropped fails."""
    recorder = DbRecorder(runtime_of(client).engine)
    await recorder.record(answered("openai", token_id=4, cost_usd=0.25, baseline_usd=0.5))
    async with client.get(PATH, headers=OPERATOR) as response:
        spend = SpendProviders.model_validate_json(await response.read())
    assert [(p.provider, p.cost_usd, p.routing_saved_usd) for p in spend.providers] == [
        ("openai", 0.25, 0.25)
    ]
    assert [(a.package_token_id, a.calls) for a in spend.agents] == [(4, 1)]
    assert spend.end - spend.start == DEFAULT_WINDOW
