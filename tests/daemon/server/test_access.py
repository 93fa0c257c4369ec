"""Owner-only and operator-only access, decided by the agent's owner on chain right now."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from inftd.daemon.auth.tokens import Principal
from inftd.daemon.cli.devnet import BUYER, FRIEND, MINTER, Anvil
from inftd.daemon.config import Settings
from inftd.daemon.runtime import open_runtime
from inftd.daemon.server.app import create_app
from inftd.daemon.server.contract.routes import OPERATOR, Answer, Routes
from inftd.daemon.server.contract.wire import Wire
from inftd.indexer.deployment import Deployment
from tests.support.api import bearer, nonce_for, runtime_of, sign, sign_in
from tests.support.contracts import Contracts
from tests.support.schema import at_head

OPERATOR_KEY = "op-key-0123456789-abcdef"


# Declared like the API's routes: the app refuses to start with a route it cannot document.
TEST_ROUTES = Routes("test", "Routes of this test only")


class Operator(Wire):
    operator: bool


@TEST_ROUTES.get(
    "/test/operator-only",
    "operatorOnly",
    "The operator only",
    ok=Answer("Yes", Operator),
    auth=OPERATOR,
)
async def operator_only(request: web.Request, principal: Principal) -> Operator:
    return Operator(operator=principal.operator)


@pytest.fixture
async def client(
    chain: Anvil,
    deployment: Deployment,
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[TestClient]:
    monkeypatch.setenv("INFTD_OPERATOR_API_KEY", OPERATOR_KEY)
    settings = Settings.load(
        data_dir=tmp_path, database_url=database_url, chain={"rpc_urls": [chain.url]}
    )
    at_head(settings.database)
    async with open_runtime(settings, deployment) as runtime:
        app = create_app(runtime)
        TEST_ROUTES.add_to(app)
        async with TestClient(TestServer(app)) as client:
            yield client


@pytest.fixture
async def token_id(client: TestClient, chain: Anvil, deployment: Deployment) -> int:
    """A Starter package bought by the buyer, indexed."""
    token_id = Contracts(chain.url, deployment).buy(0, BUYER.address)
    await runtime_of(client).indexer.sync_once()
    return token_id


async def put_preferences(
    client: TestClient, token_id: int | str, headers: dict[str, str], body: object = None
) -> tuple[int, dict[str, object]]:
    response = await client.put(
        f"/v1/agents/{token_id}/preferences",
        json={"style": "noir"} if body is None else body,
        headers=headers,
    )
    return response.status, await response.json()


async def code_of(client: TestClient, token_id: int, headers: dict[str, str]) -> tuple[int, str]:
    status, body = await put_preferences(client, token_id, headers)
    error = body.get("error")
    return status, error["code"] if isinstance(error, dict) else "ok"


async def test_only_the_owner_may_change_preferences(client: TestClient, token_id: int) -> None:
    buyer, friend = await sign_in(client, BUYER), await sign_in(client, FRIEND)
    assert await code_of(client, token_id, {}) == (401, "unauthenticated")
    assert await code_of(client, token_id, bearer("garbage")) == (401, "invalid_token")
    assert await code_of(client, token_id, {"Authorization": buyer}) == (401, "invalid_token")
    assert await code_of(client, token_id, {"Authorization": "Basic eDp5"}) == (
        401,
        "invalid_token",
    )
    assert await code_of(client, token_id, bearer(friend)) == (403, "not_owner")
    assert await code_of(client, token_id, bearer(buyer)) == (200, "ok")
    assert await code_of(client, token_id + 1, bearer(buyer)) == (404, "unknown_agent")


async def test_an_expired_token_is_refused(client: TestClient, token_id: int) -> None:
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    stale = runtime_of(client).tokens.issue(BUYER.address, long_ago).token
    assert await code_of(client, token_id, bearer(stale)) == (401, "token_expired")


async def test_a_short_token_ttl_ends_the_session(
    chain: Anvil, deployment: Deployment, tmp_path: Path, database_url: str
) -> None:
    settings = Settings.load(
        data_dir=tmp_path,
        database_url=database_url,
        chain={"rpc_urls": [chain.url]},
        api={"token_ttl": 3},  # whole seconds: room for a loaded machine
    )
    at_head(settings.database)
    async with (
        open_runtime(settings, deployment) as runtime,
        TestClient(TestServer(create_app(runtime))) as client,
    ):
        token_id = Contracts(chain.url, deployment).buy(0, BUYER.address)
        await runtime.indexer.sync_once()
        message = (await nonce_for(client, BUYER.address))["message"]
        response = await client.post(
            "/v1/auth/login", json={"message": message, "signature": sign(message, BUYER.key)}
        )
        session = await response.json()
        assert await code_of(client, token_id, bearer(session["token"])) == (200, "ok")
        left = datetime.fromisoformat(session["expiresAt"]) - datetime.now(UTC)
        assert left <= timedelta(seconds=3)
        await asyncio.sleep(left.total_seconds() + 0.05)
        assert await code_of(client, token_id, bearer(session["token"])) == (401, "token_expired")


async def test_a_transfer_moves_control_at_once(
    client: TestClient, token_id: int, chain: Anvil, deployment: Deployment
) -> None:
    buyer, friend = await sign_in(client, BUYER), await sign_in(client, FRIEND)
    assert await code_of(client, token_id, bearer(buyer)) == (200, "ok")
    Contracts(chain.url, deployment).transfer(token_id, FRIEND.address)
    await runtime_of(client).indexer.sync_once()
    assert await code_of(client, token_id, bearer(buyer)) == (403, "not_owner")
    assert await code_of(client, token_id, bearer(friend)) == (200, "ok")


async def test_the_operator_may_act_for_any_owner(client: TestClient, token_id: int) -> None:
    operator = bearer(OPERATOR_KEY)
    assert await code_of(client, token_id, operator) == (200, "ok")
    assert await code_of(client, token_id + 1, operator) == (404, "unknown_agent")
    wrong = bearer(OPERATOR_KEY + "x")
    assert await code_of(client, token_id, wrong) == (401, "invalid_token")


async def test_operator_only_routes(client: TestClient) -> None:
    response = await client.get("/test/operator-only", headers=bearer(OPERATOR_KEY))
    assert (response.status, await response.json()) == (200, {"operator": True})
    for headers, status, code in [
        ({}, 401, "unauthenticated"),
        (bearer(OPERATOR_KEY[:-1]), 401, "invalid_token"),
        (bearer(await sign_in(client, MINTER)), 403, "not_operator"),
    ]:
        response = await client.get("/test/operator-only", headers=headers)
        assert response.status == status
        assert (await response.json())["error"]["code"] == code
