"""The API answers agents from its live copies, and they stay true.

One scenario drives every kind of event there is (purchases, top-ups, a sale, credit
adjustments, preferences, generations from the API and from the chain, a cancel, mints that
fail and are asked for again, feedback, memories, messages, collaboration, learning, a
write by another process, a reorg) and after each step checks every copy the process holds
against a fresh read of the database. Then: versions as ETags (304), ``?minSeq=``, the
seq a write's answer names, and a sale that the copy has not seen yet refusing the
seller's write.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from eth_account import Account
from sqlalchemy import func, select, update

from inftd.agents.credits import adjust
from inftd.agents.errors import UnknownAgent
from inftd.agents.live import UNSHOWN, LiveAgents
from inftd.agents.views import agent_page, agent_state
from inftd.agents.writer import AgentWriter
from inftd.daemon.cli.devnet import BUYER, DEPLOYER, FRIEND, MINTER, Anvil
from inftd.daemon.events.hub import Hub
from inftd.daemon.generation.queue import generation_unminted
from inftd.daemon.generation.routing.recorder import MemoryRecorder
from inftd.daemon.generation.routing.router import Router
from inftd.daemon.generation.scheduler import GenerationService
from inftd.daemon.providers.local import LocalProvider
from inftd.daemon.relayer.relayer import Relayer
from inftd.daemon.server.api.agents import Agent as AgentModel
from inftd.daemon.server.api.agents import AgentList
from inftd.indexer.deployment import Deployment
from inftd.store.db import create_async
from inftd.store.models import Agent, EventRecord
from tests.daemon.generation.support import FAST, ROUTING
from tests.daemon.relayer.conftest import settle
from tests.support.api import OPERATOR_KEY, OpenApi, bearer, fits_model, runtime_of, sign_in
from tests.support.contracts import Contracts
from tests.support.processes import until

Client = TestClient[web.Request, web.Application]
OPERATOR = {"Authorization": f"Bearer {OPERATOR_KEY}"}
TEXT = {"kind": "text", "prompt": "a lighthouse at dawn over a quiet harbour"}
MIN_SEQ_WAIT = 0.3  # seconds a ?minSeq= read waits here at most


@pytest.fixture
async def client(open_api: OpenApi) -> AsyncIterator[Client]:
    """The API with its hub running over three agents: 1 and 3 BUYER's, 2 FRIEND's."""
    async with open_api(
        BUYER,
        FRIEND,
        BUYER,
        hub=True,
        generation=FAST,
        routing=ROUTING,
        api={"rate_per_ip": 100_000, "rate_per_address": 100_000},
        live={"min_seq_wait": MIN_SEQ_WAIT},
    ) as client:
        yield client


async def newest_seq(client: Client) -> int:
    async with runtime_of(client).engine.connect() as conn:
        return int(await conn.scalar(select(func.max(EventRecord.seq))) or 0)


async def assert_copies_true(client: Client, live: LiveAgents) -> None:
    """Once ``live``'s hub has applied every event stored: each copy held is what the
    database says now, at the version it says. A worker may still be writing (a cancelled
    job's last events): the check counts only when no event came while it compared."""
    for _ in range(50):
        newest = await newest_seq(client)

        async def applied(newest: int = newest) -> bool:
            return live.position >= newest

        await until(applied, f"the hub applies every event up to {newest}")
        wrong = await copies_that_differ(client, live)
        if await newest_seq(client) == newest:
            assert not wrong, wrong
            return
    raise AssertionError("events kept coming: the copies were never compared at rest")


async def copies_that_differ(client: Client, live: LiveAgents) -> list[str]:
    entries, pages = live.kept()
    assert entries, "the scenario reads the agents before each step"
    wrong: list[str] = []
    async with runtime_of(client).engine.connect() as conn:
        for entry in entries:
            version = await conn.scalar(
                select(func.coalesce(func.max(EventRecord.seq), 0)).where(
                    EventRecord.token_id == entry.token_id
                )
            )
            if entry.version != version:
                wrong.append(f"agent {entry.token_id}: version {entry.version}, not {version}")
            if entry.document != orjson.dumps(await agent_state(conn, entry.token_id)):
                wrong.append(f"agent {entry.token_id}: document {entry.document[:300]!r}")
            if entry.exists and not fits_model(AgentModel, entry.document):
                wrong.append(f"agent {entry.token_id}: not as documented {entry.document!r}")
            for (_, gid), (view, _size) in entry.extras.items():
                if view != await generation_unminted(conn, gid):
                    wrong.append(f"generation {gid} of agent {entry.token_id}: {view}")
        for page in pages:
            summaries, more = await agent_page(conn, page.after, page.limit)
            following = summaries[-1]["packageTokenId"] if more else None
            if orjson.loads(page.body) != {"agents": summaries, "next": following}:
                wrong.append(f"page after {page.after}, limit {page.limit}: {page.body[:300]!r}")
            if not fits_model(AgentList, page.body):
                wrong.append(f"page after {page.after}: not as documented {page.body!r}")
    return wrong


async def read_everything(client: Client, observer: LiveAgents, generations: list[str]) -> None:
    """What the copies hold: every agent, the list, the balances, the generations; read
    through the API and through the observer's copies."""
    for token in (1, 2, 3, 4):
        await client.get(f"/v1/agents/{token}")
        await client.get("/api/credits", params={"tokenId": str(token)})
        with contextlib.suppress(UnknownAgent):
            await observer.agent(token)
    await client.get("/v1/agents")
    await client.get("/v1/agents", params={"after": "1", "limit": "1"})
    await observer.page(-1, 50)
    await observer.page(1, 1)
    for gid in generations:
        await client.get(f"/v1/generations/{gid}", headers=OPERATOR)
        with contextlib.suppress(UnknownAgent):
            token = await observer.generation_token(gid)
            load = functools.partial(generation_unminted, generation_id=gid)
            await observer.extra(token, ("generation", gid), load)


@pytest.fixture
async def observer(client: Client) -> AsyncIterator[LiveAgents]:
    """Copies kept by another process: its own engine and hub, so every event reaches them
    through the hub's tail of the log (the API's own writes drop the API's copies at once,
    and would never test what an event from elsewhere does to a copy)."""
    engine = create_async(runtime_of(client).settings.database)
    live = LiveAgents(engine, 1 << 24)
    stop = asyncio.Event()
    hub = Hub(engine, live, poll_interval=0.02)
    task = asyncio.create_task(hub.run(stop))
    await hub.started()
    try:
        yield live
    finally:
        stop.set()
        await task
        await engine.dispose()


async def call(
    client: Client, method: str, path: str, status: int, json: Any = None
) -> dict[str, Any]:
    response = await client.request(method, path, json=json, headers=OPERATOR)
    body = await response.json() if response.status != 204 else {}
    assert response.status == status, body
    return dict(body)


async def finished(client: Client, gid: str) -> dict[str, Any]:
    view: dict[str, Any] = {}

    async def done() -> bool:
        nonlocal view
        view = await call(client, "GET", f"/v1/generations/{gid}", 200)
        return view["status"] in ("succeeded", "failed", "cancelled")

    await until(done, f"generation {gid} ends")
    return view


@pytest.fixture
async def worker(client: Client) -> AsyncIterator[GenerationService]:
    runtime = runtime_of(client)
    local = LocalProvider(delay=0.02)  # slow enough to cancel a running job
    router = Router({"local": local}, runtime.settings.routing, MemoryRecorder())
    service = GenerationService(runtime, router, owner="live-test-worker")
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


async def test_every_kind_of_event_keeps_the_copies_true(
    chain: Anvil,
    deployment: Deployment,
    client: Client,
    worker: GenerationService,
    observer: LiveAgents,
) -> None:
    runtime = runtime_of(client)
    contracts = Contracts(chain.url, deployment)
    generations: list[str] = []

    async def step(action: Any) -> Any:
        await read_everything(client, observer, generations)
        result = await action
        await assert_copies_true(client, runtime.live)
        await assert_copies_true(client, observer)
        return result

    async def chain_then_index(action: Any) -> None:
        action()
        await runtime.indexer.sync_once()

    await step(chain_then_index(lambda: contracts.buy(1, FRIEND.address)))  # agent 4
    await step(chain_then_index(lambda: contracts.top_up(1, 5)))
    await step(chain_then_index(lambda: contracts.transfer(3, FRIEND.address)))
    body = {"amount": 7, "note": "a gift", "idempotencyKey": "g1"}
    await step(call(client, "POST", "/v1/agents/2/credits/adjust", 200, body))
    await step(call(client, "PUT", "/v1/agents/1/preferences", 200, {"style": "noir"}))
    await step(call(client, "PATCH", "/v1/agents/1/preferences", 200, {"mood": "calm"}))

    made = await call(client, "POST", "/v1/agents/1/generations", 202, TEXT)
    generations.append(made["id"])
    assert (await step(finished(client, made["id"])))["status"] == "succeeded"

    # Mints: the minter role revoked fails the first; asked for again, it is minted.
    role = contracts.generation.functions.MINTER_ROLE().call()
    fn = contracts.generation.functions
    contracts._send(fn.revokeRole(role, MINTER.address), DEPLOYER.address)
    relayer = Relayer.for_runtime(runtime, Account.from_key(MINTER.key))
    try:
        await step(settle(relayer))
        contracts._send(fn.grantRole(role, MINTER.address), DEPLOYER.address)
        await step(call(client, "POST", f"/v1/generations/{made['id']}/mint", 202))
        await step(settle(relayer))
    finally:
        await relayer.close()
    await step(runtime.indexer.sync_once())  # GenerationMinted

    feedback = {"rating": 5, "tags": ["calm"], "note": "lovely"}
    await step(call(client, "POST", f"/v1/generations/{made['id']}/feedback", 201, feedback))
    await step(call(client, "POST", "/v1/agents/1/memories", 201, {"text": "likes harbours"}))
    await step(call(client, "POST", "/v1/agents/1/messages", 201, {"to": 2, "text": "hello"}))
    await step(call(client, "POST", "/v1/agents/1/collaborators", 201, {"tokenId": 2}))
    await step(call(client, "DELETE", "/v1/agents/1/collaborators/2", 204))
    await step(call(client, "PUT", "/v1/agents/1/sharing", 200, {"shareLearning": True}))
    await step(call(client, "POST", "/v1/agents/1/learning/reset", 200))

    # A running job cancelled: its worker stops it.
    long = {"kind": "text", "prompt": "a very long saga " * 20, "options": {"quality": "high"}}
    running = await call(client, "POST", "/v1/agents/2/generations", 202, long)
    generations.append(running["id"])

    async def started() -> bool:
        view = await call(client, "GET", f"/v1/generations/{running['id']}", 200)
        return bool(view["status"] == "running")

    await until(started, "the long job runs")
    cancel = client.post(f"/v1/generations/{running['id']}/cancel", headers=OPERATOR)
    await step(_status_of(cancel))
    await step(finished(client, running["id"]))

    # An on-chain request: the worker reserves its credits when it claims it.
    await step(chain_then_index(lambda: contracts.request(2, "a quiet harbour at night")))

    async def chain_job_done() -> bool:
        async with runtime.engine.connect() as conn:
            kinds = set(
                await conn.scalars(select(EventRecord.type).where(EventRecord.token_id == 2))
            )
        return "generation.succeeded" in kinds and "generation.reserved" in kinds

    await step(until(chain_job_done, "the on-chain request is run"))

    # Another process writes: only the hub's tail of the events table brings it here.
    await step(_adjust_elsewhere(runtime.settings.database, 4))

    # A reorg: a purchase and a top-up in two blocks, then a longer fork without them.
    fork = contracts.snapshot()
    await step(chain_then_index(lambda: (contracts.buy(0, FRIEND.address), contracts.top_up(1, 9))))
    contracts.revert(fork)
    contracts.mine(4)
    await read_everything(client, observer, generations)
    await runtime.indexer.sync_once()
    assert runtime.indexer.stats.reorgs == 1
    await until(lambda: _cleared(observer), "the reorg clears every copy")
    await step(_no_op())  # read again: true to the rolled-back database

    async with runtime.engine.connect() as conn:
        kinds = set(await conn.scalars(select(EventRecord.type).distinct()))
    assert set(UNSHOWN) <= kinds, set(UNSHOWN) - kinds
    shown = {"agent.created", "credits.changed", "owner.changed", "agent.updated"}
    assert shown | {"agent.removed", "agent.rolled_back", "chain.reorged"} <= kinds
    assert observer.counters.advanced > 0  # unshown events moved versions forward


async def _cleared(live: Any) -> bool:
    return live.kept() == ([], [])


async def _no_op() -> None:
    return None


async def _status_of(request: Any) -> int:
    async with request as response:
        assert response.status in (200, 202), await response.text()
        return int(response.status)


async def _adjust_elsewhere(database_url: str, token_id: int) -> None:
    """A credits adjustment through an engine of its own, as another process makes it."""
    other = create_async(database_url)
    try:
        async with AgentWriter(other).write(token_id) as (conn, agent):
            await adjust(conn, agent, 3, "elsewhere", "from another process")
    finally:
        await other.dispose()


async def test_an_agent_is_answered_with_its_version_and_a_304_when_unchanged(
    client: Client,
) -> None:
    first = await client.get("/v1/agents/1")
    etag = first.headers["ETag"]
    assert first.headers["Cache-Control"] == "no-cache"
    again = await client.get("/v1/agents/1", headers={"If-None-Match": etag})
    assert (again.status, await again.read(), again.headers["ETag"]) == (304, b"", etag)
    credits = await client.get("/api/credits", params={"tokenId": "1"})
    assert credits.headers["ETag"] == etag  # the balances are the agent's, at its version
    body = {"amount": 2, "note": "a gift", "idempotencyKey": "e1"}
    await call(client, "POST", "/v1/agents/1/credits/adjust", 200, body)
    changed = await client.get("/v1/agents/1", headers={"If-None-Match": etag})
    assert changed.status == 200
    assert int(changed.headers["ETag"].strip('"')) > int(etag.strip('"'))
    assert (await changed.json())["totalCredits"] == 102
    listed = await client.get("/v1/agents")
    page = await client.get("/v1/agents", headers={"If-None-Match": listed.headers["ETag"]})
    assert page.status == 304


async def test_a_write_names_its_seq_and_min_seq_waits_for_it(client: Client) -> None:
    body = {"amount": 2, "note": "a gift", "idempotencyKey": "s1"}
    response = await client.post("/v1/agents/2/credits/adjust", json=body, headers=OPERATOR)
    seq = int(response.headers["X-Inftd-Seq"])
    assert seq == await newest_seq(client)
    read = await client.get("/v1/agents/2", params={"minSeq": str(seq)})
    assert (await read.json())["totalCredits"] == 102
    assert int(read.headers["X-Inftd-Seq"]) >= seq
    # A seq no process has reached: the read waits its bound, then answers what it has.
    ahead = await client.get("/v1/agents/2", params={"minSeq": str(seq + 1000)})
    assert ahead.status == 200
    assert int(ahead.headers["X-Inftd-Seq"]) < seq + 1000
    for bad in ("-1", "x", "1" * 20, "²"):
        refused = await client.get("/v1/agents/2", params={"minSeq": bad})
        assert (refused.status, (await refused.json())["error"]["code"]) == (400, "bad_min_seq")


async def test_a_sale_the_copy_has_not_seen_refuses_the_seller_s_write(client: Client) -> None:
    """The seller still passes the owner check on the copy, but the writer's locked row
    names the buyer: 403, and nothing is reserved."""
    runtime = runtime_of(client)
    seller = bearer(await sign_in(client, BUYER))
    assert (await client.get("/v1/agents/1")).status == 200  # the copy shows BUYER
    other = create_async(runtime.settings.database)  # the sale, indexed by another process
    try:
        async with other.begin() as conn:
            sold = update(Agent).where(Agent.token_id == 1).values(owner=FRIEND.address)
            await conn.execute(sold)
    finally:
        await other.dispose()
    assert await runtime.live.owner(1) == BUYER.address
    response = await client.post("/v1/agents/1/generations", json=TEXT, headers=seller)
    assert (response.status, (await response.json())["error"]["code"]) == (403, "not_owner")
    async with runtime.engine.connect() as conn:
        assert (await agent_state(conn, 1))["reservedCredits"] == 0


async def test_a_sale_moves_the_private_view_as_soon_as_it_is_indexed(
    chain: Anvil, deployment: Deployment, client: Client
) -> None:
    """The copy of the owner that the seller's reads were let in by goes with the sale's
    commit: the seller's next read of a private route is refused, the buyer's allowed."""
    runtime = runtime_of(client)
    seller = bearer(await sign_in(client, BUYER))
    buyer = bearer(await sign_in(client, FRIEND))
    memories = "/v1/agents/1/memories"
    assert (await client.get(memories, headers=seller)).status == 200  # copied: BUYER's
    assert (await client.get(memories, headers=buyer)).status == 403
    Contracts(chain.url, deployment).transfer(1, FRIEND.address)
    await runtime.indexer.sync_once()
    assert (await client.get(memories, headers=seller)).status == 403
    assert (await client.get(memories, headers=buyer)).status == 200
    assert (await (await client.get("/v1/agents/1")).json())["owner"] == FRIEND.address


async def test_status_shows_the_live_agents(client: Client) -> None:
    await client.get("/v1/agents/1")
    await client.get("/v1/agents/1")
    live = (await (await client.get("/v1/status")).json())["live"]
    assert live["tracking"] is True
    assert live["agents"] >= 1
    assert 0 < live["bytes"] <= live["budgetBytes"]
    assert live["hits"] >= 1
