from __future__ import annotations

import logging
import time
from typing import Any

import aiohttp
import pytest
from web3 import Web3
from web3.types import TxParams, Wei

from inftd.daemon.cli.devnet import BUYER, Anvil, free_port, rpc_call
from inftd.indexer.abi import load_artifact
from inftd.indexer.deployment import Deployment
from inftd.indexer.rpc import (
    BlockRef,
    ChainRpc,
    RangeTooLarge,
    RpcError,
    RpcResponseError,
    RpcUnavailable,
    classify_error,
    endpoint,
    suggested_range_size,
)
from tests.support.faultproxy import FaultProxy
from tests.support.state import fast_rpc

STARTER_PRICE_WEI = 10**16  # package type 0 in DEFAULT_PACKAGES


def closed_url(path: str = "") -> str:
    return f"http://127.0.0.1:{free_port()}{path}"


def buy_package(url: str, deployment: Deployment) -> str:
    w3 = Web3(Web3.HTTPProvider(url))
    package = w3.eth.contract(
        address=Web3.to_checksum_address(deployment.package_address),
        abi=load_artifact("INFTPackage").abi,
    )
    tx = package.functions.purchasePackage(0).transact(
        TxParams({"from": BUYER.address, "value": Wei(STARTER_PRICE_WEI)})
    )
    return tx.to_0x_hex()


def direct_block(url: str, tag: str = "latest") -> BlockRef:
    raw = rpc_call(url, "eth_getBlockByNumber", [tag, False])
    return BlockRef(
        int(raw["number"], 16), raw["hash"], raw["parentHash"], int(raw["timestamp"], 16)
    )


# --- plain calls -------------------------------------------------------------------------


async def test_reads_match_the_node(rpc: ChainRpc, anvil: Anvil, deployment: Deployment) -> None:
    assert await rpc.chain_id() == int(rpc_call(anvil.url, "eth_chainId"), 16)
    assert await rpc.head_number() == int(rpc_call(anvil.url, "eth_blockNumber"), 16)
    assert await rpc.block("latest") == direct_block(anvil.url)
    assert await rpc.block(deployment.deploy_block) == direct_block(
        anvil.url, hex(deployment.deploy_block)
    )
    assert await rpc.block(10**9) is None
    assert await rpc.code_size(deployment.package_address) > 0
    assert await rpc.code_size(BUYER.address) == 0
    assert await rpc.receipt("0x" + "ab" * 32) is None


async def test_logs_receipt_and_block_hash_filter(
    rpc: ChainRpc, chain: Anvil, deployment: Deployment
) -> None:
    tx_hash = buy_package(chain.url, deployment)
    receipt = await rpc.receipt(tx_hash)
    assert receipt is not None
    assert receipt == rpc_call(chain.url, "eth_getTransactionReceipt", [tx_hash])
    number = int(receipt["blockNumber"], 16)
    logs = await rpc.get_logs(number, number, [deployment.package_address])
    assert logs == receipt["logs"]
    assert len(logs) >= 2  # at least Transfer (the mint) and PackagePurchased
    by_hash = await rpc.get_logs_by_block_hash(receipt["blockHash"], [deployment.package_address])
    assert by_hash == logs
    transfer = logs[0]["topics"][0]
    assert await rpc.get_logs(number, number, [deployment.package_address], [[transfer]]) == [
        log for log in logs if log["topics"][0] == transfer
    ]


async def test_nothing_is_bound_to_a_loop_before_first_use(anvil: Anvil) -> None:
    rpc = ChainRpc([anvil.url])
    await rpc.close()  # closing an unused client is fine
    assert await rpc.chain_id() == 31337
    await rpc.close()


def test_needs_a_url() -> None:
    with pytest.raises(RpcError, match="no RPC URL"):
        ChainRpc([])


async def test_a_given_session_is_used_and_left_open(anvil: Anvil) -> None:
    async with aiohttp.ClientSession() as session:
        rpc = ChainRpc([anvil.url], session=session)
        assert await rpc.head_number() >= 0
        await rpc.close()
        assert not session.closed


# --- retries -----------------------------------------------------------------------------

FAULTS = [
    ("429", {"retry_after": 0}),
    ("500", {}),
    ("502", {}),
    ("stall", {"seconds": 2.0}),  # longer than the client's timeout: the client gives up
    ("stall", {"answer": False}),
    ("truncate", {}),
    ("garbage", {}),
    ("reset", {}),
    ("rpc_error", {"code": -32603, "message": "internal error"}),
    ("rpc_error", {"code": -32000, "message": "header not found"}),
    (
        "rpc_error",
        {"code": -32005, "message": "daily request count exceeded, request rate limited"},
    ),
]


@pytest.mark.parametrize(("kind", "opts"), FAULTS)
async def test_each_fault_is_retried(
    rpc: ChainRpc, proxy: FaultProxy, anvil: Anvil, kind: str, opts: dict[str, Any]
) -> None:
    count = 1 if kind == "stall" else 2  # a stall costs a whole client timeout
    proxy.fail_next(count, kind, **opts)
    assert await rpc.block("latest") == direct_block(anvil.url)
    assert proxy.faults_injected[kind] == count
    assert proxy.requests == count + 1


async def test_retries_are_logged_with_the_host_only(
    rpc: ChainRpc, proxy: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    proxy.fail_next(1, "500")
    with caplog.at_level(logging.WARNING, logger="inftd.indexer.rpc"):
        await rpc.head_number()
    (record,) = caplog.records
    assert "eth_blockNumber" in record.getMessage()
    assert "attempt 1" in record.getMessage()
    assert proxy.url in record.getMessage()


async def test_retry_after_is_honoured(proxy: FaultProxy) -> None:
    rpc = ChainRpc([proxy.url], timeout=2.0, backoff_base=0.01, backoff_max=1.0)
    proxy.fail_next(1, "429", retry_after=1)
    started = time.monotonic()
    try:
        assert await rpc.head_number() >= 0
    finally:
        await rpc.close()
    assert 0.95 <= time.monotonic() - started < 4.0  # capped at backoff_max * 4


async def test_retry_after_is_capped(proxy: FaultProxy, rpc: ChainRpc) -> None:
    proxy.fail_next(1, "429", retry_after=3600)
    started = time.monotonic()
    assert await rpc.head_number() >= 0
    assert time.monotonic() - started < 2.0  # backoff_max 0.05 caps the wait at 0.2 s


async def test_exhausted_retries_name_the_host_but_never_the_url_path(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = closed_url("/secret-key-123?apikey=hush-456")
    rpc = fast_rpc([url], max_attempts=3)
    with caplog.at_level(logging.WARNING), pytest.raises(RpcUnavailable) as caught:
        await rpc.chain_id()
    await rpc.close()
    error = caught.value
    assert (error.method, error.attempts, error.endpoint) == ("eth_chainId", 3, endpoint(url))
    assert "eth_chainId" in str(error)
    assert "3 attempts" in str(error)
    assert endpoint(url) in str(error)
    for secret in ("secret-key-123", "hush-456"):
        assert secret not in str(error)
        assert secret not in caplog.text
    assert len(caplog.records) == 2  # a warning per retry, none for the final failure


async def test_exhausted_on_a_failing_node(proxy: FaultProxy) -> None:
    proxy.fail_next(10, "502")
    rpc = fast_rpc([proxy.url], max_attempts=4)
    with pytest.raises(RpcUnavailable, match="HTTP 502"):
        await rpc.head_number()
    await rpc.close()
    assert proxy.requests == 4


async def test_fails_over_to_the_next_url_and_sticks_to_it(proxy: FaultProxy) -> None:
    rpc = fast_rpc([closed_url("/key"), proxy.url])
    try:
        assert await rpc.chain_id() == 31337
        assert await rpc.head_number() >= 0
        assert proxy.requests == 2  # the second call went straight to the working URL
        proxy.fail_next(1, "500")  # a failure moves on, round robin, to the dead URL and back
        assert await rpc.head_number() >= 0
        assert proxy.requests == 4
    finally:
        await rpc.close()


async def test_every_url_gets_a_try_even_with_fewer_attempts(proxy: FaultProxy) -> None:
    rpc = fast_rpc([closed_url(), closed_url(), proxy.url], max_attempts=1)
    try:
        assert await rpc.chain_id() == 31337
    finally:
        await rpc.close()


# --- errors that are not retried ---------------------------------------------------------


async def test_a_plain_rpc_error_is_not_retried(rpc: ChainRpc, proxy: FaultProxy) -> None:
    proxy.fail_next(1, "rpc_error", code=-32602, message="invalid argument 0")
    with pytest.raises(RpcResponseError) as caught:
        await rpc.head_number()
    assert (caught.value.code, caught.value.message) == (-32602, "invalid argument 0")
    assert not isinstance(caught.value, RangeTooLarge)
    assert proxy.requests == 1


async def test_a_node_error_is_not_retried(rpc: ChainRpc) -> None:
    with pytest.raises(RpcResponseError):
        await rpc.call("eth_noSuchMethod", [])


async def test_range_too_large_is_raised_with_the_suggestion(
    rpc: ChainRpc, proxy: FaultProxy, deployment: Deployment
) -> None:
    proxy.max_log_range = 5
    with pytest.raises(RangeTooLarge) as caught:
        await rpc.get_logs(3, 100, [deployment.package_address])
    assert caught.value.suggested_size == 5
    assert caught.value.code == -32005
    assert proxy.requests == 1
    assert await rpc.get_logs(3, 7, [deployment.package_address]) is not None


async def test_http_413_on_get_logs_is_range_too_large(
    rpc: ChainRpc, proxy: FaultProxy, deployment: Deployment
) -> None:
    proxy.fail_next(1, "413")
    with pytest.raises(RangeTooLarge) as caught:
        await rpc.get_logs(0, 100, [deployment.package_address])
    assert caught.value.suggested_size is None
    proxy.fail_next(1, "413")
    with pytest.raises(RpcResponseError) as other:
        await rpc.head_number()
    assert not isinstance(other.value, RangeTooLarge)


# --- recognising "range too large" -------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "size"),
    [
        (
            "query returned more than 10000 results. Try with this block range [0x1d4c0, 0x1d8a7].",
            1000,
        ),
        (
            "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block "
            "range and no limit on the response size, or you can request any block range with a "
            "cap of 10K logs in the response. Based on your parameters, this block range should "
            "work: [0x10, 0x1f]",
            16,
        ),
        (
            "Log response size exceeded. You can make eth_getLogs requests with up to a 2K "
            "block range",
            2000,
        ),
        ("eth_getLogs is limited to a 10000 block range", 10000),
        ("eth_getLogs is limited to a 10,000 range", 10000),
        ("range too large: try with this block range [100,200]", 101),
        ("exceed maximum block range: 50000", 50000),
        ("block range too large, max range: 5000", 5000),
        ("query returned more than 10000 results", None),
        ("Block range is too large", None),
        ("limit exceeded", None),
        ("too many results", None),
        ("range limit exceeded", None),
        ("Response size is larger than 150MB limit", None),
    ],
)
def test_range_too_large_messages(message: str, size: int | None) -> None:
    error = classify_error("eth_getLogs", {"code": -32000, "message": message})
    assert isinstance(error, RangeTooLarge)
    assert error.suggested_size == size
    assert suggested_range_size(message) == size


def test_code_32005_alone_means_range_too_large() -> None:
    error = classify_error("eth_getLogs", {"code": -32005, "message": "sorry"})
    assert isinstance(error, RangeTooLarge)


def test_range_words_on_other_methods_are_not_range_errors() -> None:
    error = classify_error("eth_call", {"code": -32000, "message": "gas limit exceeded"})
    assert type(error) is RpcResponseError


@pytest.mark.parametrize(
    "url",
    [
        "https://mainnet.infura.io/v3/0123456789abcdef",
        "https://user:password@eth.example.com:8545/path?key=1",
    ],
)
def test_endpoint_keeps_scheme_host_and_port_only(url: str) -> None:
    shown = endpoint(url)
    assert shown.startswith("https://")
    for secret in ("0123456789abcdef", "password", "user", "path", "key=1"):
        assert secret not in shown
