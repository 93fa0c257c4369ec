"""Messages, collaboration grants and analytics over the API and the WebSocket: who may do
what (and after a transfer), what arrives where, and bad input changing nothing."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from inftd.agents.messages import MAX_TEXT_CHARS, MESSAGES_PER_MINUTE
from inftd.daemon.cli.devnet import BUYER, FRIEND, Anvil
from inftd.daemon.server import asyncapi
from inftd.daemon.server.app import api_document
from inftd.indexer.deployment import Deployment
from inftd.store.models import AgentMessage, Collaboration, EventRecord, Memory
from tests.support.api import OPERATOR_KEY, OpenApi, bearer, runtime_of, sign_in
from tests.support.contracts import Contracts
from tests.support.openapi import Operation, Spec

OPERATOR = bearer(OPERATOR_KEY)
Client = TestClient[web.Request, web.Application]
SPEC = Spec(api_document())  # every answer here is checked against it


@pytest.fixture
async def client(open_api: OpenApi) -> AsyncIterator[Client]:
    """Agents 1 and 3 owned by BUYER, 2 by FRIEND; the hub running."""
    async with open_api(
        BUYER,
        (1, FRIEND),
        BUYER,
        hub=True,
        api={"rate_per_ip": 100_000, "rate_per_address": 100_000},
    ) as client:
        yield client


@pytest.fixture
async def buyer(client: Client) -> dict[str, str]:
    return bearer(await sign_in(client, BUYER))


@pytest.fixture
async def friend(client: Client) -> dict[str, str]:
    return bearer(await sign_in(client, FRIEND))


def documented(method: str, path: str) -> Operation:
    """The operation of the OpenAPI document that routes ``method path``."""
    (op,) = [
        op
        for op in SPEC.operations()
        if op.method == method
        and re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", op.template), path.partition("?")[0])
    ]
    return op


async def call(
    client: Client, method: str, path: str, headers: dict[str, str], **kwargs: Any
) -> tuple[int, Any]:
    """The status and JSON body of a request, after checking them against the document."""
    async with client.request(method, path, headers=headers, **kwargs) as response:
        raw = await response.read()
        SPEC.check(documented(method, path), response.status, response.content_type, raw)
        return response.status, orjson.loads(raw) if raw else None


def code(answer: tuple[int, Any]) -> tuple[int, str]:
    status, body = answer
    return status, body["error"]["code"] if status >= 400 else "ok"


async def send(client: Client, sender: int, headers: dict[str, str], body: Any) -> tuple[int, Any]:
    return await call(client, "POST", f"/v1/agents/{sender}/messages", headers, json=body)


async def stored(client: Client, model: Any, *where: Any) -> int:
    async with runtime_of(client).engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def receive(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.receive_json(), 10)
    assert isinstance(message, dict)
    [model] = [m for m in asyncapi.SERVER_FRAMES if asyncapi.wire_type(m) == message["type"]]
    model.model_validate_json(orjson.dumps(message))  # a frame the AsyncAPI document describes
    return message


async def test_a_message_reaches_the_receivers_inbox_and_memory(
    client: Client, buyer: dict[str, str], friend: dict[str, str]
) -> None:
    status, sent = await send(client, 1, buyer, {"to": 2, "text": "shall we paint lighthouses?"})
    assert status == 201
    assert (sent["from"], sent["to"], sent["kind"], sent["readAt"]) == (1, 2, "text", None)
    status, inbox = await call(client, "GET", "/v1/agents/2/messages", friend)
    assert (status, inbox["unread"], inbox["nextBefore"]) == (200, 1, None)
    assert [m["body"] for m in inbox["messages"]] == [{"text": "shall we paint lighthouses?"}]
    _, outbox = await call(client, "GET", "/v1/agents/1/messages?box=outbox", buyer)
    assert [m["id"] for m in outbox["messages"]] == [sent["id"]]
    _, empty = await call(client, "GET", "/v1/agents/1/messages", buyer)
    assert empty["messages"] == []
    source = f"message:{sent['id']}"
    assert await stored(client, Memory, Memory.token_id == 2, Memory.source_id == source) == 1

    read = f"/v1/agents/2/messages/{sent['id']}/read"
    assert code(await call(client, "POST", read, buyer)) == (403, "not_owner")
    status, marked = await call(client, "POST", read, friend)
    assert status == 200
    assert marked["readAt"] is not None
    assert (await call(client, "POST", read, friend))[1]["readAt"] == marked["readAt"]
    _, inbox = await call(client, "GET", "/v1/agents/2/messages", friend)
    assert inbox["unread"] == 0
    # The message is in 2's inbox, not 1's.
    wrong_box = f"/v1/agents/1/messages/{sent['id']}/read"
    assert code(await call(client, "POST", wrong_box, buyer)) == (404, "unknown_message")
    for not_an_id in ("x", "0", "1.0", str(2**63)):  # names no message
        path = f"/v1/agents/2/messages/{not_an_id}/read"
        assert code(await call(client, "POST", path, friend)) == (404, "unknown_message")


async def test_boxes_are_paged(client: Client, buyer: dict[str, str]) -> None:
    ids = [(await send(client, 1, buyer, {"to": 3, "body": {"i": i}}))[1]["id"] for i in range(5)]
    seen: list[int] = []
    path = "/v1/agents/3/messages?limit=2"
    while True:
        status, page = await call(client, "GET", path, buyer)
        assert status == 200
        assert len(page["messages"]) <= 2
        seen += [m["id"] for m in page["messages"]]
        if page["nextBefore"] is None:
            break
        path = f"/v1/agents/3/messages?limit=2&before={page['nextBefore']}"
    assert seen == ids[::-1]


async def test_who_may_send_read_and_ask(
    client: Client, buyer: dict[str, str], friend: dict[str, str]
) -> None:
    hello = {"to": 2, "text": "hello"}
    assert code(await send(client, 1, {}, hello)) == (401, "unauthenticated")
    assert code(await send(client, 1, bearer("forged"), hello)) == (401, "invalid_token")
    assert code(await send(client, 1, friend, hello)) == (403, "not_owner")
    assert code(await send(client, 9, buyer, hello)) == (404, "unknown_agent")
    assert code(await send(client, 1, OPERATOR, hello)) == (201, "ok")
    for path in ("/v1/agents/1/messages", "/v1/analytics/agents/1"):
        assert code(await call(client, "GET", path, {})) == (401, "unauthenticated")
        assert code(await call(client, "GET", path, friend)) == (403, "not_owner")
        assert code(await call(client, "GET", path, OPERATOR)) == (200, "ok")
    assert code(await call(client, "GET", "/v1/analytics/packages", {})) == (
        401,
        "unauthenticated",
    )
    assert code(await call(client, "GET", "/v1/analytics/packages", buyer)) == (
        403,
        "not_operator",
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{nope", (400, "malformed_json")),
        ([1], (400, "bad_request")),
        ({"text": "no recipient"}, (400, "bad_request")),
        ({"to": "2", "text": "x"}, (400, "bad_request")),
        ({"to": True, "text": "x"}, (400, "bad_request")),
        ({"to": -2, "text": "x"}, (400, "bad_request")),
        ({"to": 2, "text": "x", "extra": 1}, (400, "bad_request")),
        ({"to": 2}, (400, "bad_message")),
        ({"to": 2, "text": "x", "body": {}}, (400, "bad_message")),
        ({"to": 2, "text": ""}, (400, "bad_message")),
        ({"to": 2, "text": "x" * (MAX_TEXT_CHARS + 1)}, (400, "bad_message")),
        ({"to": 2, "text": "nul \x00"}, (400, "bad_message")),
        ({"to": 2, "body": {"a": ["\x00"]}}, (400, "bad_message")),
        ({"to": 2, "body": [1]}, (400, "bad_message")),
        ({"to": 2, "kind": "UPPER", "text": "x"}, (400, "bad_message")),
        ({"to": 1, "text": "me"}, (400, "self_message")),
        ({"to": 99, "text": "nobody"}, (404, "unknown_recipient")),
        ({"to": 2**63 - 1, "text": "nobody"}, (404, "unknown_recipient")),
        ({"to": 2**63, "text": "nobody"}, (400, "bad_request")),  # beyond BIGINT: no agent
    ],
)
async def test_bad_messages_are_refused_and_store_nothing(
    client: Client, buyer: dict[str, str], body: Any, expected: tuple[int, str]
) -> None:
    path = "/v1/agents/1/messages"
    if isinstance(body, bytes):
        answer = await call(client, "POST", path, buyer, data=body)
    else:
        answer = await send(client, 1, buyer, body)
    assert code(answer) == expected
    assert await stored(client, AgentMessage) == 0
    assert await stored(client, EventRecord, EventRecord.type.like("message.%")) == 0


@pytest.mark.parametrize(
    "query",
    [
        "box=trash",
        "limit=0",
        "limit=x",
        "limit=-1",
        "before=0",
        "before=²",
        "limit=1.5",
        "limit=101",  # more than a page: refused, as the document says (it was capped)
        f"before={2**63}",  # beyond BIGINT (it was capped)
    ],
)
async def test_bad_box_queries_are_a_400(client: Client, buyer: dict[str, str], query: str) -> None:
    answer = await call(client, "GET", f"/v1/agents/1/messages?{query}", buyer)
    assert code(answer) == (400, "bad_query")


async def test_a_sender_is_capped_per_minute(
    client: Client, buyer: dict[str, str], friend: dict[str, str]
) -> None:
    for i in range(MESSAGES_PER_MINUTE):
        assert (await send(client, 1, buyer, {"to": 2, "body": {"i": i}}))[0] == 201
    async with client.post(
        "/v1/agents/1/messages", json={"to": 2, "text": "more"}, headers=buyer
    ) as response:
        assert response.status == 429
        raw = await response.read()
        SPEC.check(documented("POST", "/v1/agents/1/messages"), 429, response.content_type, raw)
        error = orjson.loads(raw)["error"]
        assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert error["code"] == "too_many_messages"
    assert "MESSAGES_PER_MINUTE" in error["message"]
    assert await stored(client, AgentMessage) == MESSAGES_PER_MINUTE
    assert (await send(client, 3, buyer, {"to": 2, "text": "another sender"}))[0] == 201


async def test_collaborators_are_granted_listed_revoked_and_granted_again(
    client: Client, buyer: dict[str, str], friend: dict[str, str]
) -> None:
    grants = "/v1/agents/1/collaborators"
    status, made = await call(client, "POST", grants, buyer, json={"tokenId": 2})
    assert status == 201
    assert (made["granter"], made["grantee"], made["grantedBy"]) == (1, 2, BUYER.address)
    assert (await call(client, "POST", grants, buyer, json={"tokenId": 2}))[0] == 200
    # Public, both ways.
    _, one = await call(client, "GET", grants, {})
    _, two = await call(client, "GET", "/v1/agents/2/collaborators", {})
    assert [(g["granter"], g["grantee"]) for g in one["granted"]] == [(1, 2)]
    assert (one["received"], two["granted"]) == ([], [])
    assert [(g["granter"], g["grantee"]) for g in two["received"]] == [(1, 2)]
    assert code(await call(client, "GET", "/v1/agents/9/collaborators", {})) == (
        404,
        "unknown_agent",
    )

    refused = [
        ({"tokenId": 1}, (400, "self_collaboration")),
        ({"tokenId": 99}, (404, "unknown_grantee")),
        ({"tokenId": 2**63}, (400, "bad_request")),  # beyond BIGINT: no agent
        ({"tokenId": "2"}, (400, "bad_request")),
        ({"tokenId": 2, "more": 1}, (400, "bad_request")),
        ([2], (400, "bad_request")),
    ]
    for body, expected in refused:
        assert code(await call(client, "POST", grants, buyer, json=body)) == expected
    assert code(await call(client, "POST", grants, friend, json={"tokenId": 3})) == (
        403,
        "not_owner",
    )
    assert code(await call(client, "POST", grants, {}, json={"tokenId": 3})) == (
        401,
        "unauthenticated",
    )
    assert await stored(client, Collaboration) == 1

    assert code(await call(client, "DELETE", grants + "/2", friend)) == (403, "not_owner")
    assert (await call(client, "DELETE", grants + "/2", buyer))[0] == 204
    assert code(await call(client, "DELETE", grants + "/2", buyer)) == (
        404,
        "unknown_collaboration",
    )
    assert code(await call(client, "DELETE", grants + "/x", buyer)) == (400, "bad_token_id")
    assert (await call(client, "GET", grants, {}))[1]["granted"] == []
    assert (await call(client, "POST", grants, OPERATOR, json={"tokenId": 2}))[0] == 201
    assert (await call(client, "GET", grants, {}))[1]["granted"][0]["grantedBy"] == "operator"


async def test_after_a_transfer_the_new_owner_sends_and_revokes_and_the_old_cannot(
    client: Client,
    chain: Anvil,
    deployment: Deployment,
    buyer: dict[str, str],
    friend: dict[str, str],
) -> None:
    grants = "/v1/agents/1/collaborators"
    assert (await call(client, "POST", grants, buyer, json={"tokenId": 3}))[0] == 201
    Contracts(chain.url, deployment).transfer(1, FRIEND.address)
    await runtime_of(client).indexer.sync_once()

    assert code(await send(client, 1, buyer, {"to": 3, "text": "still mine?"})) == (
        403,
        "not_owner",
    )
    assert code(await call(client, "DELETE", grants + "/3", buyer)) == (403, "not_owner")
    assert code(await call(client, "GET", "/v1/agents/1/messages", buyer)) == (403, "not_owner")
    assert (await send(client, 1, friend, {"to": 3, "text": "new owner here"}))[0] == 201
    assert (await call(client, "DELETE", grants + "/3", friend))[0] == 204


async def test_a_message_reaches_the_receivers_owner_socket_only(
    client: Client, buyer: dict[str, str], friend: dict[str, str]
) -> None:
    token = friend["Authorization"].removeprefix("Bearer ")
    async with (
        client.ws_connect(f"/v1/agents/2/ws?access_token={token}") as owner,
        client.ws_connect("/v1/agents/2/ws") as public,
    ):
        for ws in (owner, public):
            assert (await receive(ws))["type"] == "snapshot"
        _, sent = await send(client, 1, buyer, {"to": 2, "text": "for your owner's eyes"})
        # A public event after it: the public socket must get it and nothing before it.
        await call(client, "POST", "/v1/agents/1/collaborators", buyer, json={"tokenId": 2})
        received = await receive(owner)
        assert (received["event"], received["data"]["id"]) == ("message.received", sent["id"])
        assert received["data"]["body"] == {"text": "for your owner's eyes"}
        seen = [(await receive(owner))["event"] for _ in range(2)]
        assert sorted(seen) == ["collaboration.granted", "memory.added"]
        assert (await receive(public))["event"] == "collaboration.granted"


async def test_the_message_command_on_a_socket(
    client: Client, buyer: dict[str, str], friend: dict[str, str]
) -> None:
    token = buyer["Authorization"].removeprefix("Bearer ")
    command = {"type": "message", "tokenId": 1, "to": 2, "text": "over the socket"}
    async with client.ws_connect("/v1/agents/1/ws") as anonymous:
        await receive(anonymous)
        await anonymous.send_json(command)
        assert (await receive(anonymous))["code"] == "unauthenticated"
    async with client.ws_connect(f"/v1/agents/1/ws?access_token={token}") as ws:
        await receive(ws)
        refusals = [
            ({**command, "tokenId": 2}, "not_owner"),
            ({**command, "tokenId": "1"}, "bad_token_id"),
            ({**command, "tokenId": 77}, "unknown_agent"),
            ({**command, "to": 1}, "self_message"),
            ({**command, "to": 99}, "unknown_recipient"),
            ({**command, "to": 2**63}, "bad_request"),  # as the POST's body refuses it
            ({**command, "extra": True}, "bad_request"),
            ({**command, "text": ""}, "bad_message"),
        ]
        for bad, expected in refusals:
            await ws.send_json(bad)
            answer = await receive(ws)
            assert (answer["type"], answer["code"]) == ("error", expected)
        assert await stored(client, AgentMessage) == 0
        await ws.send_json(command)
        answers = [await receive(ws) for _ in range(2)]  # the ack, and message.sent
        (ack,) = [a for a in answers if a["type"] == "messageSent"]
        (event,) = [a for a in answers if a["type"] == "event"]
        assert (ack["message"]["from"], ack["message"]["to"]) == (1, 2)
        assert (event["event"], event["data"]["id"]) == ("message.sent", ack["message"]["id"])
    _, inbox = await call(client, "GET", "/v1/agents/2/messages", friend)
    assert [m["body"]["text"] for m in inbox["messages"]] == ["over the socket"]


async def test_analytics_count_what_happened(client: Client, buyer: dict[str, str]) -> None:
    for text in ("one", "two"):
        await send(client, 1, buyer, {"to": 2, "text": text})
    status, one = await call(client, "GET", "/v1/analytics/agents/1", buyer)
    assert status == 200
    assert one["messages"] == {"sent": 2, "received": 0}
    assert one["credits"]["granted"] == 100  # the Starter package, bought in the window
    _, packages = await call(client, "GET", "/v1/analytics/packages", OPERATOR)
    by_type = {p["packageType"]: p for p in packages["packages"]}
    assert (by_type[0]["agents"], by_type[1]["agents"]) == (2, 1)
    assert by_type[0]["credits"]["granted"] == 200
    assert by_type[1]["messages"] == {"sent": 0, "received": 2}
    # A window before anything happened sees nothing.
    status, past = await call(
        client, "GET", "/v1/analytics/agents/1?from=2020-01-01&to=2020-01-02", buyer
    )
    assert (status, past["messages"]["sent"], past["credits"]["granted"]) == (200, 0, 0)
    for query in ("from=yesterday", "from=2020-01-01&to=2021-01-01", "from=2999-01-01"):
        answer = await call(client, "GET", f"/v1/analytics/agents/1?{query}", buyer)
        assert code(answer) == (400, "bad_window")
    answer = await call(client, "GET", "/v1/analytics/packages?to=x", OPERATOR)
    assert code(answer) == (400, "bad_window")
