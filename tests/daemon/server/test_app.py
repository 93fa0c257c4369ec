from __future__ import annotations

import asyncio
import re
import typing
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy.exc
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from inftd.daemon.cli.devnet import Anvil
from inftd.daemon.config import ROLES, Settings
from inftd.daemon.errors import DaemonError
from inftd.daemon.runtime import Runtime, open_runtime
from inftd.daemon.server.api.status import Role
from inftd.daemon.server.http import RUNTIME, error_middleware
from inftd.indexer.deployment import Deployment
from inftd.store import migrate
from inftd.store.db import create_async
from inftd.store.errors import StoreError
from tests.support.api import api_client
from tests.support.schema import at_head

OPERATOR_KEY = "op-key-must-never-show-0123456789"


@pytest.fixture
def settings(
    chain: Anvil, tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    monkeypatch.setenv("INFTD_OPERATOR_API_KEY", OPERATOR_KEY)
    return Settings.load(
        data_dir=tmp_path, database_url=database_url, chain={"rpc_urls": [chain.url]}
    )


@pytest.fixture
async def client(settings: Settings, deployment: Deployment) -> AsyncIterator[TestClient]:
    async with api_client(settings, deployment) as client:
        yield client


async def test_health(client: TestClient) -> None:
    response = await client.get("/health")
    assert response.status == 200
    assert await response.json() == {"status": "ok", "database": "ok"}
    assert response.headers["X-Request-Id"]


async def test_status_reports_chain_deployment_and_database(
    client: TestClient, deployment: Deployment, chain: Anvil, settings: Settings
) -> None:
    from inftd.daemon.cli.devnet import rpc_call

    response = await client.get("/v1/status")
    assert response.status == 200
    body = await response.json()
    assert body["chain"] == {
        "chainId": 31337,
        "ok": True,
        "headBlock": int(rpc_call(chain.url, "eth_blockNumber"), 16),
    }
    assert body["deployment"]["packageAddress"] == deployment.package_address
    assert body["deployment"]["generationAddress"] == deployment.generation_address
    assert body["deployment"]["deployBlock"] == deployment.deploy_block
    assert body["database"] == {
        "backend": "sqlite" if settings.database.startswith("sqlite") else "postgresql",
        "revision": migrate.head_revision(),
        "headRevision": migrate.head_revision(),
    }
    assert body["indexer"]["indexedBlock"] is None  # nothing indexed yet
    rpc_call(chain.url, "evm_mine")
    await client.app[RUNTIME].indexer.sync_once()
    again = await (await client.get("/v1/status")).json()
    assert again["chain"]["headBlock"] == body["chain"]["headBlock"] + 1
    assert again["indexer"]["indexedBlock"] == again["chain"]["headBlock"]
    assert again["indexer"]["lagBlocks"] == 0
    assert again["indexer"]["reorgs"] == 0
    assert again["indexer"]["halted"] is None


def test_the_status_documents_the_roles_there_are() -> None:
    assert typing.get_args(Role) == ROLES


async def test_no_secret_or_rpc_url_in_status(client: TestClient, chain: Anvil) -> None:
    text = await (await client.get("/v1/status")).text()
    assert OPERATOR_KEY not in text
    assert chain.url not in text  # RPC URLs often carry a provider key


async def test_health_is_503_when_the_database_is_gone(client: TestClient) -> None:
    runtime = client.app[RUNTIME]
    healthy = runtime.engine
    runtime.engine = create_async("postgresql://nobody@127.0.0.1:1/none")  # nothing listens
    try:
        response = await client.get("/health")
        assert response.status == 503
        assert (await response.json())["database"] == "unavailable"
    finally:
        await runtime.engine.dispose()
        runtime.engine = healthy
    assert (await client.get("/health")).status == 200


async def test_metrics_count_requests_by_route(client: TestClient) -> None:
    await client.get("/health")
    await client.get("/v1/no-such-thing")
    text = await (await client.get("/metrics")).text()
    assert 'inftd_http_requests_total{method="GET",route="/health",status="200"} 1.0' in text
    assert 'route="unmatched",status="404"' in text
    assert "inftd_http_request_seconds_bucket" in text
    assert "inftd_indexed_block " in text
    assert "inftd_indexer_reorgs 0.0" in text


async def test_unknown_route_is_a_json_error(client: TestClient) -> None:
    response = await client.get("/v1/nothing-here")
    assert response.status == 404
    assert await response.json() == {
        "error": {"code": "not_found", "message": "Not Found: GET /v1/nothing-here"}
    }
    response = await client.post("/health")
    assert response.status == 405
    assert (await response.json())["error"]["code"] == "method_not_allowed"
    assert response.headers["Allow"] == "GET,HEAD"


ROUTE_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}


async def test_every_method_not_served_is_a_405_naming_those_that_are(
    settings: Settings, deployment: Deployment
) -> None:
    """RFC 9110: a 405 carries ``Allow``; here on every route of the app, with our JSON."""
    lenient = settings.api.model_copy(update={"rate_per_ip": 100_000})  # a request a route
    async with api_client(settings.model_copy(update={"api": lenient}), deployment) as client:
        await _each_route_refuses_another_method(client)


async def _each_route_refuses_another_method(client: TestClient) -> None:
    served: dict[str, set[str]] = {}  # a path's routes may stand in several resources
    for resource in client.app.router.resources():
        info = resource.get_info()
        url = re.sub(r"\{[^}]+\}", "1", info.get("formatter") or info.get("path") or "")
        served.setdefault(url, set()).update(route.method for route in resource)
    for url, methods in served.items():
        if "*" in methods:
            continue
        method = next(m for m in ("PATCH", "DELETE", "PUT", "POST") if m not in methods)
        response = await client.request(method, url)
        assert response.status == 405, (method, url)
        # its own methods, and those of any other route the URL matches (``/webhooks/1``
        # and ``/webhooks/dead-letters`` both match ``/webhooks/{webhook_id}``)
        assert methods <= set(response.headers["Allow"].split(",")) <= ROUTE_METHODS, url
        assert (await response.json())["error"]["code"] == "method_not_allowed", url
    assert len(served) > 40, served


async def test_refuses_an_unmigrated_database(settings: Settings, deployment: Deployment) -> None:
    with pytest.raises(StoreError, match="run `inftd migrate`"):
        async with open_runtime(settings, deployment):
            pass


async def test_refuses_a_deployment_from_another_chain(
    settings: Settings, deployment: Deployment
) -> None:
    at_head(settings.database)
    forged = deployment.model_copy(update={"deploy_block_hash": "0x" + "00" * 32})
    with pytest.raises(DaemonError, match="the deployment is not on this chain"):
        async with open_runtime(settings, forged):
            pass
    wrong_chain = deployment.model_copy(update={"chain_id": 1})
    with pytest.raises(DaemonError, match="RPC serves chain 31337"):
        async with open_runtime(settings, wrong_chain):
            pass


async def test_concurrent_status_requests_share_one_document(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inftd.daemon.server.api import status as status_module

    built = 0
    real = status_module.status_document

    async def counted(runtime: Runtime) -> dict[str, Any]:
        nonlocal built
        built += 1
        return await real(runtime)

    monkeypatch.setattr(status_module, "status_document", counted)
    answers = await asyncio.gather(
        *(client.get("/v1/status") for _ in range(30))
    )  # within the burst of the rate limit
    assert [a.status for a in answers] == [200] * 30
    documents = [await a.json() for a in answers]
    assert all(d["chain"]["chainId"] == documents[0]["chain"]["chainId"] for d in documents)
    assert built < 30 / 2  # requests that overlap a build share it
    before = built
    assert (await client.get("/v1/status")).status == 200
    assert built == before + 1  # a later request gets a fresh document


async def test_an_exhausted_connection_pool_is_a_503_to_retry() -> None:
    async def exhausted(request: web.Request) -> web.Response:
        raise sqlalchemy.exc.TimeoutError("QueuePool limit of size 5 overflow 10 reached")

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/busy", exhausted)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/busy")
        assert response.status == 503
        assert response.headers["Retry-After"] == "1"
        body = await response.json()
    assert body["error"]["code"] == "busy"
    assert "QueuePool" not in body["error"]["message"]
