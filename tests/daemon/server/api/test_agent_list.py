"""GET /v1/agents: summaries paged by token id, and refused paging values."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from inftd.daemon.cli.devnet import BUYER, FRIEND, Anvil
from inftd.daemon.config import DEFAULT_PACKAGES
from inftd.daemon.server.api.agents import MAX_LIST_PAGE
from inftd.indexer.deployment import Deployment
from tests.support.api import OpenApi, runtime_of
from tests.support.contracts import Contracts


@pytest.fixture
async def client(open_api: OpenApi) -> AsyncIterator[TestClient]:
    async with open_api() as client:
        yield client


async def page(client: TestClient, status: int = 200, **params: str) -> Any:
    response = await client.get("/v1/agents", params=params)
    assert response.status == status, await response.text()
    return await response.json()


async def test_no_agents_is_an_empty_page(client: TestClient) -> None:
    assert await page(client) == {"agents": [], "next": None}


async def test_agents_are_paged_by_token_id(
    client: TestClient, chain: Anvil, deployment: Deployment
) -> None:
    contracts = Contracts(chain.url, deployment)
    contracts.buy(0, BUYER.address)
    contracts.buy(1, FRIEND.address)
    contracts.buy(2, BUYER.address)
    contracts.top_up(2, 25)
    await runtime_of(client).indexer.sync_once()

    first = await page(client, limit="2")
    assert [a["packageTokenId"] for a in first["agents"]] == [1, 2]
    assert first["next"] == 2
    second = await page(client, limit="2", after=str(first["next"]))
    assert [a["packageTokenId"] for a in second["agents"]] == [3]
    assert second["next"] is None

    agent = first["agents"][1]
    assert set(agent) == {
        "packageTokenId",
        "packageType",
        "owner",
        "availableCredits",
        "level",
        "lastActivity",
    }
    assert agent["owner"] == FRIEND.address
    assert agent["packageType"] == 1
    assert agent["availableCredits"] == DEFAULT_PACKAGES[1].credits + 25
    full = await (await client.get("/v1/agents/2")).json()
    assert {k: full[k] for k in agent} == agent  # the summary agrees with the agent

    assert len((await page(client))["agents"]) == 3  # the default page holds them all
    assert (await page(client, limit="3"))["next"] is None  # exactly full: no next page
    assert await page(client, after="3") == {"agents": [], "next": None}
    assert await page(client, after=str(2**256 - 1)) == {"agents": [], "next": None}


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"limit": "0"}, "bad_limit"),
        ({"limit": str(MAX_LIST_PAGE + 1)}, "bad_limit"),
        ({"limit": "-1"}, "bad_limit"),
        ({"limit": "²"}, "bad_limit"),
        ({"limit": ""}, "bad_limit"),
        ({"after": "x"}, "bad_after"),
        ({"after": "1.5"}, "bad_after"),
        ({"after": "9" * 80}, "bad_after"),
        ({"after": str(2**256)}, "bad_after"),  # beyond a uint256: was an empty page
        ({"after": "9" * 78}, "bad_after"),
    ],
)
async def test_bad_paging_is_a_400(client: TestClient, params: dict[str, str], code: str) -> None:
    body = await page(client, 400, **params)
    assert body["error"]["code"] == code
