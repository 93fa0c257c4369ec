"""Rate limits: the buckets themselves, then the middleware over the real app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, make_mocked_request

from inftd.daemon.cli.devnet import BUYER, FRIEND, Anvil
from inftd.daemon.config import Settings
from inftd.daemon.server.ratelimits import SWEEP_INTERVAL, TokenBuckets, client_key, retry_after
from inftd.indexer.deployment import Deployment
from tests.support.api import api_client, bearer, sign_in

OPERATOR_KEY = "op-key-limits-0123456789"


def test_a_bucket_holds_a_burst_then_refills_at_its_rate() -> None:
    buckets = TokenBuckets(rate=2, burst=4)
    assert [buckets.take("a", 0.0) for _ in range(4)] == [0.0] * 4
    assert buckets.take("a", 0.0) == pytest.approx(0.5)
    assert buckets.take("b", 0.0) == 0.0  # other clients are unaffected
    assert buckets.take("a", 0.5) == 0.0  # one token back after 1/rate seconds
    assert buckets.take("a", 0.5) == pytest.approx(0.5)
    assert [buckets.take("a", 100.0) for _ in range(4)] == [0.0] * 4  # never above the burst
    assert buckets.take("a", 100.0) > 0


def test_a_refused_request_takes_no_token() -> None:
    buckets = TokenBuckets(rate=1, burst=1)
    assert buckets.take("a", 0.0) == 0.0
    for _ in range(10):
        assert buckets.take("a", 0.5) == pytest.approx(0.5)
    assert buckets.take("a", 1.0) == 0.0


def test_a_slow_rate_still_lets_one_request_through() -> None:
    buckets = TokenBuckets(rate=0.1, burst=0.2)
    assert buckets.take("a", 0.0) == 0.0
    assert buckets.take("a", 0.0) == pytest.approx(10.0)


def test_idle_buckets_are_evicted() -> None:
    buckets = TokenBuckets(rate=1, burst=2)
    buckets.take("old", 0.0)
    buckets.take("busy", SWEEP_INTERVAL - 1)
    buckets.take("new", SWEEP_INTERVAL + 0.5)  # sweeps: "old" is full again, "busy" is not
    assert len(buckets) == 2
    buckets.take("new", 3 * SWEEP_INTERVAL)
    assert len(buckets) == 1


def test_retry_after_is_whole_seconds_and_at_least_one() -> None:
    assert [retry_after(w) for w in (0.001, 0.5, 1.0, 1.2, 59.9)] == [1, 1, 1, 2, 60]


def test_ipv6_clients_are_counted_per_64() -> None:
    def key(remote: str) -> str:
        request = make_mocked_request("GET", "/", transport=_Transport(remote))
        return client_key(request)

    assert key("192.0.2.7") == "192.0.2.7"
    assert key("2001:db8:1:2:3:4:5:6") == key("2001:db8:1:2:ffff::1") == "2001:db8:1:2::/64"
    assert key("2001:db8:1:3::1") != key("2001:db8:1:2::1")


class _Transport:
    def __init__(self, remote: str) -> None:
        self.remote = remote

    def get_extra_info(self, name: str, default: object = None) -> object:
        return (self.remote, 1234) if name == "peername" else default

    def is_closing(self) -> bool:
        return False


@pytest.fixture
async def client(
    chain: Anvil,
    deployment: Deployment,
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[TestClient]:
    monkeypatch.setenv("INFTD_OPERATOR_API_KEY", OPERATOR_KEY)
    settings = Settings.load(
        data_dir=tmp_path,
        database_url=database_url,
        chain={"rpc_urls": [chain.url]},
        api={"rate_per_ip": 1000, "rate_per_address": 1},
    )
    async with api_client(settings, deployment) as client:
        yield client


async def test_a_signed_in_address_over_its_rate_gets_429(client: TestClient) -> None:
    buyer, friend = bearer(await sign_in(client, BUYER)), bearer(await sign_in(client, FRIEND))
    for _ in range(2):  # the burst: twice the rate
        assert (await client.get("/v1/agents/1", headers=buyer)).status == 404
    response = await client.get("/v1/agents/1", headers={**buyer, "X-Request-Id": "req-429"})
    assert response.status == 429
    assert response.headers["Retry-After"] == "1"
    assert response.headers["X-Request-Id"] == "req-429"
    body = await response.json()
    assert body["error"]["code"] == "rate_limited"
    assert "retry in 1 s" in body["error"]["message"]
    assert (await client.get("/v1/agents/1", headers=friend)).status == 404  # not limited
    assert (await client.get("/v1/agents/1")).status == 404  # nor the IP
    assert (await client.get("/health", headers=buyer)).status == 200  # exempt
    assert (await client.get("/metrics", headers=buyer)).status == 200


async def test_the_operator_is_not_limited(client: TestClient) -> None:
    for _ in range(10):
        response = await client.get("/v1/agents/1", headers=bearer(OPERATOR_KEY))
        assert response.status == 404


async def test_anonymous_clients_are_limited_per_ip(
    chain: Anvil, deployment: Deployment, tmp_path: Path, database_url: str
) -> None:
    settings = Settings.load(
        data_dir=tmp_path,
        database_url=database_url,
        chain={"rpc_urls": [chain.url]},
        api={"rate_per_ip": 1},
    )
    async with api_client(settings, deployment) as client:
        statuses = [(await client.get("/v1/agents/1")).status for _ in range(3)]
        assert statuses == [404, 404, 429]
        garbage = await client.get("/v1/agents/1", headers=bearer("not-a-token"))
        assert garbage.status == 429  # a bad token counts against the IP
        assert (await client.get("/health")).status == 200
