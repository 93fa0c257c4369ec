"""Push notifications: signed deliveries with retries against a local receiver, dead letters,
and the targets refused: redirects, names that rebind to a private address, IP literals."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import Webhook, WebhookVerificationError

from inftd.agents.events import NewEvent, record_events
from inftd.daemon.cli.devnet import BUYER, FRIEND, Anvil
from inftd.daemon.config import PushSettings, Settings
from inftd.daemon.errors import ConfigError
from inftd.daemon.events.push import (
    SEND_BATCH,
    PushDispatcher,
    PushTargetError,
    check_target,
    push_cursor,
    signature,
)
from inftd.daemon.server.app import api_document
from inftd.indexer.deployment import Deployment
from inftd.store.db import create_async
from inftd.store.models import Agent, PushDelivery, PushSubscription
from tests.support.api import api_client, bearer, runtime_of, sign_in
from tests.support.contracts import Contracts
from tests.support.openapi import Spec
from tests.support.schema import at_head

SPEC = Spec(api_document())


class Receiver:
    """A local webhook receiver that answers 500 to the first ``failures`` calls."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.server = TestServer(web.Application())
        self.server.app.router.add_post("/hook", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        self.calls.append((dict(request.headers), await request.read()))
        return web.Response(status=500 if len(self.calls) <= self.failures else 200)

    async def __aenter__(self) -> Receiver:
        await self.server.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.server.close()

    @property
    def url(self) -> str:
        return str(self.server.make_url("/hook"))


@pytest.fixture
async def client(
    chain: Anvil, deployment: Deployment, tmp_path: Path, database_url: str
) -> AsyncIterator[TestClient]:
    settings = Settings.load(
        data_dir=tmp_path,
        database_url=database_url,
        chain={"rpc_urls": [chain.url]},
        push={"allow_private_targets": True, "backoff_base": 0.01, "max_attempts": 4},
    )
    Contracts(chain.url, deployment).buy(0)
    async with api_client(settings, deployment) as client:
        await runtime_of(client).indexer.sync_once()
        yield client


async def subscribe(client: TestClient, url: str, token: str) -> dict[str, Any]:
    response = await client.post("/v1/agents/1/webhooks", json={"url": url}, headers=bearer(token))
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def publish(client: TestClient, kind: str, private: bool = False) -> None:
    async with runtime_of(client).engine.begin() as conn:
        await record_events(conn, [NewEvent(kind, 1, {"n": 1}, private)])


async def run_passes(dispatcher: PushDispatcher, until: Any, passes: int = 200) -> None:
    async with dispatcher.session() as session:
        for _ in range(passes):
            await dispatcher.pass_once(session)
            if until():
                return
            await asyncio.sleep(0.02)
    raise AssertionError("the dispatcher did not get there")


async def one_pass(dispatcher: PushDispatcher) -> None:
    async with dispatcher.session() as session:
        await dispatcher.pass_once(session)


async def test_a_failing_receiver_gets_the_event_after_retries(client: TestClient) -> None:
    token = await sign_in(client, BUYER)
    async with Receiver(failures=2) as receiver:
        url = receiver.url
        created = await subscribe(client, url, token)
        await publish(client, "credits.changed")
        runtime = runtime_of(client)
        dispatcher = PushDispatcher(runtime.engine, runtime.settings.push)
        await run_passes(dispatcher, lambda: len(receiver.calls) == 3)
    assert created["secret"].startswith("whsec_")
    headers, body = receiver.calls[-1]
    # The Standard Webhooks verifier, as a receiver runs it, takes the signature and the id
    assert Webhook(created["secret"]).verify(body, headers)["event"] == "credits.changed"
    forged = dict(headers) | {"webhook-id": str(int(headers["webhook-id"]) + 1)}
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(created["secret"]).verify(body, forged)
    pushed = SPEC.doc["webhooks"]["agentEvent"]["post"]  # the document says what arrives
    SPEC.validate(
        orjson.loads(body), pushed["requestBody"]["content"]["application/json"]["schema"]
    )
    assert {p["name"] for p in pushed["parameters"]} <= set(headers)
    ids = {call[0]["webhook-id"] for call in receiver.calls}
    assert ids == {headers["X-Inftd-Delivery"]}  # one delivery: one id on every retry
    # The deprecated headers still verify, for one release
    expected = signature(created["secret"], headers["X-Inftd-Timestamp"], body)
    assert headers["X-Inftd-Signature"] == expected
    assert headers["X-Inftd-Event"] == "credits.changed"
    assert all(call[1] == body for call in receiver.calls)  # the same event each time
    listed = await (await client.get("/v1/agents/1/webhooks", headers=bearer(token))).json()
    assert listed["webhooks"][0]["url"] == url
    assert "secret" not in listed["webhooks"][0]


async def test_after_a_sale_the_sellers_webhook_gets_no_private_event(
    client: TestClient, chain: Anvil, deployment: Deployment
) -> None:
    """Invariant 5 for push: the seller's subscription keeps the public events of the agent
    it sold, and no private one from the sale on."""
    token = await sign_in(client, BUYER)
    runtime = runtime_of(client)
    dispatcher = PushDispatcher(runtime.engine, runtime.settings.push)
    async with Receiver(failures=0) as receiver:
        await subscribe(client, receiver.url, token)
        await publish(client, "memory.added", private=True)  # still the owner's: delivered
        await run_passes(dispatcher, lambda: len(receiver.calls) == 1)
        Contracts(chain.url, deployment).transfer(1, FRIEND.address)
        await runtime.indexer.sync_once()
        await publish(client, "learning.updated", private=True)
        await publish(client, "credits.changed")
        await run_passes(dispatcher, lambda: "credits.changed" in _kinds(receiver))
        await run_passes(dispatcher, lambda: True)  # one more pass: nothing else was due
    kinds = _kinds(receiver)
    assert kinds[0] == "memory.added"
    assert "learning.updated" not in kinds


def _kinds(receiver: Receiver) -> list[str]:
    return [headers["X-Inftd-Event"] for headers, _ in receiver.calls]


async def test_a_secret_from_before_whsec_verifies_as_its_bytes(client: TestClient) -> None:
    legacy = "QmFkUGFkZGluZy1fXw"  # as secrets.token_urlsafe made them
    async with Receiver(failures=0) as receiver:
        token = await sign_in(client, BUYER)
        created = await subscribe(client, receiver.url, token)
        runtime = runtime_of(client)
        async with runtime.engine.begin() as conn:
            await conn.execute(
                update(PushSubscription)
                .where(PushSubscription.id == created["id"])
                .values(secret=legacy)
            )
        await publish(client, "credits.changed")
        dispatcher = PushDispatcher(runtime.engine, runtime.settings.push)
        await run_passes(dispatcher, lambda: len(receiver.calls) == 1)
    headers, body = receiver.calls[0]
    assert Webhook(legacy.encode()).verify(body, headers)["event"] == "credits.changed"


class Redirecting:
    """A receiver on loopback that answers 302 to an address of its own: the internal
    service a redirect would reach."""

    def __init__(self) -> None:
        self.hook_calls = 0
        self.internal_calls = 0
        self.server = TestServer(web.Application())
        self.server.app.router.add_post("/hook", self.hook)
        self.server.app.router.add_route("*", "/internal", self.internal)

    async def hook(self, request: web.Request) -> web.Response:
        self.hook_calls += 1
        raise web.HTTPFound(str(self.server.make_url("/internal")))

    async def internal(self, request: web.Request) -> web.Response:
        self.internal_calls += 1
        return web.Response(text="metadata")


async def test_a_redirect_is_a_failed_delivery_never_followed(client: TestClient) -> None:
    token = await sign_in(client, BUYER)
    receiver = Redirecting()
    await receiver.server.start_server()
    try:
        await subscribe(client, str(receiver.server.make_url("/hook")), token)
        await publish(client, "credits.changed")
        runtime = runtime_of(client)
        dispatcher = PushDispatcher(runtime.engine, runtime.settings.push)
        await run_passes(dispatcher, lambda: receiver.hook_calls == 4)  # max_attempts
    finally:
        await receiver.server.close()
    assert receiver.internal_calls == 0
    letters = await (
        await client.get("/v1/agents/1/webhooks/dead-letters", headers=bearer(token))
    ).json()
    (letter,) = letters["deadLetters"]
    assert (letter["attempts"], letter["lastStatus"]) == (4, 302)
    assert letter["lastError"] == "HTTP 302: redirects are not followed"


PUBLIC = "93.184.215.14"  # a global address; nothing here connects to it


class Rebinding(AbstractResolver):
    """A name's DNS as a rebinding attacker runs it: a public address on the first lookup,
    loopback on every one after."""

    def __init__(self) -> None:
        self.lookups = 0

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups += 1
        address = PUBLIC if self.lookups == 1 else "127.0.0.1"
        answer: ResolveResult = {
            "hostname": host,
            "host": address,
            "port": port,
            "family": socket.AF_INET,
            "proto": 0,
            "flags": socket.AI_NUMERICHOST,
        }
        return [answer]

    async def close(self) -> None:
        pass


class Unresolvable(AbstractResolver):
    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async def close(self) -> None:
        pass


async def _attempts(client: TestClient) -> list[Any]:
    async with runtime_of(client).engine.connect() as conn:
        return list(await conn.execute(select(PushDelivery)))


async def test_a_name_that_rebinds_to_loopback_is_refused_where_it_connects(
    client: TestClient,
) -> None:
    token = await sign_in(client, BUYER)
    runtime = runtime_of(client)
    strict = runtime.settings.push.model_copy(update={"allow_private_targets": False})
    dns = Rebinding()
    async with Receiver(failures=0) as receiver:
        url = f"http://rebind.example:{receiver.server.port}/hook"
        await check_target(url, False, dns)  # the registration's lookup: a public address
        await subscribe(client, url, token)
        await publish(client, "credits.changed")
        dispatcher = PushDispatcher(runtime.engine, strict, resolver=lambda: dns)
        await one_pass(dispatcher)
        (row,) = await _attempts(client)
        assert (row.attempts, row.status) == (1, "pending")
        assert row.last_error == "rebind.example resolves to a non-public address (127.0.0.1)"
        assert receiver.calls == []

        # The same name and the same answers with private targets allowed: the loopback
        # receiver gets it, so what was refused above was the address connected to.
        allowing = PushDispatcher(runtime.engine, runtime.settings.push, resolver=lambda: dns)
        await run_passes(allowing, lambda: len(receiver.calls) == 1)
    assert dns.lookups >= 3


async def test_a_private_ip_literal_is_refused_at_each_send(client: TestClient) -> None:
    """Registered while private targets were allowed; refused once they are not. aiohttp
    does not resolve an IP literal, so the resolver cannot see it: the send checks the URL."""
    token = await sign_in(client, BUYER)
    runtime = runtime_of(client)
    strict = runtime.settings.push.model_copy(update={"allow_private_targets": False})
    async with Receiver(failures=0) as receiver:
        await subscribe(client, receiver.url, token)
        await publish(client, "credits.changed")
        dispatcher = PushDispatcher(runtime.engine, strict)
        await one_pass(dispatcher)
        assert receiver.calls == []
    (row,) = await _attempts(client)
    assert row.last_error == "127.0.0.1 resolves to a non-public address (127.0.0.1)"
    assert row.last_status is None


async def test_registration_refuses_names_that_answer_a_private_address() -> None:
    with pytest.raises(PushTargetError, match=r"localhost resolves to a non-public address"):
        await check_target("http://localhost:9/x", False)
    with pytest.raises(PushTargetError, match=r"cannot resolve nowhere\.example: Name or service"):
        await check_target("http://nowhere.example/x", False, Unresolvable())
    await check_target("http://localhost:9/x", True)  # allowed: no lookup at all


async def test_a_receiver_that_keeps_failing_leaves_a_dead_letter(client: TestClient) -> None:
    token = await sign_in(client, BUYER)
    async with Receiver(failures=1000) as receiver:
        await subscribe(client, receiver.url, token)
        await publish(client, "mint.confirmed")
        runtime = runtime_of(client)
        dispatcher = PushDispatcher(runtime.engine, runtime.settings.push)
        await run_passes(dispatcher, lambda: len(receiver.calls) == 4)
        await asyncio.sleep(0.2)
        await one_pass(dispatcher)
        assert len(receiver.calls) == 4  # no fifth try
    letters = await (
        await client.get("/v1/agents/1/webhooks/dead-letters", headers=bearer(token))
    ).json()
    (letter,) = letters["deadLetters"]
    assert (letter["event"], letter["attempts"], letter["lastStatus"]) == ("mint.confirmed", 4, 500)


async def test_only_the_owner_registers_and_only_public_http_urls(
    chain: Anvil, deployment: Deployment, tmp_path: Path, client: TestClient
) -> None:
    stranger = await sign_in(client, FRIEND)
    response = await client.post(
        "/v1/agents/1/webhooks", json={"url": "https://example.com/h"}, headers=bearer(stranger)
    )
    assert response.status == 403
    owner = await sign_in(client, BUYER)
    for url in ("ftp://example.com/x", "https://user:pw@example.com/", "not a url"):
        response = await client.post(
            "/v1/agents/1/webhooks", json={"url": url}, headers=bearer(owner)
        )
        assert response.status == 400, url
        assert (await response.json())["error"]["code"] == "bad_url"

    strict = Settings.load(data_dir=tmp_path / "strict", chain={"rpc_urls": [chain.url]})
    async with api_client(strict, deployment) as guarded:
        await runtime_of(guarded).indexer.sync_once()
        token = await sign_in(guarded, BUYER)
        for url in ("http://127.0.0.1:9/x", "http://10.1.2.3/x", "http://[::1]/x"):
            response = await guarded.post(
                "/v1/agents/1/webhooks", json={"url": url}, headers=bearer(token)
            )
            assert response.status == 400, url
            assert "non-public" in (await response.json())["error"]["message"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"url": "https://example.com/a b"}, "bad_url"),  # a URI has no spaces
        ({"url": "https://bücher.example/h"}, "bad_url"),  # nor other than ASCII: punycode it
        ({"url": "https://example.com/" + "x" * 2048}, "bad_url"),
        ({"url": 7}, "bad_url"),
        ({"url": "https://example.com/h", "events": ["crédits"]}, "bad_events"),
        ({"url": "https://example.com/h", "events": ["x" * 65]}, "bad_events"),
        ({"url": "https://example.com/h", "events": [""]}, "bad_events"),
        ({"url": "https://example.com/h", "events": ["e"] * 33}, "bad_events"),
        ({"url": "https://example.com/h", "events": None}, "bad_events"),
        ({"url": "https://example.com/h", "secret": "mine"}, "bad_request"),  # closed
        ({"events": []}, "bad_request"),
    ],
)
async def test_a_subscription_out_of_bounds_is_refused(
    client: TestClient, body: dict[str, Any], code: str
) -> None:
    owner = await sign_in(client, BUYER)
    response = await client.post("/v1/agents/1/webhooks", json=body, headers=bearer(owner))
    assert response.status == 400, body
    assert (await response.json())["error"]["code"] == code
    listed = await client.get("/v1/agents/1/webhooks", headers=bearer(owner))
    assert (await listed.json())["webhooks"] == []


async def test_event_types_are_kept_once_in_order(client: TestClient) -> None:
    owner = await sign_in(client, BUYER)
    body = {"url": "https://example.com/h", "events": ["b.x", "a.y", "b.x"]}
    response = await client.post("/v1/agents/1/webhooks", json=body, headers=bearer(owner))
    assert response.status == 201, await response.text()
    created = await response.json()
    assert created["events"] == ["a.y", "b.x"]
    assert set(created) == {"id", "url", "events", "active", "createdAt", "secret"}


@pytest.fixture
async def engines(database_url: str) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """Two engines on one migrated database with agent 1, a subscription, the push cursor."""
    at_head(database_url)
    one, two = create_async(database_url), create_async(database_url)
    owner = "0x" + "11" * 20
    async with one.begin() as conn:
        await conn.execute(
            insert(Agent).values(
                token_id=1, package_type=0, owner=owner, created_block=1, owner_since_block=1
            )
        )
        await conn.execute(
            insert(PushSubscription).values(
                id=str(uuid.uuid4()), token_id=1, url="http://x/", secret="s", created_by=owner
            )
        )
        await push_cursor(conn)
    yield one, two
    await one.dispose()
    await two.dispose()


async def test_dispatchers_claim_disjoint_deliveries_until_a_lease_expires(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    settings = PushSettings(timeout=1, lease=30)
    first, second = (PushDispatcher(engine, settings) for engine in engines)
    async with engines[0].begin() as conn:
        events = [NewEvent("credits.changed", 1, {"n": n}) for n in range(SEND_BATCH + 10)]
        await record_events(conn, events)
    assert await first.enqueue() == len(events)
    assert await second.enqueue() == 0  # the cursor moved past them
    held = {row.id for row in await first.claim_due()}
    rest = {row.id for row in await second.claim_due()}
    assert (len(held), len(rest), held & rest) == (SEND_BATCH, 10, set())
    assert await first.claim_due() == []  # every delivery is leased

    # The first dispatcher's leases run out (as if it died): the second takes them over.
    past = datetime(2000, 1, 1, tzinfo=UTC)
    async with engines[0].begin() as conn:
        await conn.execute(
            update(PushDelivery).where(PushDelivery.id.in_(held)).values(lease_expires_at=past)
        )
    taken = await second.claim_due()
    assert {row.id for row in taken} == held
    await first._record(taken[0], 200, None)  # too late: its lease is gone, nothing changes
    await second._record(taken[1], 200, None)
    async with engines[1].connect() as conn:
        rows = {r.id: r for r in await conn.execute(select(PushDelivery))}
    assert (rows[taken[0].id].status, rows[taken[0].id].attempts) == ("pending", 0)
    assert rows[taken[1].id].status == "delivered"
    assert rows[taken[1].id].lease_owner == second.name


def test_a_lease_must_outlast_an_attempt() -> None:
    with pytest.raises(ConfigError, match=r"push: .*lease must exceed timeout"):
        Settings.load(push={"timeout": 10, "lease": 10})
