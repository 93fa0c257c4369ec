"""State sync on Anvil: the hash of an agent's snapshot written with setAgentMetadata by
the operator key, the URI serving exactly the hashed bytes; nothing sent when the chain
has the hash; a change sends a new one; the indexer projects it; the route's auth."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from eth_account import Account
from eth_typing import HexStr
from eth_utils.crypto import keccak

from inftd.daemon.cli.devnet import BUYER, DEPLOYER, FRIEND, MINTER, Anvil, rpc_call
from inftd.daemon.config import Settings
from inftd.daemon.relayer.statesync import (
    LEFT_OUT,
    Outcome,
    StateSync,
    canonical,
    operator_account,
)
from inftd.indexer.deployment import Deployment
from tests.daemon.relayer.conftest import mined
from tests.support.api import api_client, bearer, runtime_of, sign_in
from tests.support.contracts import Contracts

Client = TestClient[web.Request, web.Application]
OPERATOR_API_KEY = "op-key-statesync-0123456789"
MakeClient = Callable[..., AbstractAsyncContextManager[Client]]


@pytest.fixture
def make_client(
    chain: Anvil,
    deployment: Deployment,
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> MakeClient:
    """An app with the deployer (OPERATOR_ROLE in tests and dev) as the operator key, and
    one agent (token 1 of the buyer) indexed."""
    monkeypatch.setenv("INFTD_OPERATOR_API_KEY", OPERATOR_API_KEY)
    monkeypatch.setenv("INFTD_OPERATOR_KEY", DEPLOYER.key)

    def make(state_sync: bool) -> AbstractAsyncContextManager[Client]:
        relayer = {"state_sync": state_sync, "state_sync_interval": 86_400}
        settings = Settings.load(
            data_dir=tmp_path,
            database_url=database_url,
            chain={"rpc_urls": [chain.url]},
            relayer=relayer,
        )
        return _client(settings, deployment, chain)

    return make


@asynccontextmanager
async def _client(
    settings: Settings, deployment: Deployment, chain: Anvil
) -> AsyncIterator[Client]:
    async with api_client(settings, deployment) as client:
        Contracts(chain.url, deployment).buy(0, BUYER.address)
        await runtime_of(client).indexer.sync_once()
        yield client


@pytest.fixture
async def client(make_client: MakeClient) -> AsyncIterator[Client]:
    async with make_client(False) as client:
        yield client


@pytest.fixture
async def syncer(client: Client) -> AsyncIterator[StateSync]:
    runtime = runtime_of(client)
    account = operator_account(runtime)
    assert account is not None
    assert account.address == DEPLOYER.address
    syncer = StateSync(runtime, account)
    yield syncer
    await syncer.close()


async def sync_mined(syncer: StateSync, chain: Anvil, token_id: int) -> Any:
    """A sync, and its transaction's receipt when it sent one (Anvil answers the send
    before the block is visible to every reader)."""
    result = await syncer.sync(token_id)
    if result.tx_hash is not None:
        await mined(chain.url, result.tx_hash)
    return result


def on_chain(chain: Anvil, deployment: Deployment, token_id: int) -> tuple[str, str]:
    uri, state_hash = (
        Contracts(chain.url, deployment).package.functions.agentMetadata(token_id).call()
    )
    return str(uri), "0x" + bytes(state_hash).hex()


def sent_count(chain: Anvil) -> int:
    return int(rpc_call(chain.url, "eth_getTransactionCount", [DEPLOYER.address, "latest"]), 16)


async def fetch(client: Client, uri: str) -> bytes:
    response = await client.get(urlparse(uri).path)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("application/json")
    return await response.read()


async def test_a_sync_writes_the_hash_of_the_bytes_the_uri_serves(
    client: Client, syncer: StateSync, chain: Anvil, deployment: Deployment
) -> None:
    assert on_chain(chain, deployment, 1)[1] == "0x" + "00" * 32
    synced = await sync_mined(syncer, chain, 1)
    assert synced.outcome is Outcome.SENT
    assert synced.tx_hash is not None
    assert on_chain(chain, deployment, 1) == (synced.uri, synced.state_hash)
    data = await fetch(client, synced.uri)
    assert "0x" + keccak(data).hex() == synced.state_hash
    snapshot = orjson.loads(data)
    assert snapshot["packageTokenId"] == 1
    assert snapshot["owner"] == BUYER.address
    assert snapshot["chainId"] == deployment.chain_id
    assert not set(LEFT_OUT) & snapshot.keys()


async def test_no_change_sends_nothing_and_a_change_sends_a_new_hash(
    client: Client, syncer: StateSync, chain: Anvil, deployment: Deployment
) -> None:
    first = await sync_mined(syncer, chain, 1)
    sent = sent_count(chain)
    again = await syncer.sync(1)
    assert again.outcome is Outcome.UNCHANGED
    assert again.state_hash == first.state_hash
    assert sent_count(chain) == sent
    owner = bearer(await sign_in(client, BUYER))
    response = await client.put("/v1/agents/1/preferences", json={"style": "ink"}, headers=owner)
    assert response.status == 200, await response.text()
    changed = await sync_mined(syncer, chain, 1)
    assert changed.outcome is Outcome.SENT
    assert changed.state_hash != first.state_hash
    assert sent_count(chain) == sent + 1
    assert on_chain(chain, deployment, 1) == (changed.uri, changed.state_hash)
    assert orjson.loads(await fetch(client, changed.uri))["preferences"] == {"style": "ink"}


async def test_the_indexer_projects_the_synced_metadata(
    client: Client, syncer: StateSync, chain: Anvil, deployment: Deployment
) -> None:
    synced = await syncer.sync(1)
    assert synced.tx_hash is not None
    contracts = Contracts(chain.url, deployment)
    assert contracts.w3.eth.wait_for_transaction_receipt(HexStr(synced.tx_hash))["status"] == 1
    await runtime_of(client).indexer.sync_once()
    agent = await (await client.get("/v1/agents/1")).json()
    assert agent["agentMetadata"] == synced.uri
    assert agent["agentStateHash"] == synced.state_hash
    # The projection changes only left-out fields: the state is still the synced one.
    assert (await syncer.sync(1)).outcome is Outcome.UNCHANGED


async def test_a_round_syncs_every_agent_once(
    client: Client, syncer: StateSync, chain: Anvil
) -> None:
    first = await syncer.round(None)
    assert [(s.token_id, s.outcome) for s in first] == [(1, Outcome.SENT)]
    await mined(chain.url, first[0].tx_hash)
    assert [s.outcome for s in await syncer.round(None)] == [Outcome.UNCHANGED]


def test_the_snapshot_is_canonical() -> None:
    state: dict[str, Any] = {"b": {"y": 1, "x": [2, 1]}, "a": 1, "lastActivity": "now"}
    reordered: dict[str, Any] = {"lastActivity": "later", "a": 1, "b": {"x": [2, 1], "y": 1}}
    data = canonical(state, 31337, "0xABC")
    assert data == canonical(reordered, 31337, "0xabc")
    assert data == b'{"a":1,"b":{"x":[2,1],"y":1},"chainId":31337,"contract":"0xabc",' + (
        b'"schema":"inftd.agent-state/1"}'
    )


async def test_the_route_needs_the_owner_or_the_operator(
    make_client: MakeClient, chain: Anvil, deployment: Deployment
) -> None:
    async with make_client(True) as client:
        path = "/v1/agents/1/state-sync"
        assert (await client.post(path)).status == 401
        friend = bearer(await sign_in(client, FRIEND))
        refused = await client.post(path, headers=friend)
        assert refused.status == 403, await refused.text()
        assert on_chain(chain, deployment, 1)[1] == "0x" + "00" * 32  # changed nothing
        owner = bearer(await sign_in(client, BUYER))
        response = await client.post(path, headers=owner)
        assert response.status == 202, await response.text()
        body = await response.json()
        assert body["outcome"] == "sent"
        await mined(chain.url, body["txHash"])
        assert on_chain(chain, deployment, 1) == (body["uri"], body["stateHash"])
        again = await client.post(path, headers=bearer(OPERATOR_API_KEY))
        assert again.status == 202
        assert (await again.json())["outcome"] == "unchanged"
        unknown = await client.post("/v1/agents/99/state-sync", headers=bearer(OPERATOR_API_KEY))
        assert unknown.status == 404


async def test_the_route_is_off_unless_configured(client: Client) -> None:
    response = await client.post("/v1/agents/1/state-sync", headers=bearer(OPERATOR_API_KEY))
    assert response.status == 409
    assert (await response.json())["error"]["code"] == "state_sync_off"


async def test_the_minter_key_is_refused_as_operator_key(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = runtime_of(client)
    settings = runtime.settings.model_copy(update={"minter_key": runtime.settings.operator_key})
    monkeypatch.setattr(runtime, "settings", settings)
    with pytest.raises(Exception, match="must differ from INFTD_MINTER_KEY"):
        operator_account(runtime)
    assert Account.from_key(MINTER.key).address != DEPLOYER.address
