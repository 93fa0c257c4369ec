"""GET/POST /v1/agents/{tokenId}/memories: who may, what is refused, what search finds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from inftd.agents.memory import MAX_TEXT
from inftd.daemon.cli.devnet import BUYER, FRIEND, Anvil
from inftd.daemon.config import Settings
from inftd.indexer.deployment import Deployment
from tests.support.api import api_client, bearer, runtime_of, sign_in
from tests.support.contracts import Contracts
from tests.support.fakes import openai
from tests.support.fakes.server import Fake, serve
from tests.support.memories import LABELLED_MEMORIES, LABELLED_QUERIES

OPERATOR_KEY = "op-key-memories-0123456789"
PROVIDER_KEY = "sk-memories-test-SECRET-42"
NO_LIMITS = {"rate_per_ip": 1e6, "rate_per_address": 1e6}
MEMORIES = "/v1/agents/1/memories"
Client = TestClient[web.Request, web.Application]


@asynccontextmanager
async def agent_client(
    chain: Anvil, deployment: Deployment, tmp_path: Path, database_url: str, **more: Any
) -> AsyncIterator[Client]:
    """The API over a database where the buyer owns agent 1."""
    settings = Settings.load(
        data_dir=tmp_path,
        database_url=database_url,
        chain={"rpc_urls": [chain.url]},
        api=NO_LIMITS,
        operator_api_key=SecretStr(OPERATOR_KEY),
        **more,
    )
    async with api_client(settings, deployment) as client:
        Contracts(chain.url, deployment).buy(0, BUYER.address)
        await runtime_of(client).indexer.sync_once()
        yield client


@pytest.fixture
async def client(
    chain: Anvil, deployment: Deployment, tmp_path: Path, database_url: str
) -> AsyncIterator[Client]:
    async with agent_client(chain, deployment, tmp_path, database_url) as client:
        yield client


@pytest.fixture
async def owner(client: Client) -> dict[str, str]:
    return bearer(await sign_in(client, BUYER))


async def add(client: Client, headers: dict[str, str], body: Any) -> tuple[int, Any]:
    response = await client.post(MEMORIES, json=body, headers=headers)
    return response.status, await response.json()


async def listed(client: Client, headers: dict[str, str], **query: str) -> Any:
    response = await client.get(MEMORIES, params=query, headers=headers)
    assert response.status == 200, await response.text()
    return await response.json()


async def code_of(client: Client, method: str, headers: dict[str, str]) -> tuple[int, str]:
    response = await client.request(method, MEMORIES, json={"text": "hi"}, headers=headers)
    body = await response.json()
    return response.status, body["error"]["code"] if "error" in body else "ok"


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_only_the_owner_or_the_operator_may(client: Client, method: str) -> None:
    buyer, friend = await sign_in(client, BUYER), await sign_in(client, FRIEND)
    assert await code_of(client, method, {}) == (401, "unauthenticated")
    assert await code_of(client, method, bearer("garbage")) == (401, "invalid_token")
    assert await code_of(client, method, bearer(friend)) == (403, "not_owner")
    assert await code_of(client, method, bearer(buyer)) == (200 if method == "GET" else 201, "ok")
    operator = bearer(OPERATOR_KEY)
    assert await code_of(client, method, operator) == (200 if method == "GET" else 201, "ok")
    response = await client.request(method, "/v1/agents/2/memories", json={}, headers=operator)
    assert (response.status, (await response.json())["error"]["code"]) == (404, "unknown_agent")


async def test_a_note_is_stored_and_listed(client: Client, owner: dict[str, str]) -> None:
    status, note = await add(client, owner, {"text": "  the owner likes teal  ", "importance": 0.8})
    assert status == 201
    assert (note["kind"], note["text"], note["importance"]) == ("note", "the owner likes teal", 0.8)
    assert (note["merged"], note["sourceId"]) == (0, None)
    assert (await listed(client, owner))["memories"] == [note]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{oops", "malformed_json"),
        (b"", "malformed_json"),
        (b"[1]", "bad_request"),
        (b"{}", "bad_request"),
        (b'{"text": "x", "kind": "generation"}', "bad_request"),
        (b'{"text": 5}', "bad_memory"),
        (b'{"text": "   "}', "bad_memory"),
        (b'{"text": "' + b"x" * (MAX_TEXT + 1) + b'"}', "bad_memory"),
        (b'{"text": "a\\u0000b"}', "bad_memory"),
        (b'{"text": "x", "importance": 2}', "bad_memory"),
        (b'{"text": "x", "importance": -0.5}', "bad_memory"),
        (b'{"text": "x", "importance": "high"}', "bad_memory"),
        (b'{"text": "x", "importance": true}', "bad_memory"),
    ],
)
async def test_bad_notes_are_a_400_and_store_nothing(
    client: Client, owner: dict[str, str], body: bytes, code: str
) -> None:
    response = await client.post(MEMORIES, data=body, headers=owner)
    assert response.status == 400
    assert (await response.json())["error"]["code"] == code
    assert (await listed(client, owner))["memories"] == []


@pytest.mark.parametrize(
    "query",
    [
        *({"q": ""}, {"q": "   "}, {"q": "x" * 1001}, {"q": "a", "k": "0"}, {"q": "a", "k": "2x"}),
        *({"limit": "0"}, {"limit": "-1"}, {"limit": "²"}, {"before": "abc"}, {"before": "0"}),
    ],
)
async def test_bad_queries_are_a_400(
    client: Client, owner: dict[str, str], query: dict[str, str]
) -> None:
    response = await client.get(MEMORIES, params=query, headers=owner)
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "bad_query"


async def test_pages_go_newest_first(client: Client, owner: dict[str, str]) -> None:
    ids = [(await add(client, owner, {"text": f"memory {i}"}))[1]["id"] for i in range(5)]
    first = await listed(client, owner, limit="3")
    second = await listed(client, owner, limit="3", before=str(first["nextBefore"]))
    assert [m["id"] for m in first["memories"] + second["memories"]] == ids[::-1]
    assert second["nextBefore"] is None


async def search_finds_the_relevant_first(client: Client, owner: dict[str, str]) -> None:
    ids = [(await add(client, owner, {"text": t}))[1]["id"] for t in LABELLED_MEMORIES]
    for query, expected in LABELLED_QUERIES.items():
        found = await listed(client, owner, q=query, k="3")
        assert found["query"] == query
        assert len(found["memories"]) == 3
        assert found["memories"][0]["id"] == ids[expected], query
        scores = [m["score"] for m in found["memories"]]
        assert scores == sorted(scores, reverse=True)


async def test_search_returns_the_relevant_memory_first(
    client: Client, owner: dict[str, str]
) -> None:
    await search_finds_the_relevant_first(client, owner)


async def test_search_through_a_provider_embedder(
    chain: Anvil, deployment: Deployment, tmp_path: Path, database_url: str
) -> None:
    fake = Fake(key=PROVIDER_KEY, dimensions=256)
    async with serve(openai.create_app(fake)) as url:
        more = {
            "memory": {"embedder": "openai"},
            "providers": {"openai_base_url": f"{url}/v1"},
            "openai_api_key": SecretStr(PROVIDER_KEY),
        }
        async with agent_client(chain, deployment, tmp_path, database_url, **more) as client:
            await search_finds_the_relevant_first(client, bearer(await sign_in(client, BUYER)))
    assert {s.headers["Authorization"] for s in fake.seen} == {f"Bearer {PROVIDER_KEY}"}


async def test_a_failing_provider_is_a_502_that_stores_nothing(
    chain: Anvil, deployment: Deployment, tmp_path: Path, database_url: str
) -> None:
    fake = Fake(key="sk-the-right-one")
    async with serve(openai.create_app(fake)) as url:
        more = {
            "memory": {"embedder": "openai"},
            "providers": {"openai_base_url": f"{url}/v1"},
            "openai_api_key": SecretStr(PROVIDER_KEY),  # not the one the fake takes: 401
        }
        async with agent_client(chain, deployment, tmp_path, database_url, **more) as client:
            owner = bearer(await sign_in(client, BUYER))
            status, body = await add(client, owner, {"text": "never stored"})
            assert (status, body["error"]["code"]) == (502, "embedding_failed")
            assert "SECRET" not in body["error"]["message"]
            assert "openai" in body["error"]["message"]
            assert (await listed(client, owner))["memories"] == []
