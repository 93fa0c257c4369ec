"""PUT /v1/agents/{tokenId}/preferences as the owner: shapes accepted and refused.

Who may call it is tested in tests/daemon/server/test_access.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient

from inftd.daemon.cli.devnet import BUYER
from tests.support.api import OpenApi, bearer, sign_in


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
