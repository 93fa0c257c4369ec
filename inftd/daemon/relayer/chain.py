"""What the relayer asks of the chain, over the project's ``ChainRpc`` (retries, failover).

One exception: calls that may revert (the ``eth_call`` simulation, ``eth_estimateGas``, the
replay of a reverted transaction) need the JSON-RPC error's ``data``, the ABI-encoded
custom error, which ``ChainRpc`` does not keep. Those go through ``_call_keeping_revert``:
the same URLs in order, one attempt each; a failure of all of them is ``RpcUnavailable``,
and the relayer simply tries again next round.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from enum import Enum
from typing import Any

import aiohttp
import orjson
from eth_abi.abi import decode, encode
from eth_utils.abi import event_signature_to_log_topic, function_signature_to_4byte_selector

from inftd.daemon.relayer.reverts import Revert, decode_revert
from inftd.indexer.deployment import Deployment
from inftd.indexer.rpc import ChainRpc, RpcError, RpcUnavailable, classify_error, endpoint

log = logging.getLogger(__name__)

CALL_TIMEOUT = 10.0  # seconds for one reverting-call attempt
JSON_HEADERS = {"Content-Type": "application/json"}
EXECUTION_REVERTED = 3  # EIP-1474 code of "execution reverted" (with the revert data)
MINT = function_signature_to_4byte_selector(
    "mintGeneration(address,uint256,bytes32,string,bytes32)"
)
IS_MINTED = function_signature_to_4byte_selector("isMinted(bytes32)")
TOKEN_ID_OF = function_signature_to_4byte_selector("tokenIdOf(bytes32)")
OWNER_OF = function_signature_to_4byte_selector("ownerOf(uint256)")
MINTED_TOPIC = (
    "0x"
    + event_signature_to_log_topic(
        "GenerationMinted(uint256,uint256,bytes32,address,string,bytes32)"
    ).hex()
)
KNOWN_TEXTS = ("already known", "already imported", "known transaction")
NONCE_USED_TEXTS = ("nonce too low", "nonce has already been used", "oldnonce")


class Sent(Enum):
    """What became of one ``eth_sendRawTransaction``."""

    ACCEPTED = "accepted"  # the node took it (or had it already)
    NONCE_USED = "nonce_used"  # its nonce is spent: mined already, or by another transaction
    REJECTED = "rejected"  # refused for another reason (fee below base fee, no funds)
    UNREACHED = "unreached"  # no node answered


@dataclass(frozen=True)
class MintCall:
    """The arguments of one ``mintGeneration``."""

    to: str
    package_token_id: int
    request_key: str  # 0x + 64 hex
    uri: str
    content_hash: str | None  # 0x + 64 hex

    def data(self) -> bytes:
        content = bytes.fromhex(self.content_hash[2:]) if self.content_hash else bytes(32)
        args = [self.to, self.package_token_id, _bytes32(self.request_key), self.uri, content]
        return MINT + encode(["address", "uint256", "bytes32", "string", "bytes32"], args)


@dataclass(frozen=True)
class Minted:
    """Where a requestKey was minted: its NFT id and, when found, the transaction."""

    token_id: int
    tx_hash: str | None
    block_number: int | None


def _bytes32(value: str) -> bytes:
    return bytes.fromhex(value[2:].rjust(64, "0"))


def _word(value: int) -> str:
    return "0x" + value.to_bytes(32, "big").hex()


def _revert_data(error: Any) -> bytes | None:
    """The revert data of a JSON-RPC error, or None if the error is not a revert."""
    if not isinstance(error, dict):
        return None
    data = error.get("data")
    if isinstance(data, dict):  # some providers nest it: {"data": {"data": "0x..."}}
        data = data.get("data")
    is_revert = error.get("code") == EXECUTION_REVERTED or "revert" in str(error.get("message"))
    if not is_revert:
        return None
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            return b""
    return b""


def minted_in(receipt: dict[str, Any], contract: str, request_key: str) -> int | None:
    """The NFT id a receipt's ``GenerationMinted`` log gives ``request_key``, if any."""
    for entry in receipt.get("logs") or []:
        topics = entry.get("topics") or []
        if (
            str(entry.get("address", "")).lower() == contract.lower()
            and len(topics) == 4
            and topics[0] == MINTED_TOPIC
            and topics[3].lower() == request_key.lower()
        ):
            return int(topics[1], 16)
    return None


class MintChain:
    def __init__(self, rpc: ChainRpc, deployment: Deployment, concurrency: int) -> None:
        self.rpc = rpc
        self.generation = deployment.generation_address
        self.package = deployment.package_address
        self.deploy_block = deployment.deploy_block
        self.limit = asyncio.Semaphore(concurrency)  # RPC calls in flight from the relayer
        self._session: aiohttp.ClientSession | None = None

    async def call(self, method: str, params: list[Any]) -> Any:
        async with self.limit:
            return await self.rpc.call(method, params)

    async def head(self) -> int:
        return int(await self.call("eth_blockNumber", []), 16)

    async def nonce(self, address: str, tag: str) -> int:
        return int(await self.call("eth_getTransactionCount", [address, tag]), 16)

    async def fee_history(self, params: list[Any]) -> dict[str, Any]:
        history: dict[str, Any] = await self.call("eth_feeHistory", params)
        return history

    async def receipt(self, tx_hash: str) -> dict[str, Any] | None:
        receipt: dict[str, Any] | None = await self.call("eth_getTransactionReceipt", [tx_hash])
        return receipt

    async def known(self, tx_hash: str) -> bool:
        """Whether the node has the transaction (in its pool or in a block)."""
        return await self.call("eth_getTransactionByHash", [tx_hash]) is not None

    async def _view(self, to: str, data: bytes) -> bytes:
        result = await self.call("eth_call", [{"to": to, "data": "0x" + data.hex()}, "latest"])
        return bytes.fromhex(str(result)[2:])

    async def is_minted(self, request_key: str) -> bool:
        raw = await self._view(self.generation, IS_MINTED + _bytes32(request_key))
        return bool(decode(["bool"], raw)[0])

    async def token_of(self, request_key: str) -> int:
        raw = await self._view(self.generation, TOKEN_ID_OF + _bytes32(request_key))
        return int(decode(["uint256"], raw)[0])

    async def owner_of(self, package_token_id: int) -> str | None:
        """The package token's owner now; None if it has none (burnt, or never minted)."""
        data = OWNER_OF + package_token_id.to_bytes(32, "big")
        tx = {"to": self.package, "data": "0x" + data.hex()}
        result, revert = await self._call_keeping_revert("eth_call", [tx, "latest"])
        if revert is not None:
            return None
        return str(decode(["address"], bytes.fromhex(str(result)[2:]))[0])

    def _tx(self, sender: str, data: bytes) -> dict[str, str]:
        return {"from": sender, "to": self.generation, "data": "0x" + data.hex()}

    async def simulate(
        self, sender: str, data: bytes, block: int | str = "latest"
    ) -> Revert | None:
        """The revert an ``eth_call`` of the mint gives, or None if it would succeed."""
        tag = hex(block) if isinstance(block, int) else block
        _, revert = await self._call_keeping_revert("eth_call", [self._tx(sender, data), tag])
        return revert

    async def estimate_gas(self, sender: str, data: bytes) -> int | Revert:
        result, revert = await self._call_keeping_revert(
            "eth_estimateGas", [self._tx(sender, data)]
        )
        return revert if revert is not None else int(str(result), 16)

    async def minted(self, request_key: str) -> Minted | None:
        """Where ``request_key`` was minted, by anyone; None if it was not. The transaction
        is looked up in the logs; a node that refuses the range leaves it to the indexer."""
        token_id = await self.token_of(request_key)
        if token_id == 0:
            return None
        topics = [[MINTED_TOPIC], [_word(token_id)]]  # one mint per token id
        try:
            head = await self.head()
            logs = await self.rpc.get_logs(self.deploy_block, head, [self.generation], topics)
        except RpcError as exc:
            log.warning("looking up the mint of %s: %s", request_key, exc)
            return Minted(token_id, None, None)
        if not logs:
            return Minted(token_id, None, None)
        found = logs[0]
        return Minted(token_id, str(found["transactionHash"]), int(found["blockNumber"], 16))

    async def broadcast(self, raw_tx: bytes) -> tuple[Sent, str]:
        """Send signed bytes; the outcome and the node's words."""
        try:
            await self.call("eth_sendRawTransaction", ["0x" + raw_tx.hex()])
        except RpcUnavailable as exc:
            return Sent.UNREACHED, str(exc)
        except RpcError as exc:
            text = str(exc).lower()
            if any(t in text for t in KNOWN_TEXTS):
                return Sent.ACCEPTED, str(exc)
            if any(t in text for t in NONCE_USED_TEXTS):
                return Sent.NONCE_USED, str(exc)
            return Sent.REJECTED, str(exc)
        return Sent.ACCEPTED, ""

    async def _call_keeping_revert(
        self, method: str, params: list[Any]
    ) -> tuple[Any, Revert | None]:
        """``(result, None)``, or ``(None, revert)`` when the call reverts."""
        body = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        cause = "no URL"
        async with self.limit:
            for url in self.rpc.urls:
                try:
                    reply = await self._post(url, body)
                except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as exc:
                    cause = f"{endpoint(url)}: {type(exc).__name__}"
                    continue
                error = reply.get("error") if isinstance(reply, dict) else "not JSON-RPC"
                if error is None and "result" in reply:
                    return reply["result"], None
                data = _revert_data(error)
                if data is not None:
                    return None, decode_revert(data)
                problem = classify_error(method, error)
                if isinstance(problem, RpcError):
                    raise problem
                cause = f"{endpoint(url)}: {problem}"
        raise RpcUnavailable(method, len(self.rpc.urls), endpoint(self.rpc.urls[-1]), cause)

    async def _post(self, url: str, body: bytes) -> Any:
        if self._session is None:  # created inside the running loop that will use it
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(CALL_TIMEOUT))
        async with self._session.post(url, data=body, headers=JSON_HEADERS) as response:
            return orjson.loads(await response.read())

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
