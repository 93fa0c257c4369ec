"""The AsyncAPI document is true: valid AsyncAPI 3.0.0 by the official JSON Schema (npm
``@asyncapi/specs``), its schemas are JSON Schemas whose references all resolve, what real
sockets send matches its messages and what they accept its commands, and the app serves it."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient
from jsonschema import Draft7Validator, Draft202012Validator
from jsonschema.protocols import Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from inftd.daemon.cli.devnet import BUYER, FRIEND, Anvil
from inftd.daemon.config import Settings
from inftd.daemon.server.asyncapi import COMMANDS, SERVER_FRAMES, asyncapi_document, wire_type
from inftd.indexer.deployment import Deployment
from tests.support.api import OPERATOR_KEY, bearer, indexed_with_hub, sign_in
from tests.support.contracts import Contracts

# Installed by `npm ci` from package.json; a missing file fails the test, never skips it.
SPEC = Path(__file__).parents[3] / "node_modules/@asyncapi/specs/schemas/3.0.0.json"
DOCUMENT = asyncapi_document()
ROOT = "urn:inftd:asyncapi"  # the document's URI for resolving its own "#/..." references
WAIT = 10.0  # seconds to wait for a frame the server sends at once
VALIDATORS = (Draft7Validator, Draft202012Validator)  # AsyncAPI's dialect, and pydantic's

# -- the document ---------------------------------------------------------------------------


def spec_validator() -> Draft7Validator:
    assert SPEC.is_file(), f"{SPEC} is missing: run `npm ci` (package.json has @asyncapi/specs)"
    schema = json.loads(SPEC.read_text())
    assert schema["properties"]["asyncapi"]["const"] == "3.0.0"
    return Draft7Validator(schema)


def test_the_document_is_valid_asyncapi_3() -> None:
    errors = [f"{e.json_path}: {e.message}" for e in spec_validator().iter_errors(DOCUMENT)]
    assert errors == []


def _broken_operation(doc: dict[str, Any]) -> None:
    doc["operations"]["agentSend"]["action"] = "publish"  # 2.x's word


def _broken_server(doc: dict[str, Any]) -> None:
    del doc["servers"]["daemon"]["protocol"]


def _broken_parameter(doc: dict[str, Any]) -> None:
    doc["channels"]["agent"]["parameters"]["token_id"]["schema"] = {"type": "string"}  # 2.x


def _broken_scheme(doc: dict[str, Any]) -> None:
    doc["components"]["securitySchemes"]["accessToken"]["in"] = "body"


def _broken_payload(doc: dict[str, Any]) -> None:
    doc["components"]["schemas"]["Snapshot"]["discriminator"] = {"propertyName": "type"}


@pytest.mark.parametrize(
    "breaks",
    [_broken_operation, _broken_server, _broken_parameter, _broken_scheme, _broken_payload],
)
def test_the_spec_schema_refuses_a_broken_document(breaks: Callable[[Any], None]) -> None:
    """The check above can fail: the spec's schema reaches into every part."""
    broken = copy.deepcopy(DOCUMENT)
    breaks(broken)
    assert list(spec_validator().iter_errors(broken)) != []


def test_every_schema_is_a_json_schema() -> None:
    schemas = list(DOCUMENT["components"]["schemas"].values())
    payloads = [m["payload"] for m in DOCUMENT["components"]["messages"].values()]
    assert len(payloads) == len(SERVER_FRAMES) + len(COMMANDS)
    for schema in [*schemas, *payloads]:
        for validator in VALIDATORS:
            validator.check_schema(schema)


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def resolve(ref: str) -> Any:
    """What ``ref`` names in the document, through references to references."""
    assert ref.startswith("#/"), f"{ref} is not a reference inside the document"
    node: Any = DOCUMENT
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict), f"{ref} does not resolve"
        assert part in node, f"{ref} does not resolve"
        node = node[part]
    if isinstance(node, dict) and isinstance(node.get("$ref"), str):
        return resolve(node["$ref"])
    return node


def test_every_reference_resolves() -> None:
    refs = set(_refs(DOCUMENT))
    assert len(refs) > len(DOCUMENT["components"]["schemas"])  # it found them
    for ref in refs:
        resolve(ref)


def test_each_socket_documents_every_frame_once() -> None:
    for channel in DOCUMENT["channels"]:
        assert frames(channel, "send") == {wire_type(m) for m in SERVER_FRAMES}
        assert frames(channel, "receive") == {wire_type(m) for m in COMMANDS}
        for name, message in DOCUMENT["channels"][channel]["messages"].items():
            assert resolve(message["$ref"])["name"] == name


def test_the_examples_match_their_messages() -> None:
    for name, message in DOCUMENT["components"]["messages"].items():
        for example in message["examples"]:
            for validator in VALIDATORS:
                payload_validator(name, validator).validate(example["payload"])


# -- checking frames against the document ---------------------------------------------------


def frames(channel: str, action: str) -> set[str]:
    """The messages sent on ``channel`` by the server (``send``: what its operations send,
    and their replies) or by a client (``receive``)."""
    names: set[str] = set()
    for operation in DOCUMENT["operations"].values():
        if operation["channel"]["$ref"] != f"#/channels/{channel}":
            continue
        carried = list(operation["messages"]) if operation["action"] == action else []
        if action == "send" and "reply" in operation:
            carried += operation["reply"]["messages"]
        names |= {resolve(ref["$ref"])["name"] for ref in carried}
    return names


REGISTRY: Registry[Any] = Registry().with_resource(
    ROOT, Resource.from_contents(DOCUMENT, default_specification=DRAFT7)
)


def payload_validator(name: str, kind: type[Validator] = Draft7Validator) -> Validator:
    return kind({"$ref": f"{ROOT}#/components/messages/{name}/payload"}, registry=REGISTRY)


def matches(channel: str, action: str, frame: Any) -> list[str]:
    """The channel's messages of that direction that ``frame`` is valid against (AsyncAPI:
    exactly one must be), by both dialects."""
    found = []
    for name in sorted(frames(channel, action)):
        valid = {
            kind.__name__: payload_validator(name, kind).is_valid(frame) for kind in VALIDATORS
        }
        assert len(set(valid.values())) == 1, f"{name}: the dialects disagree on {frame}"
        if all(valid.values()):
            found.append(name)
    return found


class Socket:
    """A client socket whose every frame, each way, is checked against the document."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, channel: str) -> None:
        self.ws = ws
        self.channel = channel
        self.received: set[str] = set()
        self.sent: set[str] = set()

    async def receive(self) -> dict[str, Any]:
        frame = await asyncio.wait_for(self.ws.receive_json(), WAIT)
        assert matches(self.channel, "send", frame) == [frame.get("type")], frame
        self.received.add(frame["type"])
        return dict(frame)

    async def next_answer(self) -> dict[str, Any]:
        """The next frame that is not an event (events are checked, and skipped)."""
        while (frame := await self.receive())["type"] == "event":
            pass
        return frame

    async def command(self, command: dict[str, Any], answered: str) -> dict[str, Any]:
        assert matches(self.channel, "receive", command) == [command["type"]], command
        self.sent.add(command["type"])
        await self.ws.send_json(command)
        answer = await self.next_answer()
        assert answer["type"] == answered, answer
        return answer

    async def refused(self, raw: Any, code: str) -> None:
        """A frame the document's commands refuse is refused by the server too."""
        assert matches(self.channel, "receive", raw) == []
        await self.ws.send_str(raw if isinstance(raw, str) else json.dumps(raw))
        answer = await self.next_answer()
        assert (answer["type"], answer["code"]) == ("error", code), answer


# -- real sockets ---------------------------------------------------------------------------


@pytest.fixture
async def client(
    chain: Anvil,
    deployment: Deployment,
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[TestClient]:
    """The API with its hub running, token 1 owned by BUYER and token 2 by FRIEND."""
    monkeypatch.setenv("INFTD_OPERATOR_API_KEY", OPERATOR_KEY)
    contracts = Contracts(chain.url, deployment)
    contracts.buy(0, BUYER.address)
    contracts.buy(1, FRIEND.address)
    settings = Settings.load(
        data_dir=tmp_path,
        database_url=database_url,
        chain={"rpc_urls": [chain.url]},
        api={"rate_per_ip": 100_000, "rate_per_address": 100_000},
    )
    async with indexed_with_hub(settings, deployment) as client:
        yield client


async def _every_command(socket: Socket, sender: int, other: int) -> None:
    """Each kind of command as ``sender``'s owner, with ``other`` the second agent."""
    await socket.command({"type": "subscribe", "tokenId": other}, "snapshot")
    await socket.command({"type": "ping"}, "pong")
    text = {"type": "message", "tokenId": sender, "to": other, "text": "over the socket"}
    sent = await socket.command(text, "messageSent")
    assert (sent["message"]["from"], sent["message"]["to"]) == (sender, other)
    body = {"type": "message", "tokenId": sender, "to": other, "kind": "note", "body": {"n": 1}}
    await socket.command(body, "messageSent")
    generate = {
        "type": "generate",
        "tokenId": sender,
        "kind": "text",
        "prompt": "a lighthouse at dawn",
        "idempotencyKey": f"asyncapi-{socket.channel}",
        "options": {"quality": "standard", "strategy": "single", "style": ["calm", "bright"]},
    }
    first = await socket.command(generate, "generationQueued")
    again = await socket.command(generate, "generationQueued")
    assert (first["replayed"], again["replayed"]) == (False, True)
    await socket.command({"type": "unsubscribe", "tokenId": other}, "unsubscribed")
    await socket.command({"type": "subscribe", "tokenId": 99}, "error")  # unknown_agent
    await _refusals(socket, text)


async def _refusals(socket: Socket, text: dict[str, Any]) -> None:
    await socket.refused("not json", "bad_message")
    await socket.refused({"type": "dance"}, "unknown_command")
    await socket.refused({**text, "extra": True}, "bad_request")
    await socket.refused({**text, "tokenId": "1"}, "bad_token_id")
    await socket.refused({**text, "body": {"n": 1}}, "bad_message")  # text and body
    await socket.refused({k: v for k, v in text.items() if k != "text"}, "bad_message")
    await socket.refused({"type": "generate", "tokenId": 1, "kind": "video"}, "bad_request")


def _saw_everything(socket: Socket) -> None:
    assert socket.received == frames(socket.channel, "send")
    assert socket.sent == frames(socket.channel, "receive")


async def test_the_agent_socket_speaks_as_documented(client: TestClient) -> None:
    token = await sign_in(client, BUYER)
    async with client.ws_connect(f"/v1/agents/1/ws?since=0&access_token={token}") as ws:
        socket = Socket(ws, "agent")
        assert (await socket.receive())["type"] == "snapshot"
        assert (await socket.receive())["type"] == "event"  # the replay: agent.created first
        await _every_command(socket, sender=1, other=2)
    _saw_everything(socket)


async def test_the_firehose_speaks_as_documented(client: TestClient) -> None:
    operator = bearer(OPERATOR_KEY)
    async with client.ws_connect("/v1/ws?since=0", headers=operator) as ws:
        socket = Socket(ws, "firehose")
        assert (await socket.receive())["type"] == "event"  # no snapshot: the replay
        await _every_command(socket, sender=2, other=1)  # the operator acts for any owner
    _saw_everything(socket)


async def test_the_app_serves_the_document(client: TestClient) -> None:
    response = await client.get("/asyncapi.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    assert await response.json() == orjson.loads(orjson.dumps(asyncapi_document()))
