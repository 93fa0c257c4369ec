"""CORS: preflights and simple requests from allowed and other origins."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from inftd.daemon.cli.devnet import Anvil
from inftd.daemon.config import Settings
from inftd.daemon.generation.content import ContentStore, register
from inftd.daemon.server.api.generations import CACHE_CONTROL
from inftd.daemon.server.cors import ALLOW_HEADERS, MAX_AGE
from inftd.indexer.deployment import Deployment
from tests.support.api import api_client, runtime_of

APP = "https://app.inftd.example"
OTHER = "https://evil.example"
PREFLIGHT = {
    "Access-Control-Request-Method": "PUT",
    "Access-Control-Request-Headers": "authorization, content-type",
}

OpenClient = Callable[..., AbstractAsyncContextManager[TestClient]]


@pytest.fixture
def open_client(
    chain: Anvil, deployment: Deployment, tmp_path: Path, database_url: str
) -> OpenClient:
    def open_with(origins: list[str], rate: float = 1) -> AbstractAsyncContextManager[TestClient]:
        settings = Settings.load(
            data_dir=tmp_path,
            database_url=database_url,
            chain={"rpc_urls": [chain.url]},
            api={"cors_origins": origins, "rate_per_ip": rate},
        )
        return api_client(settings, deployment)

    return open_with


@pytest.fixture
async def client(open_client: OpenClient) -> AsyncIterator[TestClient]:
    async with open_client([APP, "http://localhost:5173"]) as client:
        yield client


def cors_headers(headers: Mapping[str, str]) -> set[str]:
    return {k.lower() for k in headers if k.lower().startswith("access-control-")}


async def test_a_preflight_from_an_allowed_origin(client: TestClient) -> None:
    response = await client.options(
        "/v1/agents/1/preferences", headers={"Origin": APP, **PREFLIGHT}
    )
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == APP
    assert "PUT" in response.headers["Access-Control-Allow-Methods"]
    assert response.headers["Access-Control-Allow-Headers"] == ALLOW_HEADERS
    for header in ("Authorization", "Content-Type", "Idempotency-Key", "X-Request-Id"):
        assert header in ALLOW_HEADERS
    assert response.headers["Access-Control-Max-Age"] == str(MAX_AGE)
    assert response.headers["Vary"] == "Origin"
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert response.headers["X-Request-Id"]


async def test_a_preflight_from_another_origin_is_refused(client: TestClient) -> None:
    response = await client.options("/v1/status", headers={"Origin": OTHER, **PREFLIGHT})
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "origin_not_allowed"
    assert cors_headers(response.headers) == set()


async def test_simple_requests(client: TestClient) -> None:
    allowed = await client.get("/health", headers={"Origin": APP})
    assert allowed.status == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == APP
    assert "X-Request-Id" in allowed.headers["Access-Control-Expose-Headers"]
    assert allowed.headers["Vary"] == "Origin"
    other = await client.get("/health", headers={"Origin": OTHER})
    assert other.status == 200
    assert cors_headers(other.headers) == set()
    no_origin = await client.get("/health")
    assert cors_headers(no_origin.headers) == set()


async def test_errors_and_429s_are_readable_by_an_allowed_page(client: TestClient) -> None:
    missing = await client.get("/v1/agents/1", headers={"Origin": APP})
    assert missing.status == 404
    assert missing.headers["Access-Control-Allow-Origin"] == APP
    await client.get("/v1/agents/1", headers={"Origin": APP})
    limited = await client.get("/v1/agents/1", headers={"Origin": APP})
    assert limited.status == 429
    assert limited.headers["Access-Control-Allow-Origin"] == APP
    assert "Retry-After" in limited.headers["Access-Control-Expose-Headers"]


async def test_every_answer_varies_on_the_origin_with_a_list_of_origins(
    open_client: OpenClient,
) -> None:
    """A shared cache must not keep an answer made for no Origin (or another) and hand it
    to an allowed page: content answers are public and cacheable for a year."""
    async with open_client([APP], rate=1000) as client:
        await _every_answer_varies(client)


async def _every_answer_varies(client: TestClient) -> None:
    runtime = runtime_of(client)
    stored = await ContentStore(runtime.settings.content_dir).put(b"cached", "text/plain")
    async with runtime.engine.begin() as conn:
        await register(conn, stored)
    content = f"/v1/content/{stored.sha256}"
    for headers in ({}, {"Origin": OTHER}, {"Origin": APP}):
        for path in ("/health", content, "/v1/content/" + "0" * 64, "/v1/agents/1"):
            response = await client.get(path, headers=headers)
            assert response.status != 429
            assert response.headers.getall("Vary") == ["Origin"], (path, headers)
        cached = await client.get(content, headers=headers)
        assert (cached.status, cached.headers["Cache-Control"]) == (200, CACHE_CONTROL)
    refused = await client.options("/v1/status", headers={"Origin": OTHER, **PREFLIGHT})
    assert (refused.status, refused.headers["Vary"]) == (403, "Origin")


async def test_any_origin_when_configured(open_client: OpenClient) -> None:
    async with open_client(["*"]) as client:
        response = await client.get("/health", headers={"Origin": OTHER})
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert "Vary" not in response.headers
        preflight = await client.options("/v1/status", headers={"Origin": OTHER, **PREFLIGHT})
        assert preflight.status == 204
        assert preflight.headers["Access-Control-Allow-Origin"] == "*"


async def test_no_cors_without_configured_origins(open_client: OpenClient) -> None:
    async with open_client([]) as client:
        response = await client.get("/health", headers={"Origin": APP})
        assert cors_headers(response.headers) == set()
        preflight = await client.options("/v1/status", headers={"Origin": APP, **PREFLIGHT})
        assert preflight.status == 405
        assert cors_headers(preflight.headers) == set()
