"""The whole loop, end to end, against a real ``inftd run`` process on SQLite and Anvil.

A package bought on chain becomes an agent (read over HTTP and seen on the WebSocket);
its owner signs in with a real signature, asks for an image (by the API or on chain with
``requestGeneration``), follows the progress over the WebSocket, fetches the PNG, and finds
the generation NFT minted to them on chain with the content's URI and hash; the credits
moved; feedback teaches the agent, and the next prompt says so. The third test delivers
the purchase by the signed chain webhook to a daemon whose indexer does not poll.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from sqlalchemy import select

from bench.chaos.daemons import DaemonProcess
from inftd.daemon.cli.devnet import BUYER, MINTER, Anvil, DevAccount, rpc_call
from inftd.daemon.generation.mints import request_key
from inftd.indexer.deployment import Deployment
from inftd.indexer.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature
from inftd.store import migrate
from inftd.store.db import create_async, sqlite_url
from inftd.store.models import ChainEvent
from tests.support.api import bearer, sign
from tests.support.contracts import Contracts, deploy_dev

pytestmark = pytest.mark.timeout(120)

BOUND = 60.0  # seconds: only a failure bound, never a speed requirement
OPERATOR_KEY = "operator-key-for-e2e"
WEBHOOK_SECRET = "whsec-e2e-7c1d"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FAST = {
    "INFTD_CHAIN__POLL_INTERVAL": "0.2",
    "INFTD_GENERATION__POLL_INTERVAL": "0.2",
    "INFTD_GENERATION__PROBE_INTERVAL": "0",
    "INFTD_RELAYER__POLL_INTERVAL": "0.2",
    "INFTD_API__RATE_PER_IP": "1000",
    "INFTD_API__RATE_PER_ADDRESS": "1000",
    "INFTD_ROUTING__CACHE": "false",
}
NO_POLL = "600"  # seconds (the most allowed): an indexer only its start or a webhook wakes

Socket = aiohttp.ClientWebSocketResponse
Event = dict[str, Any]


@pytest.fixture(scope="module")
def e2e_chain() -> Iterator[tuple[Anvil, Deployment]]:
    """A chain of this module's own: the shared session chain is reverted between tests,
    which a daemon living across tests would see as a reorg."""
    with Anvil() as chain:
        deployment = deploy_dev(chain.url)
        yield chain, deployment


def start_daemon(chain: Anvil, deployment: Deployment, data_dir: Path, **env: str) -> DaemonProcess:
    data_dir.mkdir(parents=True, exist_ok=True)
    deployment.write(data_dir / "deployment.json")
    database = sqlite_url(data_dir / "inftd.db")
    migrate.upgrade(database)
    daemon = DaemonProcess(
        data_dir.name,
        data_dir,
        {
            **FAST,
            "INFTD_DATABASE_URL": database,
            "INFTD_CHAIN__RPC_URLS": chain.url,
            "INFTD_MINTER_KEY": MINTER.key,
            "INFTD_OPERATOR_API_KEY": OPERATOR_KEY,
            "INFTD_WEBHOOK_SECRET": WEBHOOK_SECRET,
            **env,
        },
    )
    daemon.start()
    return daemon


@pytest.fixture(scope="module")
def daemon(
    e2e_chain: tuple[Anvil, Deployment], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DaemonProcess]:
    """One daemon for the polling tests: they share it, as users share a deployment."""
    chain, deployment = e2e_chain
    process = start_daemon(chain, deployment, tmp_path_factory.mktemp("e2e") / "polling")
    yield process
    assert process.stop() == 0, process.tail()


@pytest.fixture
def contracts(e2e_chain: tuple[Anvil, Deployment]) -> Contracts:
    chain, deployment = e2e_chain
    return Contracts(chain.url, deployment)


# -- the loop -----------------------------------------------------------------------------


async def receive(ws: Socket) -> Event:
    try:
        message = await asyncio.wait_for(ws.receive_json(), BOUND)  # a failure bound only
    except TimeoutError:
        raise AssertionError(f"no WebSocket message within {BOUND} s") from None
    assert isinstance(message, dict), message
    return message


async def events_until(ws: Socket, done: Callable[[Event], bool]) -> list[Event]:
    """The events on ``ws`` up to and including the first that ``done`` accepts."""
    seen: list[Event] = []
    while True:
        message = await receive(ws)
        if message["type"] == "event":
            seen.append(message)
            if done(message):
                return seen


async def until(check: Callable[[], Awaitable[Any]], what: str) -> Any:
    """Poll ``check`` until it returns something truthy (the database has nothing to await)."""
    deadline = time.monotonic() + BOUND
    while not (found := await check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {BOUND} s: {what}")
        await asyncio.sleep(0.1)
    return found


async def get_json(http: aiohttp.ClientSession, path: str, **kw: Any) -> tuple[int, Any]:
    async with http.get(path, **kw) as response:
        return response.status, await response.json()


async def agent_of(http: aiohttp.ClientSession, token: int) -> Event:
    status, agent = await get_json(http, f"/v1/agents/{token}")
    assert status == 200, agent
    return dict(agent)


async def sign_in(http: aiohttp.ClientSession, account: DevAccount) -> dict[str, str]:
    """Through the real routes: a nonce, the account's personal_sign, the login."""
    status, nonce = await get_json(http, "/v1/auth/nonce", params={"address": account.address})
    assert status == 200, nonce
    login = {"message": nonce["message"], "signature": sign(nonce["message"], account.key)}
    async with http.post("/v1/auth/login", json=login) as response:
        body = await response.json()
        assert response.status == 200, body
    assert body["address"].lower() == account.address.lower()
    return bearer(body["token"])


async def agent_appears(http: aiohttp.ClientSession, firehose: Socket, token: int) -> Event:
    """The agent.created event of ``token`` on the firehose, and the agent over HTTP."""
    created = await events_until(
        firehose, lambda e: e["event"] == "agent.created" and e["tokenId"] == token
    )
    assert created[-1]["tokenId"] == token
    agent = await agent_of(http, token)
    assert (agent["owner"].lower(), agent["totalCredits"]) == (BUYER.address.lower(), 100)
    assert agent["availableCredits"] == 100
    return agent


async def followed(ws: Socket, generation_id: str) -> list[Event]:
    """The owner's agent socket from now until the generation succeeded."""
    events = await events_until(
        ws, lambda e: e["event"] == "generation.succeeded" and e["data"]["id"] == generation_id
    )
    mine = [
        e for e in events if e["data"].get("id", e["data"].get("generationId")) == generation_id
    ]
    kinds = [e["event"] for e in mine]
    assert "generation.progress" in kinds, kinds
    assert kinds.index("generation.started") < kinds.index("generation.succeeded"), kinds
    return events


async def content_checked(http: aiohttp.ClientSession, generation: Event) -> bytes:
    """The content at /v1/content/{sha256}: a real PNG whose sha256 is its name."""
    digest = generation["contentHash"].removeprefix("0x")
    async with http.get(f"/v1/content/{digest}") as response:
        assert response.status == 200
        assert response.content_type == "image/png"
        body = await response.read()
    assert body.startswith(PNG_MAGIC)
    assert b"IEND" in body[-12:]
    assert hashlib.sha256(body).hexdigest() == digest
    return body


def minted_on_chain(contracts: Contracts, token: int, generation: Event) -> int:
    """The GenerationNFT of the generation: the owner's, with its URI and content hash."""
    key = bytes.fromhex(request_key(generation["id"])[2:])
    nft = int(contracts.generation.functions.tokenIdOf(key).call())
    assert nft != 0
    assert contracts.generation.functions.ownerOf(nft).call() == BUYER.address
    assert contracts.generation.functions.tokenURI(nft).call() == generation["contentUri"]
    package, on_chain_key, content = contracts.generation.functions.generationOf(nft).call()
    assert (package, on_chain_key) == (token, key)
    assert "0x" + content.hex() == generation["contentHash"]
    return nft


async def minted(http: aiohttp.ClientSession, owner: dict[str, str], generation_id: str) -> Event:
    async def confirmed() -> Event | None:
        status, body = await get_json(http, f"/v1/generations/{generation_id}", headers=owner)
        assert status == 200, body
        mint = body.get("mint") or {}
        return dict(body) if mint.get("status") == "confirmed" else None

    return dict(await until(confirmed, f"the mint of {generation_id} confirmed"))


async def feedback(http: aiohttp.ClientSession, owner: dict[str, str], generation_id: str) -> None:
    body = {"rating": 5, "tags": ["style:noir", "grainy"], "note": "more rain on the glass"}
    async with http.post(
        f"/v1/generations/{generation_id}/feedback", json=body, headers=owner
    ) as response:
        assert response.status in (200, 201), await response.text()


Ask = Callable[[aiohttp.ClientSession, dict[str, str], int, str], Awaitable[str]]


async def ask_by_api(
    http: aiohttp.ClientSession, owner: dict[str, str], token: int, prompt: str
) -> str:
    request = {"kind": "image", "prompt": prompt, "options": {"size": "256x256"}}
    async with http.post(
        f"/v1/agents/{token}/generations", json=request, headers=owner
    ) as response:
        body = await response.json()
        assert response.status == 202, body
    return str(body["id"])


def ask_on_chain(contracts: Contracts) -> Ask:
    async def ask(
        http: aiohttp.ClientSession, owner: dict[str, str], token: int, prompt: str
    ) -> str:
        before = await _generation_ids(http, owner, token)
        request_id = contracts.request(token, prompt, kind=1)  # 1: image
        assert request_id > 0

        async def queued() -> str | None:
            new = await _generation_ids(http, owner, token) - before
            return new.pop() if new else None

        return str(await until(queued, "the GenerationRequested queued"))

    return ask


async def _generation_ids(
    http: aiohttp.ClientSession, owner: dict[str, str], token: int
) -> set[str]:
    status, page = await get_json(http, f"/v1/agents/{token}/generations", headers=owner)
    assert status == 200, page
    return {g["id"] for g in page["generations"]}


async def one_generation(
    http: aiohttp.ClientSession,
    contracts: Contracts,
    owner: dict[str, str],
    token: int,
    ask: Ask,
    prompt: str,
) -> Event:
    """Ask, follow it on the socket, check content, mint and credits; the generation."""
    async with http.ws_connect(
        f"/v1/agents/{token}/ws", params={"access_token": owner["Authorization"][7:]}
    ) as ws:
        assert (await receive(ws))["type"] == "snapshot"
        generation_id = await ask(http, owner, token, prompt)
        await followed(ws, generation_id)
    generation = await minted(http, owner, generation_id)
    assert generation["status"] == "succeeded"
    await content_checked(http, generation)
    minted_on_chain(contracts, token, generation)
    return generation


def credits_add_up(agent: Event, spent: int) -> None:
    total, used = agent["totalCredits"], agent["usedCredits"]
    assert spent > 0  # an image costs credits: the check below is not about zeros
    assert (total, used, agent["reservedCredits"]) == (100, spent, 0)
    assert agent["availableCredits"] == total - used - agent["reservedCredits"]


async def whole_loop(
    http: aiohttp.ClientSession, contracts: Contracts, token: int, ask: Ask
) -> None:
    """From a fresh agent: two rated generations teach it a style the third one uses."""
    owner = await sign_in(http, BUYER)
    first = await one_generation(http, contracts, owner, token, ask, "a lighthouse at dusk")
    assert first["detail"]["prompt"]["styles"] == []
    agent = await agent_of(http, token)
    shown = agent["generatedContent"][0]
    assert (shown["id"], shown["contentHash"]) == (first["id"], first["contentHash"])
    credits_add_up(agent, first["creditsUsed"])
    await feedback(http, owner, first["id"])
    second = await one_generation(http, contracts, owner, token, ask, "a harbour at night")
    assert second["detail"]["prompt"]["hints"]["providers"] == ["local"]  # one rating in
    await feedback(http, owner, second["id"])
    third = await one_generation(http, contracts, owner, token, ask, "a train in the hills")
    learned = third["detail"]["prompt"]["styles"]
    assert [(s["value"], s["source"]) for s in learned] == [("noir", "learned")]
    agent = await agent_of(http, token)
    spent = sum(g["creditsUsed"] for g in (first, second, third))
    credits_add_up(agent, spent)
    assert len(agent["learningData"]) == 2


# -- the three ways in --------------------------------------------------------------------


FIREHOSE = {"Authorization": f"Bearer {OPERATOR_KEY}"}


async def bought_and_used(daemon: DaemonProcess, contracts: Contracts, ask: Ask) -> None:
    """A purchase polled by the indexer, then the whole loop with ``ask``."""
    async with aiohttp.ClientSession(daemon.url) as http:
        async with http.ws_connect("/v1/ws", headers=FIREHOSE) as firehose:
            token = contracts.buy(0, BUYER.address)
            await agent_appears(http, firehose, token)
        await whole_loop(http, contracts, token, ask)


async def test_bought_agent_generates_by_api_mints_and_learns(
    daemon: DaemonProcess, contracts: Contracts
) -> None:
    await bought_and_used(daemon, contracts, ask_by_api)


async def test_generation_requested_on_chain_runs_mints_and_learns(
    daemon: DaemonProcess, contracts: Contracts
) -> None:
    await bought_and_used(daemon, contracts, ask_on_chain(contracts))


def purchase_logs(chain: Anvil, deployment: Deployment, block: int) -> list[dict[str, Any]]:
    """The block's logs exactly as eth_getLogs gives them, as a notifier would push them."""
    query = {"fromBlock": hex(block), "toBlock": hex(block), "address": deployment.package_address}
    logs: list[dict[str, Any]] = rpc_call(chain.url, "eth_getLogs", [query])
    return logs


async def push_logs(http: aiohttp.ClientSession, logs: list[dict[str, Any]]) -> Event:
    body = orjson.dumps({"logs": logs})
    stamp = str(int(time.time()))
    headers = {
        TIMESTAMP_HEADER: stamp,
        SIGNATURE_HEADER: signature(WEBHOOK_SECRET.encode(), stamp, body),
        "Content-Type": "application/json",
    }
    async with http.post("/v1/webhooks/chain", data=io.BytesIO(body), headers=headers) as answer:
        result = await answer.json()
        assert answer.status == 200, result
    return dict(result)


async def event_sources(database: str, token: int) -> set[tuple[str, str]]:
    engine = create_async(database)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(ChainEvent.name, ChainEvent.source).where(ChainEvent.token_id == token)
            )
            return {(r.name, r.source) for r in rows}
    finally:
        await engine.dispose()


async def test_purchase_pushed_by_webhook_reaches_an_idle_indexer_and_the_loop_runs(
    e2e_chain: tuple[Anvil, Deployment], contracts: Contracts, tmp_path: Path
) -> None:
    """The indexer polls once an hour here: only the signed push makes the agent."""
    chain, deployment = e2e_chain
    process = start_daemon(
        chain, deployment, tmp_path / "webhook", INFTD_CHAIN__POLL_INTERVAL=NO_POLL
    )
    try:
        async with aiohttp.ClientSession(process.url) as http:
            token = contracts.buy(0, BUYER.address)
            await asyncio.sleep(1.0)  # time the indexer would need, were it polling
            assert (await get_json(http, f"/v1/agents/{token}"))[0] == 404
            async with http.ws_connect("/v1/ws", headers=FIREHOSE) as firehose:
                result = await push_logs(http, purchase_logs(chain, deployment, contracts.head()))
                assert (result["accepted"], result["rejected"]) == (2, 0), result
                await agent_appears(http, firehose, token)
            database = sqlite_url(tmp_path / "webhook" / "inftd.db")
            assert ("PackagePurchased", "webhook") in await event_sources(database, token)
            await whole_loop(http, contracts, token, ask_by_api)
    finally:
        assert process.stop() == 0, process.tail()
