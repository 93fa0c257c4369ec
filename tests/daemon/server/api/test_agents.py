"""PUT /v1/agents/{tokenId}/preferences as the owner: shapes accepted and refused; and the
live documents of GET /v1/agents(/{tokenId}) are what their models in the document say.

Who may call it is tested in tests/daemon/server/test_access.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import orjson
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import insert, update

from inftd.daemon.cli.devnet import BUYER
from inftd.daemon.server.api.agents import Agent, AgentList
from inftd.store.models import Agent as AgentRow
from inftd.store.models import Generation, LearningEntry
from tests.support.api import OpenApi, bearer, fits_model, runtime_of, sign_in


@pytest.fixture
async def client(open_api: OpenApi) -> AsyncIterator[TestClient]:
    async with open_api(BUYER) as client:
        yield client


@pytest.fixture
async def owner(client: TestClient) -> dict[str, str]:
    return bearer(await sign_in(client, BUYER))


async def test_preferences_are_replaced_and_shown(
    client: TestClient, owner: dict[str, str]
) -> None:
    first = {"style": "noir", "temperature": 0.7, "steps": 30, "nsfw": False}
    response = await client.put("/v1/agents/1/preferences", json=first, headers=owner)
    assert response.status == 200
    assert await response.json() == {"packageTokenId": 1, "preferences": first}
    response = await client.put("/v1/agents/1/preferences", json={"style": "pop"}, headers=owner)
    assert (await response.json())["preferences"] == {"style": "pop"}
    agent = await (await client.get("/v1/agents/1")).json()
    assert agent["preferences"] == {"style": "pop"}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{oops", "malformed_json"),
        (b"", "malformed_json"),
        (b"[1, 2]", "bad_preferences"),
        (b'{"k": null}', "bad_preferences"),
        (b'{"k": {"deep": 1}}', "bad_preferences"),
        (b'{"' + b"k" * 65 + b'": 1}', "bad_preferences"),
        (b'{"k": "' + b"x" * 17_000 + b'"}', "bad_preferences"),
    ],
)
async def test_bad_shapes_are_a_400_and_change_nothing(
    client: TestClient, owner: dict[str, str], body: bytes, code: str
) -> None:
    response = await client.put("/v1/agents/1/preferences", data=body, headers=owner)
    assert response.status == 400
    assert (await response.json())["error"]["code"] == code
    assert (await (await client.get("/v1/agents/1")).json())["preferences"] == {}


async def test_a_bad_token_id_is_a_400_and_a_huge_one_unknown(
    client: TestClient, owner: dict[str, str]
) -> None:
    response = await client.put("/v1/agents/abc/preferences", json={}, headers=owner)
    assert (await response.json())["error"]["code"] == "bad_token_id"
    response = await client.put(f"/v1/agents/{2**256 - 1}/preferences", json={}, headers=owner)
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "unknown_agent"


AT = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
GENERATED = {
    "id": "00000000-0000-4000-8000-000000000001",
    "token_id": 1,
    "kind": "image",
    "prompt": "a harbour",
    "source": "api",
    "status": "succeeded",
    "provider": "local",
    "content_uri": "ipfs://art",
    "content_hash": "0x" + "cd" * 32,
    "created_at": AT,
}
LEARNED = [
    {"token_id": 1, "rating": 5, "tags": ["warm"], "note": "lovely", "created_at": AT},
    {"token_id": 1, "rating": 1, "tags": [], "note": None},
]
META = {"uri": "ipfs://meta", "stateHash": "0x" + "ab" * 32}


async def test_the_live_documents_are_what_their_models_say(
    client: TestClient, owner: dict[str, str]
) -> None:
    """Every field views.py writes, with entries in each list, validated by the models the
    document describes them with (they are served as bytes, never through the models)."""
    async with runtime_of(client).engine.begin() as conn:
        influences = {"agent_metadata": META, "collection_influences": ["noir", "pop"]}
        await conn.execute(update(AgentRow).where(AgentRow.token_id == 1).values(influences))
        await conn.execute(insert(Generation).values(GENERATED))
        await conn.execute(insert(LearningEntry).values(LEARNED))
    prefs = {"style": "noir", "steps": 30, "temperature": 0.7, "nsfw": False, "big": 2**53}
    await client.put("/v1/agents/1/preferences", json=prefs, headers=owner)

    document = await (await client.get("/v1/agents/1")).read()
    assert fits_model(Agent, document)
    agent = orjson.loads(document)
    assert (len(agent["learningData"]), len(agent["generatedContent"])) == (2, 1)
    assert (agent["preferences"], agent["agentStateHash"]) == (prefs, META["stateHash"])
    assert fits_model(AgentList, await (await client.get("/v1/agents")).read())
    first = await (await client.get("/v1/agents", params={"limit": "1"})).read()
    assert fits_model(AgentList, first)
