"""POST /v1/webhooks/chain against a real chain: every way a push can be good or bad."""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from inftd.daemon.cli.devnet import Anvil, rpc_call
from inftd.daemon.config import Settings
from inftd.daemon.server.app import MAX_BODY_BYTES
from inftd.indexer.deployment import Deployment
from inftd.indexer.webhook import MAX_LOGS, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature
from inftd.store.models import Agent, ChainEvent
from tests.support.api import OpenApi, api_client, runtime_of
from tests.support.contracts import Contracts

SECRET = "whsec-test-4f1b9c0a"


@pytest.fixture
async def client(open_api: OpenApi) -> AsyncIterator[TestClient]:
    async with open_api(env={"INFTD_WEBHOOK_SECRET": SECRET}) as client:
        yield client


def purchase_logs(chain: Anvil, deployment: Deployment) -> list[dict[str, Any]]:
    """Buy a package and return the block's logs exactly as eth_getLogs gives them."""
    contracts = Contracts(chain.url, deployment)
    contracts.buy(0)
    head = hex(contracts.head())
    return rpc_call(
        chain.url,
        "eth_getLogs",
        [{"fromBlock": head, "toBlock": head, "address": deployment.package_address}],
    )


async def post(
    client: TestClient, body: bytes, *, stamp: int | None = None, secret: str = SECRET
) -> Any:
    ts = str(stamp if stamp is not None else int(time.time()))
    headers = {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: signature(secret.encode(), ts, body)}
    return await client.post("/v1/webhooks/chain", data=io.BytesIO(body), headers=headers)


async def stored_events(client: TestClient) -> int:
    async with runtime_of(client).engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(ChainEvent)) or 0)


async def test_a_valid_push_is_stored_then_applied_once(
    client: TestClient, chain: Anvil, deployment: Deployment
) -> None:
    logs = purchase_logs(chain, deployment)
    response = await post(client, orjson.dumps({"logs": logs}))
    assert response.status == 200, await response.text()
    body = await response.json()
    assert (body["accepted"], body["duplicate"], body["rejected"]) == (2, 0, 0)
    assert runtime_of(client).indexer.wake.is_set()

    again = await post(client, orjson.dumps({"logs": logs, "note": "resent"}))
    assert (await again.json())["duplicate"] == 2

    await runtime_of(client).indexer.sync_once()  # polling finds the same logs: no-ops
    async with runtime_of(client).engine.connect() as conn:
        agents = (await conn.execute(select(Agent.token_id, Agent.total_credits))).all()
        sources = set(await conn.scalars(select(ChainEvent.source)))
    assert [tuple(a) for a in agents] == [(1, 100)]
    assert sources == {"webhook"}
    status = await (await client.get("/v1/status")).json()
    assert status["indexer"]["webhook"] == {
        "accepted": 2,
        "duplicate": 2,
        "ignored": 0,
        "rejected": 0,
    }


async def test_a_replayed_request_is_refused(
    client: TestClient, chain: Anvil, deployment: Deployment
) -> None:
    body = orjson.dumps({"logs": purchase_logs(chain, deployment)})
    stamp = int(time.time())
    assert (await post(client, body, stamp=stamp)).status == 200
    replay = await post(client, body, stamp=stamp)
    assert replay.status == 409
    assert (await replay.json())["error"]["code"] == "replayed"
    stale = await post(client, body, stamp=stamp - 3600)
    assert stale.status == 401
    assert (await stale.json())["error"]["code"] == "stale"


@pytest.mark.parametrize(
    ("field", "forged"),
    [
        ("data", lambda v: v[:-4] + "ffff"),  # more credits than the chain granted
        ("topics", lambda v: [v[0], "0x" + "0" * 63 + "9", *v[2:]]),  # another token
        ("blockHash", lambda v: "0x" + "ab" * 32),
        ("transactionHash", lambda v: "0x" + "cd" * 32),
    ],
)
async def test_a_forged_log_is_rejected_and_nothing_is_stored(
    client: TestClient, chain: Anvil, deployment: Deployment, field: str, forged: Any
) -> None:
    logs = purchase_logs(chain, deployment)
    logs[1][field] = forged(logs[1][field])
    response = await post(client, orjson.dumps({"logs": logs}))
    assert response.status == 422
    body = await response.json()
    assert body["error"]["code"] == "rejected_logs"
    assert [r["status"] for r in body["results"]] == ["held", "rejected"]
    assert await stored_events(client) == 0


async def test_bad_signature_oversized_and_malformed_change_nothing(
    client: TestClient, chain: Anvil, deployment: Deployment
) -> None:
    body = orjson.dumps({"logs": purchase_logs(chain, deployment)})
    wrong = await post(client, body, secret="not-the-secret")
    assert wrong.status == 401
    assert (await wrong.json())["error"]["code"] == "bad_signature"
    unsigned = await client.post("/v1/webhooks/chain", data=body)
    assert unsigned.status == 401

    huge = b'{"logs": [' + b" " * MAX_BODY_BYTES + b"]}"
    too_big = await post(client, huge)
    assert too_big.status == 413
    assert (await too_big.json())["error"]["code"] == "request_entity_too_large"

    for bad in (b"{not json", b'{"logs": []}', b'{"logs": [{"address": "0x1"}]}', b"[1, 2]"):
        response = await post(client, bad)
        assert response.status == 400, bad
        assert "error" in await response.json()
    assert await stored_events(client) == 0


async def test_logs_of_other_contracts_are_ignored(
    client: TestClient, chain: Anvil, deployment: Deployment
) -> None:
    logs = purchase_logs(chain, deployment)
    logs[0]["address"] = "0x" + "12" * 20
    body = await (await post(client, orjson.dumps({"logs": logs}))).json()
    assert [r["status"] for r in body["results"]] == ["ignored", "accepted"]


async def test_without_a_secret_the_endpoint_is_off(
    chain: Anvil, deployment: Deployment, tmp_path: Path
) -> None:
    settings = Settings.load(data_dir=tmp_path, chain={"rpc_urls": [chain.url]})
    async with api_client(settings, deployment) as client:
        response = await client.post("/v1/webhooks/chain", data=b"{}")
        assert response.status == 503
        assert (await response.json())["error"]["code"] == "webhook_disabled"


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("blockNumber", "12"),  # a quantity is 0x and hex digits
        ("logIndex", 1),  # text, never a JSON number
        ("address", "0x12"),
        ("topics", ["0x00"] * 5),  # at most four
        ("transactionHash", None),
    ],
)
async def test_a_log_of_the_wrong_shape_is_malformed_before_the_chain_is_asked(
    client: TestClient, chain: Anvil, deployment: Deployment, field: str, bad: Any
) -> None:
    logs = purchase_logs(chain, deployment)
    logs[1][field] = bad
    response = await post(client, orjson.dumps({"logs": logs}))
    assert response.status == 400, await response.text()
    error = (await response.json())["error"]
    assert (error["code"], error["message"].split(":")[0]) == ("malformed", f"logs.1.{field}")
    assert await stored_events(client) == 0


async def test_more_logs_than_allowed_are_refused_whatever_their_shape(client: TestClient) -> None:
    for log in ({}, {"address": "0x1"}):
        body = orjson.dumps({"logs": [log] * (MAX_LOGS + 1)})
        response = await post(client, body)
        assert response.status == 413
        assert (await response.json())["error"]["code"] == "too_many_logs"
    refused = await (await client.get("/v1/status")).json()
    assert refused["indexer"]["webhook"]["requests_refused"] == 2


async def test_a_logs_other_fields_reach_the_chain_check(
    client: TestClient, chain: Anvil, deployment: Deployment
) -> None:
    """eth_getLogs gives more fields than the model names (removed, transactionIndex...):
    they pass, and a log is checked as sent."""
    logs = purchase_logs(chain, deployment)
    assert {"removed", "transactionIndex"} <= set(logs[0])
    response = await post(client, orjson.dumps({"logs": logs}))
    assert response.status == 200, await response.text()
    results = (await response.json())["results"]
    assert [r["status"] for r in results] == ["accepted", "accepted"]
    assert all("reason" not in r for r in results)  # written only when there is one
