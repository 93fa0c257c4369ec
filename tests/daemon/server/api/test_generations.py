"""The generation routes over a bought and indexed Starter package (100 credits), with the
hub and a generation worker running on the local provider: create (idempotent, limits),
follow, list, cancel, content, the legacy route, the WebSocket command with its streamed
progress, and an on-chain request run to the end."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from inftd.daemon.cli.devnet import BUYER, FRIEND, Anvil
from inftd.daemon.generation.routing.recorder import MemoryRecorder
from inftd.daemon.generation.routing.router import Router
from inftd.daemon.generation.scheduler import GenerationService
from inftd.daemon.providers.local import LocalProvider
from inftd.daemon.server.app import api_document
from inftd.indexer.deployment import Deployment
from tests.daemon.generation.support import FAST, ROUTING
from tests.support.api import OPERATOR_KEY, OpenApi, bearer, runtime_of, sign_in
from tests.support.contracts import Contracts
from tests.support.openapi import Operation, Spec

Client = TestClient[web.Request, web.Application]
SPEC = Spec(api_document())
GENERATIONS = "/v1/agents/1/generations"
TEXT = {"kind": "text", "prompt": "a lighthouse at dawn over a quiet harbour"}
WAIT = 15.0  # seconds a test waits for a job that takes milliseconds


@pytest.fixture
async def client(open_api: OpenApi) -> AsyncIterator[Client]:
    """The API with the hub running and token 1 (Starter, 100 credits) owned by BUYER."""
    async with open_api(
        BUYER,
        hub=True,
        generation=FAST,
        routing=ROUTING,
        api={"rate_per_ip": 100_000, "rate_per_address": 100_000},
    ) as client:
        yield client


@pytest.fixture
async def worker(client: Client) -> AsyncIterator[GenerationService]:
    """A generation worker in the API's process, on the local provider (streaming slowly
    enough that progress comes in several events)."""
    runtime = runtime_of(client)
    local = LocalProvider(delay=0.01)
    router = Router({"local": local}, runtime.settings.routing, MemoryRecorder())
    service = GenerationService(runtime, router, owner="api-test-worker")
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


@pytest.fixture
async def owner(client: Client) -> dict[str, str]:
    return bearer(await sign_in(client, BUYER))


def documented(method: str, path: str) -> Operation:
    template = re.sub(r"^/v1/agents/[^/]+", "/v1/agents/{token_id}", path)
    template = re.sub(r"^/v1/generations/[^/]+", "/v1/generations/{generation_id}", template)
    template = re.sub(r"^/v1/content/[^/]+", "/v1/content/{sha256}", template)
    return SPEC.operation(method, template)


async def call(
    client: Client, method: str, path: str, status: int, **kwargs: Any
) -> tuple[Any, Any]:
    """The answer (JSON decoded, else bytes) and its headers, checked to have ``status``
    and to be what the document says."""
    async with client.request(method, path, **kwargs) as response:
        raw = await response.read()
        assert response.status == status, raw
        SPEC.check(documented(method, path), status, response.content_type, raw)
        json = response.content_type == "application/json"
        return (orjson.loads(raw) if json else raw), response.headers


async def post(client: Client, path: str, status: int, **kwargs: Any) -> Any:
    return (await call(client, "POST", path, status, **kwargs))[0]


async def get(client: Client, path: str, status: int, **kwargs: Any) -> Any:
    return (await call(client, "GET", path, status, **kwargs))[0]


async def settled(client: Client, generation_id: str, headers: dict[str, str]) -> Any:
    """The generation once it is finished."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while True:
        body = await get(client, f"/v1/generations/{generation_id}", 200, headers=headers)
        if body["status"] in ("succeeded", "failed", "cancelled"):
            return body
        assert asyncio.get_running_loop().time() < deadline, body
        await asyncio.sleep(0.05)


async def credits_of(client: Client) -> dict[str, int]:
    agent = await get(client, "/v1/agents/1", 200)
    return {k: agent[k] for k in ("usedCredits", "reservedCredits", "availableCredits")}


async def test_a_generation_is_queued_run_and_its_content_served(
    client: Client, owner: dict[str, str], worker: GenerationService
) -> None:
    queued = await post(client, GENERATIONS, 202, json=TEXT, headers=owner)
    assert (queued["status"], queued["creditsReserved"], queued["mint"]) == ("queued", 1, None)
    done = await settled(client, queued["id"], owner)
    assert (done["status"], done["provider"], done["creditsUsed"]) == ("succeeded", "local", 1)
    assert done["mint"]["status"] == "pending"
    assert done["detail"]["strategy"] == "single"
    assert await credits_of(client) == {
        "usedCredits": 1, "reservedCredits": 0, "availableCredits": 99,
    }  # fmt: skip
    sha = done["contentHash"].removeprefix("0x")
    assert done["contentUri"] == f"/v1/content/{sha}"
    body, headers = await call(client, "GET", done["contentUri"], 200)
    assert hashlib.sha256(body).hexdigest() == sha
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert headers["ETag"] == f'"{sha}"'
    assert "immutable" in headers["Cache-Control"]
    await call(client, "GET", done["contentUri"], 304, headers={"If-None-Match": f'"{sha}"'})
    agent = await get(client, "/v1/agents/1", 200)
    assert [g["id"] for g in agent["generatedContent"]] == [queued["id"]]


async def test_content_is_served_only_for_a_finished_generation(client: Client) -> None:
    missing = "ab" * 32
    assert (await get(client, f"/v1/content/{missing}", 404))["error"]["code"] == (
        "unknown_content"
    )
    stored = await runtime_store(client).put(b"stray bytes", "text/plain")
    body = await get(client, f"/v1/content/{stored.sha256}", 404)  # on disk, not registered
    assert body["error"]["code"] == "unknown_content"
    for bad in ("AB" * 32, "ab" * 31, "xyz"):
        assert (await get(client, f"/v1/content/{bad}", 400))["error"]["code"] == "bad_hash"


def runtime_store(client: Client) -> Any:
    from inftd.daemon.generation.content import ContentStore

    return ContentStore(runtime_of(client).settings.content_dir)


async def test_an_image_is_served_as_a_png(
    client: Client, owner: dict[str, str], worker: GenerationService
) -> None:
    body = {"kind": "image", "prompt": "a red fox", "options": {"size": "96x64"}}
    queued = await post(client, GENERATIONS, 202, json=body, headers=owner)
    done = await settled(client, queued["id"], owner)
    data, headers = await call(client, "GET", done["contentUri"], 200)
    assert headers["Content-Type"] == "image/png"
    assert data.startswith(b"\x89PNG")
    assert hashlib.sha256(data).hexdigest() in done["contentUri"]


async def test_the_same_idempotency_key_returns_the_first_generation(
    client: Client, owner: dict[str, str]
) -> None:
    key = {**owner, "Idempotency-Key": "order-17"}
    first, headers = await call(client, "POST", GENERATIONS, 202, json=TEXT, headers=key)
    assert "Idempotent-Replayed" not in headers
    again, headers = await call(client, "POST", GENERATIONS, 202, json=TEXT, headers=key)
    assert headers["Idempotent-Replayed"] == "true"
    assert again["id"] == first["id"]
    other = {**TEXT, "prompt": "something else"}
    conflict = await post(client, GENERATIONS, 409, json=other, headers=key)
    assert conflict["error"]["code"] == "idempotency_conflict"
    assert await credits_of(client) == {
        "usedCredits": 0, "reservedCredits": 1, "availableCredits": 99,
    }  # fmt: skip
    for bad in ("", "x" * 129, "caf\u00e9"):
        bad_key = {**owner, "Idempotency-Key": bad}
        body = await post(client, GENERATIONS, 400, json=TEXT, headers=bad_key)
        assert body["error"]["code"] == "bad_idempotency_key"


async def test_limits_are_refused_naming_the_limit_with_nothing_reserved(
    client: Client, owner: dict[str, str]
) -> None:
    long = await post(client, GENERATIONS, 400, json={**TEXT, "prompt": "x" * 2001}, headers=owner)
    assert long["error"]["code"] == "limit_exceeded"
    assert "max_prompt_chars" in long["error"]["message"]
    await post(client, GENERATIONS, 202, json=TEXT, headers=owner)
    await post(client, GENERATIONS, 202, json=TEXT, headers=owner)
    before = await credits_of(client)
    busy = await post(client, GENERATIONS, 429, json=TEXT, headers=owner)
    assert busy["error"]["code"] == "limit_exceeded"
    assert "max_concurrent_jobs" in busy["error"]["message"]
    assert await credits_of(client) == before == {
        "usedCredits": 0, "reservedCredits": 2, "availableCredits": 98,
    }  # fmt: skip


async def test_too_few_credits_is_a_409_with_nothing_reserved(
    client: Client, owner: dict[str, str]
) -> None:
    async with runtime_of(client).writer.write(1) as (conn, agent):
        from inftd.agents.credits import spend

        await spend(conn, agent, 96, "most of it")
    image = {"kind": "image", "prompt": "a red fox"}
    body = await post(client, GENERATIONS, 409, json=image, headers=owner)
    assert body["error"]["code"] == "insufficient_credits"
    assert await credits_of(client) == {
        "usedCredits": 96, "reservedCredits": 0, "availableCredits": 4,
    }  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "video", "prompt": "x"},
        {"kind": "text", "prompt": "   "},
        {"kind": "text"},
        {"kind": "text", "prompt": "x", "options": {"quality": "ultra"}},
        {"kind": "text", "prompt": "x", "options": {"size": "512x512"}},
        {"kind": "image", "prompt": "x", "options": {"size": "9x9"}},
        {"kind": "text", "prompt": "x", "options": {"strategy": "magic"}},
        {"kind": "text", "prompt": "x", "options": {"provider": "skynet"}},
        {"kind": "text", "prompt": "x", "options": {"colour": "red"}},
        {"kind": "text", "prompt": "x\u0000y"},
        {"kind": "text", "prompt": "x", "extra": 1},
        {"kind": "text", "prompt": "x", "collaboratorTokenId": -1},
        ["kind", "text"],
    ],
)
async def test_bad_requests_are_400_and_change_nothing(
    client: Client, owner: dict[str, str], body: Any
) -> None:
    answer = await post(client, GENERATIONS, 400, json=body, headers=owner)
    assert answer["error"]["code"] == "bad_request"
    assert await credits_of(client) == {
        "usedCredits": 0, "reservedCredits": 0, "availableCredits": 100,
    }  # fmt: skip
    listed = await get(client, GENERATIONS, 200, headers=owner)
    assert listed["generations"] == []


async def test_a_collaborator_must_have_granted(client: Client, owner: dict[str, str]) -> None:
    body = await post(
        client, GENERATIONS, 403, json={**TEXT, "collaboratorTokenId": 1}, headers=owner
    )
    assert body["error"]["code"] == "no_collaboration"


async def test_generations_are_the_owners(client: Client, owner: dict[str, str]) -> None:
    queued = await post(client, GENERATIONS, 202, json=TEXT, headers=owner)
    one = f"/v1/generations/{queued['id']}"
    friend = bearer(await sign_in(client, FRIEND))
    operator = bearer(OPERATOR_KEY)
    assert (await post(client, GENERATIONS, 401, json=TEXT))["error"]["code"] == "unauthenticated"
    assert (await post(client, GENERATIONS, 403, json=TEXT, headers=friend))["error"]["code"] == (
        "not_owner"
    )
    assert (await get(client, one, 401))["error"]["code"] == "unauthenticated"
    assert (await get(client, one, 403, headers=friend))["error"]["code"] == "not_owner"
    assert (await get(client, one, 200, headers=operator))["prompt"] == TEXT["prompt"]
    assert (await get(client, GENERATIONS, 403, headers=friend))["error"]["code"] == "not_owner"
    missing = await get(client, "/v1/generations/no-such-id", 404, headers=owner)
    assert missing["error"]["code"] == "unknown_generation"
    for token in ("2", str(2**256 - 1)):
        path = f"/v1/agents/{token}/generations"
        body = await post(client, path, 404, json=TEXT, headers=operator)
        assert body["error"]["code"] == "unknown_agent"
    assert (await post(client, one + "/cancel", 403, headers=friend))["error"]["code"] == (
        "not_owner"
    )


async def test_generations_are_listed_newest_first_in_pages(
    client: Client, owner: dict[str, str]
) -> None:
    ids = []
    for _ in range(3):
        queued = await post(client, GENERATIONS, 202, json=TEXT, headers=owner)
        ids.append(queued["id"])
        await post(client, f"/v1/generations/{queued['id']}/cancel", 200, headers=owner)
    first = await get(client, GENERATIONS, 200, headers=owner, params={"limit": "2"})
    assert [g["id"] for g in first["generations"]] == ids[::-1][:2]
    assert "detail" not in first["generations"][0]
    rest = await get(
        client, GENERATIONS, 200, headers=owner, params={"limit": "2", "before": first["next"]}
    )
    assert [g["id"] for g in rest["generations"]] == ids[:1]
    assert rest["next"] is None
    for params, code in (({"limit": "0"}, "bad_limit"), ({"limit": "x"}, "bad_limit")):
        body = await get(client, GENERATIONS, 400, headers=owner, params=params)
        assert body["error"]["code"] == code


async def test_cancel_a_queued_generation_then_a_finished_one_is_refused(
    client: Client, owner: dict[str, str]
) -> None:
    queued = await post(client, GENERATIONS, 202, json=TEXT, headers=owner)
    cancel = f"/v1/generations/{queued['id']}/cancel"
    body = await post(client, cancel, 200, headers=owner)
    assert (body["status"], body["creditsUsed"]) == ("cancelled", 0)
    assert await credits_of(client) == {
        "usedCredits": 0, "reservedCredits": 0, "availableCredits": 100,
    }  # fmt: skip
    assert (await post(client, cancel, 409, headers=owner))["error"]["code"] == "not_cancellable"


async def test_cancel_a_running_generation(client: Client, owner: dict[str, str]) -> None:
    runtime = runtime_of(client)
    slow = LocalProvider(delay=0.2)  # long enough to be cancelled while it streams
    router = Router({"local": slow}, runtime.settings.routing, MemoryRecorder())
    service = GenerationService(runtime, router, owner="slow-worker")
    await service.start()
    try:
        queued = await post(client, GENERATIONS, 202, json=TEXT, headers=owner)
        one = f"/v1/generations/{queued['id']}"
        deadline = asyncio.get_running_loop().time() + WAIT
        while (await get(client, one, 200, headers=owner))["status"] != "running":
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
        flagged = await post(client, one + "/cancel", 202, headers=owner)
        assert flagged["cancelRequested"] is True
        done = await settled(client, queued["id"], owner)
    finally:
        await service.stop()
    assert (done["status"], done["creditsUsed"], done["mint"]) == ("cancelled", 0, None)
    assert await credits_of(client) == {
        "usedCredits": 0, "reservedCredits": 0, "availableCredits": 100,
    }  # fmt: skip


async def test_the_legacy_route_queues_like_the_v1_route(
    client: Client, owner: dict[str, str]
) -> None:
    body = {"packageTokenId": 1, "type": "text", "prompt": "a haiku about tides"}
    queued = await post(client, "/api/generate", 202, json=body, headers=owner)
    assert (queued["packageTokenId"], queued["kind"], queued["status"]) == (1, "text", "queued")
    assert (await post(client, "/api/generate", 401, json=body))["error"]["code"] == (
        "unauthenticated"
    )
    for bad in ({"type": "text", "prompt": "x"}, {"packageTokenId": "1", "prompt": "x"}):
        answer = await post(client, "/api/generate", 400, json=bad, headers=owner)
        assert answer["error"]["code"] == "bad_token_id"


async def receive(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.receive_json(), WAIT)
    assert isinstance(message, dict)
    return message


async def _until_succeeded(ws: aiohttp.ClientWebSocketResponse) -> list[dict[str, Any]]:
    seen = []
    while True:
        message = await receive(ws)
        seen.append(message)
        if message.get("event") in ("generation.succeeded", "generation.failed"):
            return seen


async def test_the_websocket_command_streams_progress_to_the_owner_in_order(
    client: Client, worker: GenerationService
) -> None:
    token = await sign_in(client, BUYER)
    async with (
        client.ws_connect(f"/v1/agents/1/ws?access_token={token}") as mine,
        client.ws_connect("/v1/agents/1/ws") as public,
    ):
        assert (await receive(mine))["type"] == (await receive(public))["type"] == "snapshot"
        await mine.send_json({"type": "generate", "tokenId": 1, **TEXT})
        seen = await _until_succeeded(mine)
        watched = [m for m in await _until_succeeded(public) if m["type"] == "event"]
    [queued] = [m for m in seen if m["type"] == "generationQueued"]
    generation_id = queued["generation"]["id"]
    events = [m for m in seen if m["type"] == "event"]
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    chunks = [e["data"] for e in events if e["event"] == "generation.progress"]
    text = "".join(c["text"] for c in chunks if c["stage"] == "chunk")
    assert len([c for c in chunks if c["stage"] == "chunk"]) > 1  # it streamed
    succeeded = events[-1]["data"]
    content, _ = await call(client, "GET", succeeded["contentUri"], 200)
    assert text == content.decode()
    assert succeeded["id"] == generation_id
    kinds = [m["event"] for m in watched if m["event"].startswith("generation.")]
    assert kinds == ["generation.queued", "generation.started", "generation.succeeded"]


async def test_the_websocket_command_is_the_owners(client: Client) -> None:
    friend = await sign_in(client, FRIEND)
    async with client.ws_connect(f"/v1/agents/1/ws?access_token={friend}") as ws:
        await receive(ws)
        await ws.send_json({"type": "generate", "tokenId": 1, **TEXT})
        assert (await receive(ws))["code"] == "not_owner"
        await ws.send_json({"type": "generate", "tokenId": 1, "kind": "text"})
        assert (await receive(ws))["code"] == "not_owner"
    async with client.ws_connect("/v1/agents/1/ws") as ws:
        await receive(ws)
        await ws.send_json({"type": "generate", "tokenId": 1, **TEXT})
        assert (await receive(ws))["code"] == "unauthenticated"
    assert await credits_of(client) == {
        "usedCredits": 0, "reservedCredits": 0, "availableCredits": 100,
    }  # fmt: skip


async def test_an_on_chain_request_is_indexed_run_and_charged(
    client: Client,
    owner: dict[str, str],
    worker: GenerationService,
    chain: Anvil,
    deployment: Deployment,
) -> None:
    request_id = Contracts(chain.url, deployment).request(1, "a sonnet about the sea")
    await runtime_of(client).indexer.sync_once()
    listed = await get(client, GENERATIONS, 200, headers=owner)
    [generation] = listed["generations"]
    assert (generation["source"], generation["chainRequestId"]) == ("chain", request_id)
    done = await settled(client, generation["id"], owner)
    assert (done["status"], done["creditsReserved"], done["creditsUsed"]) == ("succeeded", 1, 1)
    assert done["mint"]["status"] == "pending"
    assert await credits_of(client) == {
        "usedCredits": 1, "reservedCredits": 0, "availableCredits": 99,
    }  # fmt: skip
