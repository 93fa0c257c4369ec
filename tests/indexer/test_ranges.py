from __future__ import annotations

import asyncio
import random
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import pytest
from web3 import Web3
from web3.types import TxParams, Wei

from inftd.daemon.cli.devnet import BUYER, Anvil, rpc_call
from inftd.indexer.abi import load_artifact
from inftd.indexer.deployment import Deployment
from inftd.indexer.ranges import AdaptiveRange, fetch_logs_in_order
from inftd.indexer.rpc import ChainRpc, RangeTooLarge, RpcUnavailable
from tests.support.faultproxy import FaultProxy
from tests.support.state import fast_rpc

STARTER_PRICE_WEI = 10**16  # package type 0 in DEFAULT_PACKAGES


Yielded = list[tuple[int, int, list[dict[str, Any]]]]


@dataclass(frozen=True)
class Span:
    """Blocks [start, end] holding package purchases, some several to a block, some empty."""

    start: int
    end: int
    address: str
    logs: list[dict[str, Any]]  # one eth_getLogs over the whole span, straight from Anvil


@pytest.fixture
def span(chain: Anvil, deployment: Deployment) -> Span:
    w3 = Web3(Web3.HTTPProvider(chain.url))
    package = w3.eth.contract(
        address=Web3.to_checksum_address(deployment.package_address),
        abi=load_artifact("INFTPackage").abi,
    )
    start = w3.eth.block_number + 1
    draw = random.Random(7)
    rpc_call(chain.url, "evm_setAutomine", [False])
    try:
        for _ in range(12):
            for _ in range(draw.randint(0, 3)):  # several purchases in one block
                package.functions.purchasePackage(0).transact(
                    TxParams({"from": BUYER.address, "value": Wei(STARTER_PRICE_WEI)})
                )
            rpc_call(chain.url, "anvil_mine", [hex(draw.randint(1, 4))])
    finally:
        rpc_call(chain.url, "evm_setAutomine", [True])
    end = w3.eth.block_number
    query = {"fromBlock": hex(start), "toBlock": hex(end), "address": [deployment.package_address]}
    logs = rpc_call(chain.url, "eth_getLogs", [query])
    assert len({log["blockNumber"] for log in logs}) > 3  # the test data is spread out
    return Span(start, end, deployment.package_address, logs)


async def collect(
    rpc: ChainRpc,
    span: Span,
    sizer: AdaptiveRange,
    concurrency: int = 4,
    into: Yielded | None = None,
) -> Yielded:
    got: Yielded = [] if into is None else into
    ranges = fetch_logs_in_order(
        rpc, span.start, span.end, [span.address], None, sizer, concurrency
    )
    async with aclosing(ranges):
        async for item in ranges:
            got.append(item)
    return got


def assert_contiguous(got: Yielded, start: int) -> None:
    expected = start
    for first, last, logs in got:
        assert first == expected
        assert last >= first
        assert all(first <= int(log["blockNumber"], 16) <= last for log in logs)
        expected = last + 1


def all_logs(got: Yielded) -> list[dict[str, Any]]:
    return [log for _, _, logs in got for log in logs]


def from_block(request: dict[str, Any]) -> int:
    return int(request["params"][0]["fromBlock"], 16)


# --- AdaptiveRange -----------------------------------------------------------------------


def test_grows_while_cheap_up_to_the_maximum() -> None:
    sizer = AdaptiveRange(initial=100, maximum=300, target_logs=1000, target_seconds=2.0)
    sizer.record_success(100, logs=10, seconds=0.1)
    assert sizer.size == 200
    sizer.record_success(200, logs=10, seconds=0.1)
    assert sizer.size == 300


def test_a_short_range_does_not_grow_it() -> None:
    sizer = AdaptiveRange(initial=100)
    sizer.record_success(2, logs=0, seconds=0.01)
    assert sizer.size == 100


def test_stays_within_the_targets() -> None:
    sizer = AdaptiveRange(initial=100, target_logs=1000, target_seconds=2.0)
    sizer.record_success(100, logs=700, seconds=0.1)  # above half the log target
    sizer.record_success(100, logs=10, seconds=1.5)  # above half the time target
    assert sizer.size == 100


@pytest.mark.parametrize(("logs", "seconds"), [(2001, 0.1), (10, 4.1)])
def test_shrinks_when_heavy_or_slow(logs: int, seconds: float) -> None:
    sizer = AdaptiveRange(initial=100, minimum=30, target_logs=1000, target_seconds=2.0)
    sizer.record_success(100, logs=logs, seconds=seconds)
    assert sizer.size == 50
    sizer.record_success(50, logs=logs, seconds=seconds)
    assert sizer.size == 30


def test_too_large_follows_the_suggestion_or_halves() -> None:
    sizer = AdaptiveRange(initial=1000, minimum=4)
    assert sizer.record_too_large(1000, suggested=300) == 300
    assert sizer.size == 300
    assert sizer.record_too_large(300, suggested=None) == 150
    assert sizer.record_too_large(150, suggested=500) == 75  # a useless hint is ignored
    assert sizer.record_too_large(5, suggested=None) == 4


def test_rejects_bad_bounds() -> None:
    with pytest.raises(ValueError, match="minimum"):
        AdaptiveRange(minimum=10, maximum=5)


# --- fetch_logs_in_order -----------------------------------------------------------------


async def test_split_ranges_return_exactly_one_big_get_logs(
    rpc: ChainRpc, proxy: FaultProxy, span: Span
) -> None:
    proxy.max_log_range = 7
    got = await collect(rpc, span, AdaptiveRange(initial=20))
    assert_contiguous(got, span.start)
    assert got[-1][1] == span.end
    assert all_logs(got) == span.logs
    assert proxy.ranges_refused > 0
    assert all(last - first + 1 <= 7 for first, last, _ in got if first > span.start)


async def test_order_is_kept_under_random_delays(anvil: Anvil, span: Span) -> None:
    async with FaultProxy(anvil.url, fault_rate=0.7, seed=1, chaos_kinds=["stall"]) as proxy:
        rpc = fast_rpc([proxy.url])
        try:
            got = await collect(rpc, span, AdaptiveRange(initial=3, maximum=3), concurrency=4)
        finally:
            await rpc.close()
    assert_contiguous(got, span.start)
    assert all_logs(got) == span.logs
    assert proxy.faults_injected["stall"] > 3
    assert 1 < proxy.max_in_flight <= 4


async def test_chaos_still_reads_everything(anvil: Anvil, span: Span) -> None:
    async with FaultProxy(anvil.url, fault_rate=0.4, seed=2) as proxy:
        rpc = fast_rpc([proxy.url], max_attempts=12)
        try:
            got = await collect(rpc, span, AdaptiveRange(initial=2, maximum=2), concurrency=3)
        finally:
            await rpc.close()
    assert all_logs(got) == span.logs
    # Seeded: the n-th request fails or not whatever the timing, so these counts are fixed.
    assert sum(proxy.faults_injected.values()) >= 5
    assert len(proxy.faults_injected) >= 3


async def test_nothing_after_a_failed_range_is_yielded(proxy: FaultProxy, span: Span) -> None:
    cut = span.start + 8
    proxy.only_methods = {"eth_getLogs"}
    proxy.fault_filter = lambda request: from_block(request) >= cut
    proxy.fail_next(1000, "500")
    rpc = fast_rpc([proxy.url], max_attempts=2)
    got: Yielded = []
    try:
        with pytest.raises(RpcUnavailable):
            await collect(rpc, span, AdaptiveRange(initial=4, maximum=4), into=got)
        await asyncio.sleep(0.1)  # a request already on the wire may still arrive
        requests = proxy.requests
        await asyncio.sleep(0.3)
        assert proxy.requests == requests  # the ranges in flight were cancelled, not retried
    finally:
        await rpc.close()
    assert [(first, last) for first, last, _ in got] == [
        (span.start, span.start + 3),
        (span.start + 4, span.start + 7),
    ]


async def test_a_block_refused_alone_raises(rpc: ChainRpc, proxy: FaultProxy, span: Span) -> None:
    proxy.only_methods = {"eth_getLogs"}
    proxy.fail_next(
        1000, "rpc_error", code=-32005, message="query returned more than 10000 results"
    )
    with pytest.raises(RangeTooLarge):
        await collect(rpc, span, AdaptiveRange(initial=4), concurrency=2)


async def test_stopping_early_cancels_the_requests_in_flight(
    rpc: ChainRpc, proxy: FaultProxy, span: Span
) -> None:
    proxy.only_methods = {"eth_getLogs"}
    proxy.fail_next(1000, "stall", seconds=0.05)
    ranges = fetch_logs_in_order(
        rpc, span.start, span.end, [span.address], None, AdaptiveRange(initial=2, maximum=2)
    )
    async with aclosing(ranges):
        first, _, _ = await anext(ranges)
    assert first == span.start
    requests = proxy.requests
    await asyncio.sleep(0.2)
    assert proxy.requests == requests


async def test_an_empty_span_yields_nothing(rpc: ChainRpc, proxy: FaultProxy) -> None:
    ranges = fetch_logs_in_order(rpc, 10, 9, [], None, AdaptiveRange())
    assert [item async for item in ranges] == []
    assert proxy.requests == 0
