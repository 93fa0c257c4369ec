"""The OpenAPI document is true: it names every route the app serves and nothing more, and
real and generated requests get statuses and bodies it allows (never a 5xx)."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from multidict import CIMultiDictProxy

from inftd.daemon.cli.devnet import BUYER, FRIEND, Anvil, rpc_call
from inftd.daemon.config import Settings
from inftd.daemon.server import asyncapi
from inftd.daemon.server.app import MAX_BODY_BYTES, api_document
from inftd.daemon.server.ratelimits import RATE_LIMITER, TokenBuckets
from inftd.indexer.deployment import Deployment
from inftd.indexer.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature
from tests.support.api import api_client, bearer, nonce_for, runtime_of, sign, sign_in
from tests.support.contracts import Contracts
from tests.support.openapi import ANY_JSON, Operation, SchemaStrategies, Spec

OPERATOR_KEY = "operator-key-for-openapi-tests"
WEBHOOK_SECRET = "whsec-openapi-test-7c2e"
SPEC = Spec(api_document())
FUZZ_EXAMPLES = 500  # generated requests per database
NO_LIMITS = {"rate_per_ip": 1e6, "rate_per_address": 1e6}  # the fuzzer is one busy client
# Values that have broken parsers before: non-ASCII digits, huge and negative numbers, NUL.
ODD_VALUES = ("²", "١٢", "-1", "1.5", str(2**64), "9" * 80, " 1", "%", "\x00", "null")


def routable(value: str) -> bool:
    """Whether a path parameter reaches its route: aiohttp's router takes no braces in one,
    and the client resolves dot segments (others get the router's 404 ``not_found``)."""
    return value not in (".", "..") and not {"{", "}"} & set(value)


def settings_for(chain: Anvil, tmp_path: Path, database_url: str) -> Settings:
    return Settings.load(
        data_dir=tmp_path,
        database_url=database_url,
        chain={"rpc_urls": [chain.url]},
        api=NO_LIMITS,
        push={"allow_private_targets": True},  # no DNS: webhook URLs are checked by form only
    )


@pytest.fixture
async def client(
    chain: Anvil,
    deployment: Deployment,
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[TestClient]:
    """The API with the operator key and webhook secret set, and token 1 owned by BUYER."""
    monkeypatch.setenv("INFTD_OPERATOR_API_KEY", OPERATOR_KEY)
    monkeypatch.setenv("INFTD_WEBHOOK_SECRET", WEBHOOK_SECRET)
    Contracts(chain.url, deployment).buy(0)
    async with api_client(settings_for(chain, tmp_path, database_url), deployment) as client:
        await runtime_of(client).indexer.sync_once()
        yield client


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: CIMultiDictProxy[str]


async def call(
    client: TestClient,
    method: str,
    template: str,
    path: dict[str, str] | None = None,
    **kwargs: Any,
) -> Answer:
    """Send a request and check the answer against the operation's documentation."""
    op = SPEC.operation(method, template)
    async with client.request(method, op.url(path or {}), **kwargs) as response:
        raw = await response.read()
        SPEC.check(op, response.status, response.content_type, raw)
        json = response.content_type == "application/json"
        return Answer(response.status, orjson.loads(raw) if json else raw, response.headers)


async def expect(client: TestClient, status: int, method: str, template: str, **kwargs: Any) -> Any:
    answer = await call(client, method, template, **kwargs)
    assert answer.status == status, answer.body
    return answer.body


def error_code(body: Any) -> str:
    return str(body["error"]["code"])


def signed(body: bytes, stamp: int | None = None, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    ts = str(stamp if stamp is not None else int(time.time()))
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: signature(secret.encode(), ts, body)}


# The document itself


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def test_the_document_is_well_formed_openapi_3_1() -> None:
    doc = SPEC.doc
    assert doc["openapi"] == "3.1.0"
    for schema in doc["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    for ref in _refs(doc):
        assert SPEC.resolve({"$ref": ref}), ref
    ids = [op.spec["operationId"] for op in SPEC.operations()]
    assert len(ids) == len(set(ids))
    schemes = doc["components"]["securitySchemes"]
    for op in SPEC.operations():
        names = {SPEC.resolve(p)["name"] for p in op.spec.get("parameters", ())}
        in_path = {part[1:-1] for part in op.template.split("/") if part.startswith("{")}
        assert in_path <= names, op.template
        assert {s for req in op.spec.get("security", ()) for s in req} <= set(schemes)
        assert "500" in op.spec["responses"]
    assert schemes["signIn"]["scheme"] == schemes["operatorKey"]["scheme"] == "bearer"
    assert schemes["webhookSignature"]["name"] == SIGNATURE_HEADER
    RequestGenerator(SPEC, "owner", "friend").requests()  # it can generate every request


async def test_every_route_served_is_documented_and_nothing_else(client: TestClient) -> None:
    served = {
        (route.method, route.resource.canonical)
        for route in client.app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    documented = {(op.method, op.template) for op in SPEC.operations()}
    assert served - documented == set(), "served but not documented"
    assert documented - served == set(), "documented but not served"
    served_doc = await expect(client, 200, "GET", "/openapi.json")
    assert served_doc == orjson.loads(orjson.dumps(SPEC.doc))


# Real requests, each answer checked against the document by `call`


async def test_public_routes_answer_as_documented(client: TestClient) -> None:
    await expect(client, 200, "GET", "/health")
    status = await expect(client, 200, "GET", "/v1/status")
    assert status["deployment"]["chainId"] == status["chain"]["chainId"]
    metrics = await expect(client, 200, "GET", "/metrics")
    assert b"inftd_http_requests" in metrics

    agent = "/v1/agents/{token_id}"
    assert (await expect(client, 200, "GET", agent, path={"token_id": "1"}))["owner"] == (
        BUYER.address
    )
    for missing in ("999", str(2**64)):
        body = await expect(client, 404, "GET", agent, path={"token_id": missing})
        assert error_code(body) == "unknown_agent"
    for bad in ("abc", "9" * 80, "-1"):
        body = await expect(client, 400, "GET", agent, path={"token_id": bad})
        assert error_code(body) == "bad_token_id"


async def test_sign_in_answers_as_documented(client: TestClient) -> None:
    nonce = "/v1/auth/nonce"
    issued = await expect(client, 200, "GET", nonce, params={"address": BUYER.address})
    for params in ({"address": "0x1234"}, {}):
        assert error_code(await expect(client, 400, "GET", nonce, params=params)) == "bad_address"

    login = "/v1/auth/login"
    assert error_code(await expect(client, 400, "POST", login, data=b"{no")) == "malformed_json"
    assert error_code(await expect(client, 400, "POST", login, json={"message": 1})) == (
        "bad_request"
    )
    garbage = {"message": "hello", "signature": "0x" + "00" * 65}
    assert error_code(await expect(client, 401, "POST", login, json=garbage)) == (
        "malformed_message"
    )
    forged = {"message": issued["message"], "signature": sign(issued["message"], FRIEND.key)}
    assert error_code(await expect(client, 401, "POST", login, json=forged)) == "bad_signature"
    message = (await nonce_for(client, BUYER.address))["message"]
    good = {"message": message, "signature": sign(message, BUYER.key)}
    await expect(client, 200, "POST", login, json=good)
    assert error_code(await expect(client, 401, "POST", login, json=good)) == "nonce_used"


async def test_preferences_answer_as_documented(client: TestClient) -> None:
    owner, friend = await sign_in(client, BUYER), await sign_in(client, FRIEND)
    prefs = "/v1/agents/{token_id}/preferences"
    one = {"token_id": "1"}
    for headers, code in (({}, "unauthenticated"), (bearer("nope"), "invalid_token")):
        body = await expect(client, 401, "PUT", prefs, path=one, json={}, headers=headers)
        assert error_code(body) == code
    body = await expect(client, 403, "PUT", prefs, path=one, json={}, headers=bearer(friend))
    assert error_code(body) == "not_owner"
    body = await expect(
        client, 200, "PUT", prefs, path=one, json={"style": "noir"}, headers=bearer(owner)
    )
    assert body == {"packageTokenId": 1, "preferences": {"style": "noir"}}
    await expect(client, 200, "PUT", prefs, path=one, json={"n": 2}, headers=bearer(OPERATOR_KEY))
    for bad in ([1], {"k": [1]}, {"": 1}, {"k": "\x00"}, {"\x00": 1}):  # NUL: PostgreSQL
        body = await expect(client, 400, "PUT", prefs, path=one, json=bad, headers=bearer(owner))
        assert error_code(body) == "bad_preferences"
    unknown = {"token_id": "999"}
    await expect(client, 404, "PUT", prefs, path=unknown, json={}, headers=bearer(OPERATOR_KEY))
    huge = b'{"k": "' + b"x" * MAX_BODY_BYTES + b'"}'
    body = await expect(
        client, 413, "PUT", prefs, path=one, data=io.BytesIO(huge), headers=bearer(owner)
    )
    assert error_code(body) == "request_entity_too_large"


async def test_owner_webhooks_answer_as_documented(client: TestClient) -> None:
    owner, friend = await sign_in(client, BUYER), await sign_in(client, FRIEND)
    hooks, one = "/v1/agents/{token_id}/webhooks", {"token_id": "1"}
    target = {"url": "http://127.0.0.1:9/hook", "events": ["credits.changed"]}
    created = await expect(client, 201, "POST", hooks, path=one, json=target, headers=bearer(owner))
    await expect(client, 403, "POST", hooks, path=one, json=target, headers=bearer(friend))
    await expect(client, 401, "POST", hooks, path=one, json=target)
    refused: tuple[tuple[Any, str], ...] = (
        ([], "bad_request"),
        ({"url": "ftp://x/"}, "bad_url"),
        ({"url": "http://127.0.0.1:9/\x00"}, "bad_url"),
        ({"url": "http://127.0.0.1:9/", "events": ["a\x00"]}, "bad_events"),
    )
    for bad, code in refused:
        body = await expect(client, 400, "POST", hooks, path=one, json=bad, headers=bearer(owner))
        assert error_code(body) == code
    listed = await expect(client, 200, "GET", hooks, path=one, headers=bearer(owner))
    assert [w["id"] for w in listed["webhooks"]] == [created["id"]]
    dead = hooks + "/dead-letters"
    assert await expect(client, 200, "GET", dead, path=one, headers=bearer(owner)) == {
        "deadLetters": []
    }
    await expect(client, 404, "GET", dead, path={"token_id": "7"}, headers=bearer(owner))
    item = hooks + "/{webhook_id}"
    odd_ids = ("\x00", "not-a-uuid", "urn:uuid:" + created["id"], created["id"].replace("-", ""))
    for odd in odd_ids:  # only the hyphenated form is a webhook id
        path = {**one, "webhook_id": odd}
        body = await expect(client, 400, "DELETE", item, path=path, headers=bearer(owner))
        assert error_code(body) == "bad_webhook_id"
    unknown = {**one, "webhook_id": "00000000-0000-4000-8000-000000000000"}
    body = await expect(client, 404, "DELETE", item, path=unknown, headers=bearer(owner))
    assert error_code(body) == "unknown_webhook"
    upper = {**one, "webhook_id": created["id"].upper()}  # a UUID in any case: the same one
    await expect(client, 204, "DELETE", item, path=upper, headers=bearer(owner))
    gone = {**one, "webhook_id": created["id"]}
    body = await expect(client, 404, "DELETE", item, path=gone, headers=bearer(owner))
    assert error_code(body) == "unknown_webhook"


def purchase_logs(chain: Anvil, deployment: Deployment) -> list[dict[str, Any]]:
    contracts = Contracts(chain.url, deployment)
    contracts.buy(0)
    head = hex(contracts.head())
    logs: list[dict[str, Any]] = rpc_call(
        chain.url,
        "eth_getLogs",
        [{"fromBlock": head, "toBlock": head, "address": deployment.package_address}],
    )
    return logs


async def test_the_chain_webhook_answers_as_documented(
    client: TestClient,
    chain: Anvil,
    deployment: Deployment,
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = "/v1/webhooks/chain"
    logs = purchase_logs(chain, deployment)
    forged = [logs[0], {**logs[1], "data": logs[1]["data"][:-4] + "ffff"}]
    body = orjson.dumps({"logs": forged})
    rejected = await expect(client, 422, "POST", path, data=body, headers=signed(body))
    assert [r["status"] for r in rejected["results"]] == ["held", "rejected"]

    body, stamp = orjson.dumps({"logs": logs}), int(time.time())
    accepted = await expect(client, 200, "POST", path, data=body, headers=signed(body, stamp))
    assert accepted["accepted"] == 2
    await expect(client, 409, "POST", path, data=body, headers=signed(body, stamp))
    await expect(client, 401, "POST", path, data=body)
    await expect(client, 401, "POST", path, data=body, headers=signed(body, secret="wrong"))
    unreadable = orjson.dumps({"logs": [{**logs[1], "transactionHash": "0xzz"}]})
    for bad in (b"{no", b'{"logs": []}', b"[1]", unreadable):
        await expect(client, 400, "POST", path, data=bad, headers=signed(bad))
    huge = b'{"logs": [' + b" " * MAX_BODY_BYTES + b"]}"
    await expect(client, 413, "POST", path, data=io.BytesIO(huge), headers=signed(huge))

    monkeypatch.delenv("INFTD_WEBHOOK_SECRET")
    async with api_client(settings_for(chain, tmp_path, database_url), deployment) as off:
        body = await expect(off, 503, "POST", path, data=b"{}")
        assert error_code(body) == "webhook_disabled"


async def frames_of(client: TestClient, opened: dict[str, Any]) -> Draft202012Validator:
    """A validator of the frames a server sends on the socket whose 101 is ``opened``: the
    messages of the AsyncAPI channel it names, as the served document has them."""
    link = opened["x-asyncapi"]
    assert link["document"] == asyncapi.PATH
    document = await expect(client, 200, "GET", link["document"])

    def resolve(ref: str) -> Any:
        node = document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        return node

    sent = {asyncapi.wire_type(model) for model in asyncapi.SERVER_FRAMES}
    named = [resolve(m["$ref"]) for m in resolve(link["channel"])["messages"].values()]
    served = [message["payload"] for message in named if message["name"] in sent]
    assert len(served) == len(sent)
    return Draft202012Validator({"oneOf": served, "components": document["components"]})


async def test_websockets_answer_as_documented(client: TestClient) -> None:
    agent_ws, one = "/v1/agents/{token_id}/ws", {"token_id": "1"}
    opened = SPEC.resolve(SPEC.operation("GET", agent_ws).spec["responses"]["101"])
    frames = await frames_of(client, opened)
    async with client.ws_connect("/v1/agents/1/ws") as ws:  # the handshake succeeded: a 101
        SPEC.check(SPEC.operation("GET", agent_ws), 101, "", b"")
        commands = [
            {"type": "ping"},
            {"type": "subscribe", "tokenId": 999},
            {"type": "subscribe", "tokenId": 2**63},  # beyond the BIGINT column
            {"type": "unsubscribe", "tokenId": 1},
            {"type": "x"},
        ]
        for command in commands:
            await ws.send_json(command)
        for _ in range(1 + len(commands)):  # the snapshot, then one answer per command
            frames.validate(await asyncio.wait_for(ws.receive_json(), 10))
    async with client.ws_connect("/v1/ws", headers=bearer(OPERATOR_KEY)):
        SPEC.check(SPEC.operation("GET", "/v1/ws"), 101, "", b"")

    assert error_code(await expect(client, 400, "GET", agent_ws, path=one)) == "bad_request"
    params = {"since": "x"}
    assert error_code(await expect(client, 400, "GET", agent_ws, path=one, params=params)) == (
        "bad_since"
    )
    await expect(client, 404, "GET", agent_ws, path={"token_id": "999"})
    await expect(client, 401, "GET", agent_ws, path=one, params={"access_token": "nope"})
    friend = await sign_in(client, FRIEND)
    body = await expect(client, 401, "GET", "/v1/ws", headers=bearer(friend))
    assert error_code(body) == "unauthenticated"
    await expect(client, 400, "GET", "/v1/ws", headers=bearer(OPERATOR_KEY))  # no handshake
    for since in ("-1", "1.5", "²", str(2**63)):  # a seq is a BIGINT in decimal digits
        body = await expect(client, 400, "GET", agent_ws, path=one, params={"since": since})
        assert error_code(body) == "bad_since"
        body = await expect(
            client, 400, "GET", "/v1/ws", params={"since": since}, headers=bearer(OPERATOR_KEY)
        )
        assert error_code(body) == "bad_since"


async def test_the_rate_limit_answers_as_documented(client: TestClient) -> None:
    client.app[RATE_LIMITER].per_ip = TokenBuckets(rate=0.001, burst=1)
    await expect(client, 200, "GET", "/v1/status")
    limited = await call(client, "GET", "/v1/status")
    assert limited.status == 429
    assert error_code(limited.body) == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1
    await expect(client, 200, "GET", "/health")  # exempt


# Requests generated from the document


@dataclass(frozen=True)
class Generated:
    op: Operation
    url: str
    params: dict[str, str]
    headers: dict[str, str]
    body: bytes | None


def mostly(usual: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``usual`` three times in four: documented values reach the handlers' own logic."""
    return st.one_of(usual, usual, usual, other)


class RequestGenerator:
    """Requests for every operation: mostly values from its schemas, else odd values, any
    JSON or bytes; with each credential (or webhook signature) its security names, a bad
    one, or none."""

    def __init__(self, spec: Spec, owner: str, friend: str) -> None:
        self.spec = spec
        self.values = SchemaStrategies(spec)
        self.credentials = st.sampled_from((owner, OPERATOR_KEY, friend, None, "not-a-token"))

    def requests(self) -> st.SearchStrategy[Generated]:
        return st.one_of(*(self._for(op) for op in self.spec.operations()))

    def _for(self, op: Operation) -> st.SearchStrategy[Generated]:
        params = [self.spec.resolve(p) for p in op.spec.get("parameters", ())]
        path = {p["name"]: self._value(p["schema"], 1) for p in params if p["in"] == "path"}
        query = {p["name"]: self._value(p["schema"], 0) for p in params if p["in"] == "query"}
        return st.builds(
            self._assemble,
            st.just(op),
            st.fixed_dictionaries(path),
            st.fixed_dictionaries({}, optional=query),
            self._body(op),
            self._auth(op),
        )

    def _value(self, schema: dict[str, Any], min_size: int) -> st.SearchStrategy[str]:
        odd = st.text(min_size=min_size, max_size=20) | st.sampled_from(ODD_VALUES)
        # Path and query values are text: an integer parameter's numbers are sent in decimal.
        documented = self.values.of(schema).map(lambda value: str(value))
        return mostly(documented, odd).filter(routable)

    def _body(self, op: Operation) -> st.SearchStrategy[bytes | None]:
        if "requestBody" not in op.spec:
            return st.none()
        schema = op.spec["requestBody"]["content"]["application/json"]["schema"]
        other = ANY_JSON.map(orjson.dumps) | st.binary(max_size=64)
        return mostly(self.values.of(schema).map(orjson.dumps), other)

    def _auth(self, op: Operation) -> st.SearchStrategy[tuple[str, str | None]]:
        """(how, credential): how is where the credential goes, or a kind of signature."""
        schemes = {name for requirement in op.spec.get("security", ()) for name in requirement}
        if "webhookSignature" in schemes:
            return st.tuples(
                mostly(st.just("signed"), st.sampled_from(sorted(SIGNATURES))), st.none()
            )
        places = ("header", "query") if "accessToken" in schemes else ("header",)
        return st.tuples(st.sampled_from(places), self.credentials)

    def _assemble(
        self,
        op: Operation,
        path: dict[str, str],
        query: dict[str, str],
        body: bytes | None,
        auth: tuple[str, str | None],
    ) -> Generated:
        how, credential = auth
        headers: dict[str, str] = {}
        if how in SIGNATURES:
            headers = SIGNATURES[how](body or b"")
        elif credential is not None and how == "query":
            query = {**query, "access_token": credential}
        elif credential is not None:
            headers = bearer(credential)
        return Generated(op, op.url(path), query, headers, body)


SIGNATURES: dict[str, Callable[[bytes], dict[str, str]]] = {
    "signed": signed,
    "stale": lambda body: signed(body, int(time.time()) - 3600),
    "odd": lambda body: {TIMESTAMP_HEADER: "²", SIGNATURE_HEADER: "sha256=00"},
    "unsigned": lambda body: {},
}


async def send(client: TestClient, request: Generated) -> tuple[int, str, bytes]:
    method, url = request.op.method, request.url
    async with client.request(
        method, url, params=request.params, headers=request.headers, data=request.body
    ) as response:
        return response.status, response.content_type, await response.read()


async def test_generated_requests_get_documented_answers(client: TestClient) -> None:
    """Hypothesis draws requests from the document; each answer must be documented and
    never a 5xx. It runs in a thread; the requests go through the test's event loop."""
    loop = asyncio.get_running_loop()
    owner, friend = await sign_in(client, BUYER), await sign_in(client, FRIEND)
    requests = RequestGenerator(SPEC, owner, friend).requests()

    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(request=requests)
    def answers_are_documented(request: Generated) -> None:
        future = asyncio.run_coroutine_threadsafe(send(client, request), loop)
        status, media, body = future.result(timeout=30)
        described = f"{request.op.method} {request.url} {request.params} {request.body!r:.200}"
        assert status < 500, f"{described} -> {status} {body[:300]!r}"
        SPEC.check(request.op, status, media, body)

    await asyncio.to_thread(answers_are_documented)
