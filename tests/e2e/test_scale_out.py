"""Issue #8, end to end scaled out: the whole loop on one PostgreSQL database served by six
``inftd run`` OS processes, one per role as in production (an indexer, two workers, a
relayer with the minter key, two API processes on ports of their own).

A package bought on Anvil becomes an agent that both API processes serve and announce on
their firehoses; the owner signs in on API 1 and asks there for an image, whose progress
reaches the owner's sockets on both APIs; either API serves the PNG; the relayer mints one
GenerationNFT to the owner. The package token then changes hands on chain: once indexed,
the old owner may no longer spend, and the new owner, signed in on API 2, gets the next
generation minted to them. The credits add up across both, and ``inftd status`` sees the six
processes with one indexer leader and one relayer leader.

Which worker ran a job is not asserted: both claim from the same queue, whoever is first.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.agents.ledger import ledger_balances
from inftd.daemon.cli.devnet import BUYER, FRIEND, MINTER, Anvil, DevAccount
from inftd.daemon.config import DEFAULT_PACKAGES
from inftd.daemon.generation.mints import request_key
from inftd.indexer.deployment import Deployment
from tests.support.api import bearer, sign
from tests.support.contracts import Contracts
from tests.support.mints import minted_logs
from tests.support.processes import (
    BOUND,
    FAST,
    InftdProcess,
    clean_env,
    env_of,
    running_together,
    until,
)
from tests.support.state import migrated
from tests.support.ws import Message, Socket, events_until, receive

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(180)]

OPERATOR_KEY = "operator-key-for-the-scale-out-test"
AUTH_SECRET = "auth-secret-shared-by-both-api-processes"  # a token of API 1 works on API 2
OPERATOR = {"Authorization": f"Bearer {OPERATOR_KEY}"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SETTINGS = FAST | env_of(
    generation__poll_interval=0.2,
    api__rate_per_ip=1000,  # the test's polling is one client on one IP
    api__rate_per_address=1000,
    routing__cache="false",
)


@dataclass
class Cluster:
    engine: AsyncEngine  # the database they share, for the test's own reads
    indexer: InftdProcess
    workers: tuple[InftdProcess, InftdProcess]
    relayer: InftdProcess
    apis: tuple[InftdProcess, InftdProcess]

    @property
    def processes(self) -> list[InftdProcess]:
        return [self.indexer, *self.workers, self.relayer, *self.apis]


@pytest.fixture
async def cluster(
    postgres_url: str, chain: Anvil, deployment: Deployment, tmp_path: Path
) -> AsyncIterator[Cluster]:
    """Six processes of their own data folders over a migrated database; the content folder
    is shared, as a volume would be, since workers store the content API processes serve."""
    shared = {
        "INFTD_DATABASE_URL": postgres_url,
        "INFTD_CHAIN__RPC_URLS": chain.url,
        "INFTD_OPERATOR_API_KEY": OPERATOR_KEY,
        "INFTD_AUTH_SECRET": AUTH_SECRET,
        "INFTD_GENERATION__CONTENT_DIR": str(tmp_path / "content"),
        **SETTINGS,
    }

    def process(name: str, role: str, **env: str) -> InftdProcess:
        folder = tmp_path / name
        folder.mkdir()
        deployment.write(folder / "deployment.json")
        return InftdProcess(folder, {**shared, **env}, role)

    async with migrated(postgres_url) as engine:
        yield Cluster(
            engine=engine,
            indexer=process("indexer", "indexer"),
            workers=(process("worker1", "worker"), process("worker2", "worker")),
            relayer=process("relayer", "relayer", INFTD_MINTER_KEY=MINTER.key),
            apis=(process("api1", "api"), process("api2", "api")),
        )


# -- HTTP and WebSockets ------------------------------------------------------------------


async def get_json(http: aiohttp.ClientSession, url: str, **kw: Any) -> tuple[int, Any]:
    async with http.get(url, **kw) as response:
        return response.status, await response.json()


async def agent_on(http: aiohttp.ClientSession, api: InftdProcess, token: int) -> Message:
    status, agent = await get_json(http, f"{api.url}/v1/agents/{token}")
    assert status == 200, agent
    return dict(agent)


async def sign_in(
    http: aiohttp.ClientSession, api: InftdProcess, account: DevAccount
) -> dict[str, str]:
    """A nonce, the account's personal_sign of the SIWE message, the login: its header."""
    params = {"address": account.address}
    status, nonce = await get_json(http, f"{api.url}/v1/auth/nonce", params=params)
    assert status == 200, nonce
    login = {"message": nonce["message"], "signature": sign(nonce["message"], account.key)}
    async with http.post(f"{api.url}/v1/auth/login", json=login) as response:
        body = await response.json()
        assert response.status == 200, body
    assert body["address"].lower() == account.address.lower()
    return bearer(body["token"])


async def ask_image(
    http: aiohttp.ClientSession, api: InftdProcess, owner: dict[str, str], token: int
) -> tuple[int, Message]:
    request = {"kind": "image", "prompt": "a lighthouse at dusk", "options": {"size": "256x256"}}
    url = f"{api.url}/v1/agents/{token}/generations"
    async with http.post(url, json=request, headers=owner) as response:
        return response.status, await response.json()


async def owner_socket(
    http: aiohttp.ClientSession, api: InftdProcess, owner: dict[str, str], token: int
) -> Socket:
    """The agent's socket as its owner (private events too), past its snapshot."""
    ws = await http.ws_connect(f"{api.url}/v1/agents/{token}/ws", headers=owner)
    snapshot = await receive(ws)
    assert (snapshot["type"], snapshot["agent"]["packageTokenId"]) == ("snapshot", token)
    return ws


async def firehose(http: aiohttp.ClientSession, api: InftdProcess) -> Socket:
    """The operator's socket of every event, from the first (no race with its subscribe)."""
    return await http.ws_connect(f"{api.url}/v1/ws?since=0", headers=OPERATOR)


def created(token: int) -> Callable[[list[Message]], bool]:
    return lambda events: any(
        e["event"] == "agent.created" and e["tokenId"] == token for e in events
    )


def succeeded(generation_id: str) -> Callable[[list[Message]], bool]:
    return lambda events: any(
        e["event"] == "generation.succeeded" and e["data"]["id"] == generation_id for e in events
    )


def lifecycle(events: list[Message], generation_id: str) -> list[str]:
    """The kinds of the generation's events, in order."""
    return [
        e["event"]
        for e in events
        if e["event"].startswith("generation.") and e["data"].get("id") == generation_id
    ]


# -- one generation -----------------------------------------------------------------------


async def generated(
    http: aiohttp.ClientSession,
    cluster: Cluster,
    owner: dict[str, str],
    token: int,
    ask_on: InftdProcess,
) -> Message:
    """Ask on ``ask_on``, follow it on the owner's sockets of BOTH APIs to its success, and
    wait for its mint: the generation as the other API then reports it."""
    sockets = [await owner_socket(http, api, owner, token) for api in cluster.apis]
    try:
        status, body = await ask_image(http, ask_on, owner, token)
        assert status == 202, body
        gid = str(body["id"])
        followed = await asyncio.gather(*(events_until(ws, succeeded(gid)) for ws in sockets))
    finally:
        for ws in sockets:
            await ws.close()
    for events in followed:  # each API's socket saw the worker's progress, privately
        kinds = lifecycle(events, gid)
        assert "generation.progress" in kinds, kinds
        assert kinds.index("generation.started") < kinds.index("generation.succeeded"), kinds
    other = cluster.apis[1] if ask_on is cluster.apis[0] else cluster.apis[0]
    return await mint_confirmed(http, other, owner, gid)


async def mint_confirmed(
    http: aiohttp.ClientSession, api: InftdProcess, owner: dict[str, str], gid: str
) -> Message:
    found: dict[str, Any] = {}

    async def confirmed() -> bool:
        status, body = await get_json(http, f"{api.url}/v1/generations/{gid}", headers=owner)
        assert status == 200, body
        found.update(body)
        return (body.get("mint") or {}).get("status") == "confirmed"

    await until(confirmed, f"the mint of generation {gid} confirmed")
    assert found["status"] == "succeeded", found
    return found


async def content_served(http: aiohttp.ClientSession, api: InftdProcess, digest: str) -> None:
    """``/v1/content/{sha256}``: a real PNG whose sha256 is its name."""
    async with http.get(f"{api.url}/v1/content/{digest}") as response:
        assert response.status == 200, await response.text()
        assert response.content_type == "image/png"
        body = await response.read()
    assert body.startswith(PNG_MAGIC)
    assert hashlib.sha256(body).hexdigest() == digest


def minted_once_to(contracts: Contracts, token: int, generation: Message, owner: str) -> None:
    """Exactly one GenerationNFT for the generation, the owner's, with its URI and hash."""
    (log,) = minted_logs(contracts, generation["id"])
    nft = int(log["topics"][1], 16)
    assert generation["mint"]["tokenId"] == nft
    fn = contracts.generation.functions
    assert fn.ownerOf(nft).call() == owner
    assert fn.tokenURI(nft).call() == generation["contentUri"]
    package, key, content = fn.generationOf(nft).call()
    assert (package, "0x" + key.hex()) == (token, request_key(generation["id"]))
    assert "0x" + content.hex() == generation["contentHash"]


def nfts_held(contracts: Contracts) -> tuple[int, int]:
    """GenerationNFTs held by the first owner and by the second."""
    balance = contracts.generation.functions.balanceOf
    return int(balance(BUYER.address).call()), int(balance(FRIEND.address).call())


def credits_add_up(agent: Message, spent: int) -> None:
    assert spent > 0  # images cost credits: the sums below are not about zeros
    total, used, reserved = agent["totalCredits"], agent["usedCredits"], agent["reservedCredits"]
    assert (total, used, reserved) == (DEFAULT_PACKAGES[0].credits, spent, 0)
    assert agent["availableCredits"] == total - used - reserved


async def ledger_agrees(engine: AsyncEngine, token: int, spent: int) -> None:
    """The ledger itself, not only the agent's cached balances: the two commits, no more."""
    async with engine.connect() as conn:
        balances = await ledger_balances(conn, token)
    total = DEFAULT_PACKAGES[0].credits
    assert (balances.total, balances.used, balances.reserved) == (total, spent, 0)


# -- the cluster as a whole ---------------------------------------------------------------


async def inftd_status(cluster: Cluster) -> tuple[int, dict[str, Any]]:
    """``inftd status --json``, run as an operator would, with the shared settings."""
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "inftd.daemon.cli.main", "status", "--json"),
        env={**clean_env(), **cluster.indexer.env, "INFTD_DATA_DIR": str(cluster.indexer.data_dir)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), BOUND)
    assert process.returncode is not None
    return process.returncode, orjson.loads(out) if out.strip() else {"stderr": err.decode()}


def pid_of(process_id: str | None) -> int:
    assert process_id is not None
    return int(process_id.split(":")[1])  # host:pid:...


def status_healthy(cluster: Cluster, code: int, report: dict[str, Any]) -> None:
    assert code == 0, report
    assert (report["ok"], report["problems"]) == (True, [])
    assert report["chain"]["ok"]
    assert {p["pid"] for p in report["processes"] if p["alive"]} == {
        p.pid for p in cluster.processes
    }
    roles = report["roles"]
    assert pid_of(roles["indexer"]["leader"]) == cluster.indexer.pid
    assert {pid_of(p) for p in roles["worker"]["alive"]} == {w.pid for w in cluster.workers}
    assert {pid_of(p) for p in roles["api"]["alive"]} == {a.pid for a in cluster.apis}
    (signer,) = roles["relayer"]["signers"].values()
    assert pid_of(signer["leader"]) == cluster.relayer.pid
    assert signer["standbys"] == []


def owner_is(
    http: aiohttp.ClientSession, api: InftdProcess, token: int, owner: str
) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await agent_on(http, api, token))["owner"].lower() == owner.lower()

    return check


# -- the test -----------------------------------------------------------------------------


async def bought(http: aiohttp.ClientSession, cluster: Cluster, contracts: Contracts) -> int:
    """A purchase on chain: both APIs announce the agent and serve it."""
    firehoses = [await firehose(http, api) for api in cluster.apis]
    token = contracts.buy(0, BUYER.address)
    await asyncio.gather(*(events_until(ws, created(token)) for ws in firehoses))
    for ws in firehoses:
        await ws.close()
    for api in cluster.apis:
        agent = await agent_on(http, api, token)
        assert (agent["owner"], agent["availableCredits"]) == (BUYER.address, 100)
    return token


async def sold(
    http: aiohttp.ClientSession,
    cluster: Cluster,
    contracts: Contracts,
    token: int,
    seller: dict[str, str],
) -> Socket:
    """The package token changes hands on chain; once indexed, the seller may not spend.
    The seller's socket, open across the sale, is returned to be read later."""
    spent = (await agent_on(http, cluster.apis[0], token))["usedCredits"]
    sellers = await owner_socket(http, cluster.apis[0], seller, token)
    contracts.transfer(token, FRIEND.address)
    for api in cluster.apis:
        await until(owner_is(http, api, token, FRIEND.address), "the transfer indexed")
    status, refused = await ask_image(http, cluster.apis[0], seller, token)
    assert (status, refused["error"]["code"]) == (403, "not_owner")
    credits_add_up(await agent_on(http, cluster.apis[0], token), spent)  # nothing moved
    return sellers


async def test_the_loop_across_role_processes_on_postgres_with_a_transfer(
    chain: Anvil, deployment: Deployment, cluster: Cluster
) -> None:
    contracts = Contracts(chain.url, deployment)
    api1, api2 = cluster.apis
    held = nfts_held(contracts)
    async with running_together(*cluster.processes), aiohttp.ClientSession() as http:
        assert api1.url != api2.url
        assert not any(p.url for p in (cluster.indexer, *cluster.workers, cluster.relayer))
        token = await bought(http, cluster, contracts)

        # the owner signs in on API 1 and asks there; API 2 streams it, serves it
        buyer = await sign_in(http, api1, BUYER)
        first = await generated(http, cluster, buyer, token, ask_on=api1)
        for api in cluster.apis:
            await content_served(http, api, first["contentHash"].removeprefix("0x"))
        minted_once_to(contracts, token, first, BUYER.address)
        agent = await agent_on(http, api2, token)
        shown = agent["generatedContent"][0]
        assert (shown["id"], shown["contentHash"]) == (first["id"], first["contentHash"])
        credits_add_up(agent, first["creditsUsed"])

        # sold: the new owner signs in on API 2 and asks there
        sellers = await sold(http, cluster, contracts, token, buyer)
        friend = await sign_in(http, api2, FRIEND)
        second = await generated(http, cluster, friend, token, ask_on=api2)
        await content_served(http, api1, second["contentHash"].removeprefix("0x"))
        minted_once_to(contracts, token, second, FRIEND.address)
        minted_once_to(contracts, token, first, BUYER.address)  # the first NFT stayed put
        assert nfts_held(contracts) == (held[0] + 1, held[1] + 1)  # no other NFT minted
        seen = await events_until(sellers, succeeded(second["id"]))
        await sellers.close()
        assert "owner.changed" in [e["event"] for e in seen]
        assert "generation.progress" not in lifecycle(seen, second["id"])  # not the seller's

        spent = first["creditsUsed"] + second["creditsUsed"]
        for api in cluster.apis:
            credits_add_up(await agent_on(http, api, token), spent)
        await ledger_agrees(cluster.engine, token, spent)
        status_healthy(cluster, *await inftd_status(cluster))
