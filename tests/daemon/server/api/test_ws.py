"""WebSockets: snapshot, live events in order, resume with since, slow clients, the firehose."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from inftd.agents.events import NewEvent, record_events
from inftd.daemon.cli.devnet import BUYER, FRIEND, Anvil
from inftd.daemon.events.hub import Subscription
from inftd.indexer.deployment import Deployment
from tests.support.api import OPERATOR_KEY, OpenApi, bearer, runtime_of, sign_in
from tests.support.contracts import Contracts


@pytest.fixture
async def client(open_api: OpenApi) -> AsyncIterator[TestClient]:
    """An API with two agents (tokens 1 and 2) and its hub running."""
    # hundreds of sockets from one address
    async with open_api(
        BUYER, (1, FRIEND), hub=True, api={"ws_queue": 64, "rate_per_ip": 100_000}
    ) as client:
        yield client


async def publish(client: TestClient, *events: tuple[int, str, dict[str, Any]]) -> None:
    runtime = runtime_of(client)
    async with runtime.engine.begin() as conn:
        await record_events(conn, [NewEvent(kind, token, data) for token, kind, data in events])
    runtime.hub.poke()


async def receive(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.receive_json(), 10)
    assert isinstance(message, dict)
    return message


async def test_snapshot_then_live_events_for_that_agent_only(client: TestClient) -> None:
    async with client.ws_connect("/v1/agents/1/ws") as ws:
        snapshot = await receive(ws)
        assert snapshot["type"] == "snapshot"
        assert snapshot["agent"]["packageTokenId"] == 1
        assert snapshot["agent"]["totalCredits"] == 100
        await publish(client, (2, "credits.changed", {"n": 0}), (1, "credits.changed", {"n": 1}))
        event = await receive(ws)
        assert (event["event"], event["tokenId"], event["data"]) == ("credits.changed", 1, {"n": 1})
        assert event["seq"] > snapshot["seq"]

        await ws.send_json({"type": "subscribe", "tokenId": 2})
        second = await receive(ws)
        assert (second["type"], second["tokenId"]) == ("snapshot", 2)
        await publish(client, (2, "owner.changed", {"n": 2}))
        assert (await receive(ws))["data"] == {"n": 2}

        await ws.send_json({"type": "ping"})
        assert (await receive(ws))["type"] == "pong"
        await ws.send_json({"type": "subscribe", "tokenId": 99})
        assert (await receive(ws))["code"] == "unknown_agent"
        await ws.send_str("not json")
        assert (await receive(ws))["code"] == "bad_message"
        await ws.send_json({"type": "dance"})
        assert (await receive(ws))["code"] == "unknown_command"


async def test_resume_with_since_loses_nothing(client: TestClient) -> None:
    async with client.ws_connect("/v1/agents/1/ws") as ws:
        since = (await receive(ws))["seq"]
        await publish(client, (1, "e", {"i": 0}))
        assert (await receive(ws))["data"] == {"i": 0}
    # Disconnected: these happen meanwhile.
    await publish(client, *[(1, "e", {"i": i}) for i in range(1, 6)], (2, "e", {"i": -1}))
    await runtime_of(client).hub.dispatch_new()
    async with client.ws_connect(f"/v1/agents/1/ws?since={since}") as ws:
        assert (await receive(ws))["type"] == "snapshot"
        replayed = [(await receive(ws))["data"]["i"] for _ in range(6)]
        assert replayed == [0, 1, 2, 3, 4, 5]
        await publish(client, (1, "e", {"i": 6}))
        assert (await receive(ws))["data"] == {"i": 6}


async def test_overlapping_dispatches_deliver_each_event_once(client: TestClient) -> None:
    """The hub's loop, a writer's poke and a NOTIFY can all read the table at once; an
    event read twice must not reach a subscriber twice (a resumed client saw replays)."""
    hub = runtime_of(client).hub
    sub = Subscription(limit=1000, tokens=[1])
    hub.subscribe(sub)
    try:
        await publish(client, *[(1, "e", {"i": i}) for i in range(20)])
        await asyncio.gather(*(hub.dispatch_new() for _ in range(4)))
        await publish(client, (1, "e", {"i": 20}))
        await hub.dispatch_new()
        seen = [(await asyncio.wait_for(sub.next(), 10)) for _ in range(21)]
        assert [e.payload["i"] for e in seen if e is not None] == list(range(21))
    finally:
        hub.unsubscribe(sub)


async def test_bad_requests_get_json_errors(client: TestClient) -> None:
    missing = await client.get("/v1/agents/77/ws")
    assert missing.status == 404
    assert (await missing.json())["error"]["code"] == "unknown_agent"
    bad = await client.get("/v1/agents/1/ws?since=yesterday")
    assert bad.status == 400
    assert (await bad.json())["error"]["code"] == "bad_since"


async def test_the_firehose_needs_the_operator_key_and_sees_everything(client: TestClient) -> None:
    refused = await client.get("/v1/ws")
    assert refused.status == 401
    headers = {"Authorization": f"Bearer {OPERATOR_KEY}"}
    async with client.ws_connect("/v1/ws", headers=headers) as ws:
        await asyncio.sleep(0.1)
        await publish(client, (1, "a", {}), (2, "b", {}), (None, "c", {}))  # type: ignore[arg-type]
        assert [(await receive(ws))["event"] for _ in range(3)] == ["a", "b", "c"]


async def open_and_never_read(client: TestClient, path: str) -> socket.socket:
    """A WebSocket handshake on a raw socket with a tiny receive buffer, then silence."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (client.host, client.port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {client.host}:{client.port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    reply = await loop.sock_recv(sock, 1024)
    assert reply.startswith(b"HTTP/1.1 101"), reply
    return sock


@pytest.mark.timeout(60)
async def test_a_client_that_never_reads_is_cut_off_without_slowing_the_rest(
    client: TestClient,
) -> None:
    big = {"blob": "x" * 100_000}  # fills the stuck client's socket buffers quickly
    stuck = await open_and_never_read(client, "/v1/agents/1/ws")
    hub = runtime_of(client).hub
    try:
        async with client.ws_connect("/v1/agents/1/ws", max_msg_size=0) as reader:
            await receive(reader)
            assert len(hub.subscriptions) == 2
            for i in range(200):
                await publish(client, (1, "big", big | {"i": i}))
                message = await receive(reader)  # the reader keeps up all along
                assert message["data"]["i"] == i
            async with asyncio.timeout(10):  # cut off: closed, or dropped if it cannot take that
                while len(hub.subscriptions) > 1:  # noqa: ASYNC110 - no event to await here
                    await asyncio.sleep(0.05)
    finally:
        stuck.close()


@pytest.mark.timeout(120)
async def test_many_clients_each_get_every_event_in_order(client: TestClient) -> None:
    clients = 500
    url = client.make_url("/v1/agents/2/ws")
    async with contextlib.AsyncExitStack() as stack:
        # TestClient's own session pools at most 100 connections.
        session = await stack.enter_async_context(
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        )
        sockets = [await stack.enter_async_context(session.ws_connect(url)) for _ in range(clients)]
        for ws in sockets:
            await receive(ws)
        await publish(client, *[(2, "n", {"i": i}) for i in range(20)])

        async def collect(ws: aiohttp.ClientWebSocketResponse) -> list[int]:
            return [(await receive(ws))["data"]["i"] for _ in range(20)]

        results = await asyncio.gather(*(collect(ws) for ws in sockets))
    assert all(r == list(range(20)) for r in results)


async def test_private_events_reach_only_the_owner(client: TestClient) -> None:
    token = await sign_in(client, BUYER)  # BUYER owns agent 1, FRIEND agent 2
    async with (
        client.ws_connect("/v1/agents/1/ws") as anonymous,
        client.ws_connect(f"/v1/agents/1/ws?access_token={token}") as owner,
        client.ws_connect("/v1/agents/2/ws", headers=bearer(token)) as other,
    ):
        for ws in (anonymous, owner, other):
            await receive(ws)
        runtime = runtime_of(client)
        async with runtime.engine.begin() as conn:
            await record_events(
                conn,
                [
                    NewEvent("memory.added", 1, {"secret": True}, private=True),
                    NewEvent("memory.added", 2, {"secret": True}, private=True),
                    NewEvent("credits.changed", 1, {}),
                    NewEvent("credits.changed", 2, {}),
                ],
            )
        runtime.hub.poke()
        assert [(await receive(owner))["event"] for _ in range(2)] == [
            "memory.added",
            "credits.changed",
        ]
        assert (await receive(anonymous))["event"] == "credits.changed"
        assert (await receive(other))["event"] == "credits.changed"  # not its agent's owner
    bad = await client.get("/v1/agents/1/ws?access_token=forged")
    assert bad.status == 401


async def test_a_sale_ends_the_old_owners_private_events_on_an_open_socket(
    client: TestClient, chain: Anvil, deployment: Deployment
) -> None:
    token = await sign_in(client, BUYER)  # BUYER owns agent 1
    operator = {"Authorization": f"Bearer {OPERATOR_KEY}"}
    async with (
        client.ws_connect("/v1/agents/1/ws", headers=bearer(token)) as seller,
        client.ws_connect("/v1/agents/1/ws", headers=operator) as admin,
    ):
        for ws in (seller, admin):
            await receive(ws)
        Contracts(chain.url, deployment).transfer(1, FRIEND.address)
        runtime = runtime_of(client)
        await runtime.indexer.sync_once()
        async with runtime.engine.begin() as conn:
            await record_events(
                conn,
                [
                    NewEvent("generation.progress", 1, {"text": "the buyer's"}, private=True),
                    NewEvent("credits.changed", 1, {}),
                ],
            )
        runtime.hub.poke()
        seen = [(await receive(seller))["event"] for _ in range(2)]
        assert seen == ["owner.changed", "credits.changed"]
        seen = [(await receive(admin))["event"] for _ in range(3)]
        assert seen == ["owner.changed", "generation.progress", "credits.changed"]


async def test_a_seller_who_unsubscribed_before_the_sale_sees_no_private_event_after_it(
    client: TestClient, chain: Anvil, deployment: Deployment
) -> None:
    """Unsubscribed, the socket does not follow the sale; subscribing again must not bring
    back the private view it had as the owner."""
    token = await sign_in(client, BUYER)  # BUYER owns agent 1, FRIEND agent 2
    async with client.ws_connect("/v1/agents/2/ws", headers=bearer(token)) as seller:
        await receive(seller)
        await seller.send_json({"type": "subscribe", "tokenId": 1})
        assert (await receive(seller))["type"] == "snapshot"
        await seller.send_json({"type": "unsubscribe", "tokenId": 1})
        assert (await receive(seller))["type"] == "unsubscribed"
        Contracts(chain.url, deployment).transfer(1, FRIEND.address)
        runtime = runtime_of(client)
        await runtime.indexer.sync_once()
        await seller.send_json({"type": "subscribe", "tokenId": 1})
        assert (await receive(seller))["type"] == "snapshot"
        await publish(client, (1, "credits.changed", {"n": 0}))
        async with runtime.engine.begin() as conn:
            await record_events(conn, [NewEvent("memory.added", 1, {"buyer's": 1}, private=True)])
        await publish(client, (1, "credits.changed", {"n": 1}))
        seen = [(await receive(seller))["event"] for _ in range(2)]
        assert seen == ["credits.changed", "credits.changed"]


async def test_indexed_chain_events_reach_subscribers(
    client: TestClient, chain: Anvil, deployment: Deployment
) -> None:
    contracts = Contracts(chain.url, deployment)
    headers = {"Authorization": f"Bearer {OPERATOR_KEY}"}
    async with (
        client.ws_connect("/v1/ws", headers=headers) as firehose,
        client.ws_connect("/v1/agents/1/ws") as agent,
    ):
        await receive(agent)
        await asyncio.sleep(0.1)
        contracts.top_up(1, 5)
        token = contracts.buy(2)
        await runtime_of(client).indexer.sync_once()  # pokes the hub when it commits
        topped = await receive(agent)
        assert (topped["event"], topped["data"]["credits"]) == ("credits.changed", 5)
        seen = [(await receive(firehose)) for _ in range(2)]
        assert [(e["event"], e["tokenId"]) for e in seen] == [
            ("credits.changed", 1),
            ("agent.created", token),
        ]
        assert seen[1]["data"]["credits"] == 3000
