"""The API over a real runtime for tests, and signing in as one of Anvil's accounts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

import orjson
from aiohttp.test_utils import TestClient, TestServer
from eth_account import Account
from eth_account.messages import encode_defunct
from pydantic import ValidationError

from inftd.daemon.cli.devnet import DevAccount
from inftd.daemon.config import Settings
from inftd.daemon.events.hub import Hub
from inftd.daemon.runtime import Runtime, open_runtime
from inftd.daemon.server.app import create_app
from inftd.daemon.server.contract.wire import Wire
from inftd.daemon.server.http import RUNTIME
from inftd.indexer.deployment import Deployment
from tests.support.schema import at_head

OPERATOR_KEY = "op-key-for-the-api-tests-0123456789"

Buy = DevAccount | tuple[int, DevAccount]  # a Starter package, or (package type, buyer)


class OpenApi(Protocol):
    def __call__(
        self, *buys: Buy, hub: bool = False, env: Mapping[str, str] | None = None, **settings: Any
    ) -> AbstractAsyncContextManager[TestClient]: ...


@asynccontextmanager
async def api_client(settings: Settings, deployment: Deployment) -> AsyncIterator[TestClient]:
    """A migrated database, the runtime over it, and a client of the app."""
    at_head(settings.database)
    async with (
        open_runtime(settings, deployment) as runtime,
        TestClient(TestServer(create_app(runtime))) as client,
    ):
        yield client


@asynccontextmanager
async def indexed_with_hub(settings: Settings, deployment: Deployment) -> AsyncIterator[TestClient]:
    """``api_client`` over the chain as it is now, indexed, with the hub running (so
    events reach subscribers, and the live agents keep copies)."""
    async with api_client(settings, deployment) as client:
        runtime = runtime_of(client)
        await runtime.indexer.sync_once()
        async with hub_running(runtime.hub):
            yield client


@asynccontextmanager
async def hub_running(hub: Hub) -> AsyncIterator[Hub]:
    stop = asyncio.Event()
    task = asyncio.create_task(hub.run(stop))
    await hub.started()
    try:
        yield hub
    finally:
        stop.set()
        await task


def runtime_of(client: TestClient) -> Runtime:
    return client.app[RUNTIME]


def sign(message: str, key: str) -> str:
    """personal_sign (EIP-191) of ``message``, as a wallet does it."""
    signed = Account.sign_message(encode_defunct(text=message), private_key=key)
    return "0x" + bytes(signed.signature).hex()


async def nonce_for(client: TestClient, address: str) -> dict[str, Any]:
    response = await client.get("/v1/auth/nonce", params={"address": address})
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def sign_in(client: TestClient, account: DevAccount) -> str:
    """Nonce, signature, login: the bearer token of ``account``."""
    message = (await nonce_for(client, account.address))["message"]
    response = await client.post(
        "/v1/auth/login", json={"message": message, "signature": sign(message, account.key)}
    )
    assert response.status == 200, await response.text()
    return str((await response.json())["token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def fits_model(model: type[Wire], document: bytes) -> bool:
    """Whether ``document`` (an answer served as bytes) validates as ``model`` and is what
    the model writes back: the document's description of it is exact."""
    try:
        parsed = model.model_validate_json(document)
    except ValidationError:
        return False
    return bool(orjson.loads(parsed.to_json()) == orjson.loads(document))
