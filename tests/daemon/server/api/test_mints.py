"""Asking for a failed mint again: who may, when it is refused (409 and nothing changes),
the legacy path, and the whole loop with the relayer: the minter role revoked, the mint
failed, the role granted again, asked again, minted once."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from eth_account import Account
from sqlalchemy import delete, select, update

from inftd.daemon.cli.devnet import BUYER, DEPLOYER, FRIEND, MINTER, Anvil
from inftd.daemon.relayer.relayer import Relayer, run_relayer
from inftd.daemon.server.api.mints import MintQueued
from inftd.daemon.server.app import api_document
from inftd.indexer.deployment import Deployment
from inftd.store.models import EventRecord, Generation, Mint
from tests.daemon.relayer.conftest import settle
from tests.support.api import OPERATOR_KEY, OpenApi, bearer, runtime_of, sign_in
from tests.support.contracts import Contracts
from tests.support.mints import finish_generations
from tests.support.openapi import Spec

Client = TestClient[web.Request, web.Application]
SPEC = Spec(api_document())
LEGACY = "/api/mint-generation-nft"
FAST_RELAYER = {"poll_interval": 0.01, "backoff_base": 0.001, "backoff_max": 0.001}


@pytest.fixture
async def client(open_api: OpenApi) -> AsyncIterator[Client]:
    async with open_api(
        BUYER, env={"INFTD_MINTER_KEY": MINTER.key}, relayer=FAST_RELAYER
    ) as client:
        yield client


@pytest.fixture
async def owner(client: Client) -> dict[str, str]:
    return bearer(await sign_in(client, BUYER))


def path_of(generation_id: str) -> str:
    return f"/v1/generations/{generation_id}/mint"


async def post(client: Client, path: str, status: int, **kwargs: Any) -> Any:
    """The JSON answer, checked to have ``status`` and to be what the document says."""
    template = re.sub(r"^/v1/generations/[^/]+/", "/v1/generations/{generation_id}/", path)
    async with client.post(path, **kwargs) as response:
        raw = await response.read()
        assert response.status == status, raw
        SPEC.check(SPEC.operation("POST", template), status, response.content_type, raw)
        return orjson.loads(raw)


async def mint_row(client: Client, generation_id: str) -> Any:
    async with runtime_of(client).engine.connect() as conn:
        return (await conn.execute(select(Mint).where(Mint.generation_id == generation_id))).one()


async def set_mint(client: Client, generation_id: str, **values: Any) -> None:
    async with runtime_of(client).engine.begin() as conn:
        await conn.execute(update(Mint).where(Mint.generation_id == generation_id).values(values))


async def test_a_failed_mint_is_pending_again_for_its_owner_or_the_operator(
    client: Client, owner: dict[str, str]
) -> None:
    engine = runtime_of(client).engine
    first, second = await finish_generations(engine, 1, 2)
    for gid in (first, second):
        await set_mint(client, gid, status="failed", attempts=5, error="x", error_code="y")
    async with engine.begin() as conn:
        await conn.execute(update(Generation).values(error="mint failed: x"))

    body = await post(client, path_of(first), 202, headers=owner)
    assert body["generationId"] == first
    assert body["mint"]["status"] == "pending"
    row = await mint_row(client, first)
    assert (row.status, row.attempts, row.error, row.error_code) == ("pending", 0, None, None)
    async with engine.connect() as conn:
        assert await conn.scalar(select(Generation.error).where(Generation.id == first)) is None
    await post(client, path_of(second), 202, headers=bearer(OPERATOR_KEY))


async def test_who_may_ask_and_what_is_refused(client: Client, owner: dict[str, str]) -> None:
    engine = runtime_of(client).engine
    (gid,) = await finish_generations(engine, 1, 1)
    friend = bearer(await sign_in(client, FRIEND))
    assert (await post(client, path_of(gid), 401))["error"]["code"] == "unauthenticated"
    assert (await post(client, path_of(gid), 403, headers=friend))["error"]["code"] == ("not_owner")
    for missing in ("no-such-generation", "x" * 80):
        body = await post(client, path_of(missing), 404, headers=owner)
        assert body["error"]["code"] == "unknown_generation"
    refused = {"pending": "mint_in_flight", "sent": "mint_in_flight", "mined": "already_minted"}
    refused["confirmed"] = "already_minted"
    for status, code in refused.items():
        await set_mint(client, gid, status=status)
        body = await post(client, path_of(gid), 409, headers=owner)
        assert body["error"]["code"] == code
        assert (await mint_row(client, gid)).status == status  # unchanged
    async with engine.begin() as conn:
        await conn.execute(update(Generation).values(status="running"))
    body = await post(client, path_of(gid), 409, headers=owner)
    assert body["error"]["code"] == "generation_not_succeeded"


async def test_a_succeeded_generation_without_a_mint_gets_one(
    client: Client, owner: dict[str, str]
) -> None:
    engine = runtime_of(client).engine
    (gid,) = await finish_generations(engine, 1, 1)
    async with engine.begin() as conn:
        await conn.execute(delete(Mint))
    body = await post(client, path_of(gid), 202, headers=owner)
    assert body["mint"]["status"] == "pending"
    assert (await mint_row(client, gid)).attempts == 0


async def test_the_legacy_path_names_the_generation_in_the_body(
    client: Client, owner: dict[str, str]
) -> None:
    (gid,) = await finish_generations(runtime_of(client).engine, 1, 1)
    await set_mint(client, gid, status="failed")
    for bad in (b"{no", b"[]", b'{"generationId": 1}', b'{"generationId": "a", "x": 1}'):
        body = await post(client, LEGACY, 400, data=bad, headers=owner)
        assert body["error"]["code"] in ("malformed_json", "bad_request")
    assert (await mint_row(client, gid)).status == "failed"
    await post(client, LEGACY, 401, json={"generationId": gid})
    body = await post(client, LEGACY, 202, json={"generationId": gid}, headers=owner)
    assert body == {"generationId": gid, "mint": body["mint"]}
    assert body["mint"]["status"] == "pending"


async def test_the_answers_bytes_and_the_event_are_the_model(
    client: Client, owner: dict[str, str]
) -> None:
    """Read back by the closed model (a field added or renamed fails), and the same as the
    mint.requested event the agent's channel gets."""
    runtime = runtime_of(client)
    (gid,) = await finish_generations(runtime.engine, 1, 1)
    await set_mint(client, gid, status="failed")
    async with client.post(path_of(gid), headers=owner) as response:
        assert response.status == 202
        queued = MintQueued.model_validate_json(await response.read())
    row = await mint_row(client, gid)
    assert (queued.generation_id, queued.mint.status) == (gid, "pending")
    assert (queued.mint.request_key, queued.mint.token_id) == (row.request_key, None)
    async with runtime.engine.connect() as conn:
        event = await conn.scalar(
            select(EventRecord.payload).where(EventRecord.type == "mint.requested")
        )
    assert MintQueued.model_validate(event) == queued


async def test_revoked_role_fails_the_mint_and_asking_again_after_a_grant_mints_it(
    chain: Anvil, deployment: Deployment, client: Client, owner: dict[str, str]
) -> None:
    contracts = Contracts(chain.url, deployment)
    role = contracts.generation.functions.MINTER_ROLE().call()
    fn = contracts.generation.functions
    contracts._send(fn.revokeRole(role, MINTER.address), DEPLOYER.address)
    runtime = runtime_of(client)
    (gid,) = await finish_generations(runtime.engine, 1, 1)
    relayer = Relayer.for_runtime(runtime, Account.from_key(MINTER.key))
    try:
        await settle(relayer)
        assert (await mint_row(client, gid)).status == "failed"
        contracts._send(fn.grantRole(role, MINTER.address), DEPLOYER.address)
        await post(client, path_of(gid), 202, headers=owner)
        await settle(relayer)
    finally:
        await relayer.close()
    row = await mint_row(client, gid)
    assert row.status == "confirmed"
    assert fn.ownerOf(row.nft_token_id).call() == BUYER.address
    body = await post(client, path_of(gid), 409, headers=owner)
    assert body["error"]["code"] == "already_minted"


async def test_websocket_subscribers_get_mint_sent_then_confirmed(client: Client) -> None:
    runtime = runtime_of(client)
    stop = asyncio.Event()
    hub = asyncio.create_task(runtime.hub.run(stop))
    await runtime.hub.started()
    relayer = Relayer.for_runtime(runtime, Account.from_key(MINTER.key))
    try:
        async with client.ws_connect("/v1/agents/1/ws") as ws:
            assert (await asyncio.wait_for(ws.receive_json(), 10))["type"] == "snapshot"
            (gid,) = await finish_generations(runtime.engine, 1, 1)
            await settle(relayer)
            told = [await asyncio.wait_for(ws.receive_json(), 10) for _ in range(2)]
    finally:
        await relayer.close()
        stop.set()
        await hub
    assert [m["event"] for m in told] == ["mint.sent", "mint.confirmed"]
    assert {m["tokenId"] for m in told} == {1}
    row = await mint_row(client, gid)
    assert told[0]["data"]["txHash"] == row.tx_hash
    assert told[1]["data"]["mint"] == {
        "status": "confirmed",
        "requestKey": row.request_key,
        "txHash": row.tx_hash,
        "tokenId": row.nft_token_id,
        "blockNumber": row.block_number,
    }


async def test_the_daemons_relayer_loop_mints_until_stopped(client: Client) -> None:
    runtime = runtime_of(client)
    stop = asyncio.Event()
    loop = asyncio.create_task(run_relayer(runtime, stop))
    try:
        (gid,) = await finish_generations(runtime.engine, 1, 1)
        for _ in range(1000):  # polls the database, not the clock: no timed assertion
            if (await mint_row(client, gid)).status == "confirmed":
                break
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.wait_for(loop, 30)
    assert (await mint_row(client, gid)).status == "confirmed"
