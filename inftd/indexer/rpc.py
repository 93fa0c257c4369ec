"""Chain JSON-RPC over aiohttp, with retries, backoff and failover between RPC URLs.

Errors, all raised by ``ChainRpc`` methods:

RpcError (IndexerError)
 ├── RpcUnavailable        every attempt on every URL failed (connection, timeout, 429, 5xx,
 │                         malformed body, transient JSON-RPC error)
 └── RpcResponseError      the node answered with an error that retrying will not change
      └── RangeTooLarge    eth_getLogs: the block range or its result is too big for the node

Messages name an RPC endpoint only as ``scheme://host[:port]``: RPC URLs often carry an API
key in their path or query.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from yarl import URL

from inftd.indexer.errors import IndexerError

log = logging.getLogger(__name__)

LogDict = dict[str, Any]

DEFAULT_TIMEOUT = 10.0  # seconds for one JSON-RPC request, connect to last byte
DEFAULT_MAX_ATTEMPTS = 6  # attempts of one call, summed over all URLs
DEFAULT_BACKOFF_BASE = 0.25  # seconds: the first retry waits up to this long
DEFAULT_BACKOFF_MAX = 8.0  # seconds: the longest wait between two attempts
RETRY_AFTER_CAP_FACTOR = 4  # a server's Retry-After is honoured up to backoff_max times this
JSON_HEADERS = {"Content-Type": "application/json"}
HTTP_TOO_LARGE = 413  # payload too large: some providers' answer to a huge eth_getLogs
HTTP_TOO_MANY = 429  # rate limited
LIMIT_EXCEEDED = -32005  # EIP-1474 "limit exceeded": range too big, or rate limited
INTERNAL_ERROR = -32603  # JSON-RPC internal error: node-side trouble, worth another try
CAUSE_MAX_CHARS = 300  # of an error text quoted in a message or log line

# Texts (lower case) by which nodes and providers say an eth_getLogs asked for too much.
RANGE_TOO_LARGE_TEXTS = (
    "query returned more than",
    "range too large",
    "block range is too large",
    "exceed maximum block range",
    "log response size exceeded",
    "too many results",
    "limit exceeded",
    "range limit",
    "is limited to",
    "max range",
    "response size",
)
# Texts (lower case) of JSON-RPC errors that another attempt, maybe elsewhere, can fix.
RATE_LIMIT_TEXTS = ("rate limit", "request rate", "too many requests")
TRANSIENT_TEXTS = ("header not found", "internal error", *RATE_LIMIT_TEXTS)

_SUGGESTED_PAIR = re.compile(r"\[\s*(0x[0-9a-f]+|\d+)\s*,\s*(0x[0-9a-f]+|\d+)\s*\]")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
# "up to a 2K block range", then "max range: 5000" / "limited to a 10000 block range".
_SUGGESTED_SIZE = (
    re.compile(r"(\d+)\s*(k?)[\s-]*block range"),
    re.compile(r"(?:max(?:imum)?|limit(?:ed)?)\b[^\d\[\]]{0,30}?(\d+)\s*(k?)\b"),
)


class RpcError(IndexerError):
    """Base of every chain RPC error."""


class RpcUnavailable(RpcError):
    def __init__(self, method: str, attempts: int, endpoint: str, cause: str) -> None:
        self.method = method
        self.attempts = attempts
        self.endpoint = endpoint  # scheme://host[:port] of the last URL tried
        self.cause = cause
        super().__init__(f"{method} failed after {attempts} attempts; last on {endpoint}: {cause}")


class RpcResponseError(RpcError):
    def __init__(self, method: str, code: int, message: str) -> None:
        self.method = method
        self.code = code
        self.message = message
        super().__init__(f"{method}: error {code}: {message}")


class RangeTooLarge(RpcResponseError):
    def __init__(
        self, method: str, code: int, message: str, suggested_size: int | None = None
    ) -> None:
        super().__init__(method, code, message)
        self.suggested_size = suggested_size


class _Retry(Exception):
    """Control flow inside ``ChainRpc.call``: this attempt failed in a way worth retrying."""

    def __init__(self, cause: str, retry_after: float | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.retry_after = retry_after


@dataclass(frozen=True)
class BlockRef:
    number: int
    hash: str
    parent_hash: str
    timestamp: int


def endpoint(url: str) -> str:
    """``scheme://host[:port]`` of an RPC URL: what may be shown of it in logs and errors."""
    try:
        return str(URL(url).origin())
    except ValueError:
        return "<invalid RPC URL>"


def suggested_range_size(text: str) -> int | None:
    """The block range size an error text suggests, e.g. "[0x10, 0x1f]" or "a 2K block range"."""
    lowered = text.lower()
    pair = _SUGGESTED_PAIR.search(lowered)
    if pair:
        first, last = (int(value, 0) for value in pair.groups())
        return last - first + 1 if last >= first else None
    lowered = _THOUSANDS.sub("", lowered)  # "10,000" -> "10000"
    for pattern in _SUGGESTED_SIZE:
        match = pattern.search(lowered)
        if match:
            return int(match[1]) * (1000 if match[2] else 1)
    return None


def is_range_too_large(code: int, text: str) -> bool:
    lowered = text.lower()
    return code == LIMIT_EXCEEDED or any(part in lowered for part in RANGE_TOO_LARGE_TEXTS)


def classify_error(method: str, error: Any) -> Exception:
    """The exception for a JSON-RPC ``error`` object: ``_Retry`` when it looks transient."""
    if not isinstance(error, dict):
        return _Retry(f"malformed JSON-RPC error {str(error)[:CAUSE_MAX_CHARS]}")
    code = error.get("code")
    code = code if isinstance(code, int) else 0
    message = str(error.get("message", ""))
    data = error.get("data")
    text = f"{message} {data}" if isinstance(data, str) else message
    lowered = text.lower()
    if any(part in lowered for part in RATE_LIMIT_TEXTS):
        return _Retry(f"error {code}: {message[:CAUSE_MAX_CHARS]}")
    if method == "eth_getLogs" and is_range_too_large(code, text):
        return RangeTooLarge(method, code, message, suggested_range_size(text))
    if code in (INTERNAL_ERROR, LIMIT_EXCEEDED) or any(part in lowered for part in TRANSIENT_TEXTS):
        return _Retry(f"error {code}: {message[:CAUSE_MAX_CHARS]}")
    return RpcResponseError(method, code, message)


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds; the HTTP-date form is ignored (plain backoff applies)."""
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _check_status(method: str, status: int, body: bytes, retry_after: str | None) -> None:
    if status == HTTP_TOO_MANY:
        raise _Retry("HTTP 429 Too Many Requests", _retry_after(retry_after))
    if status >= 500:
        raise _Retry(f"HTTP {status}")
    if status == HTTP_TOO_LARGE:
        if method == "eth_getLogs":
            raise RangeTooLarge(method, status, "HTTP 413 Payload Too Large")
        raise RpcResponseError(method, status, "HTTP 413 Payload Too Large")
    if status >= 400:
        raise _client_error(method, status, body)


def _client_error(method: str, status: int, body: bytes) -> Exception:
    """A 4xx answer: the JSON-RPC error in its body if there is one, else the status."""
    try:
        reply = orjson.loads(body)
    except orjson.JSONDecodeError:
        reply = None
    if isinstance(reply, dict) and "error" in reply:
        return classify_error(method, reply["error"])
    return RpcResponseError(method, status, f"HTTP {status}")


def _unwrap(method: str, body: bytes) -> Any:
    """The ``result`` of a JSON-RPC response body; ``_Retry`` if the body is not one."""
    try:
        reply = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _Retry(f"malformed JSON body ({len(body)} bytes): {exc}") from None
    if not isinstance(reply, dict):
        raise _Retry("JSON body is not a JSON-RPC response")
    if "error" in reply:
        raise classify_error(method, reply["error"])
    if "result" not in reply:
        raise _Retry("JSON-RPC response without result or error")
    return reply["result"]


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _log_filter(
    from_block: int, to_block: int, addresses: list[str], topics: list[list[str]] | None
) -> dict[str, Any]:
    query: dict[str, Any] = {"fromBlock": hex(from_block), "toBlock": hex(to_block)}
    query["address"] = addresses
    if topics is not None:
        query["topics"] = topics
    return query


def _block_param(number: int | str) -> str:
    return hex(number) if isinstance(number, int) else number


class ChainRpc:
    """Async JSON-RPC client over one or more URLs of the same chain.

    A call that fails transiently is retried with exponential backoff and full jitter, each
    retry on the next URL (round robin); the URL that last answered stays the first choice.
    """

    def __init__(
        self,
        urls: list[str],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        backoff_base: float = DEFAULT_BACKOFF_BASE,
        backoff_max: float = DEFAULT_BACKOFF_MAX,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if not urls:
            raise RpcError("no RPC URL configured (chain.rpc_urls)")
        self.urls = list(urls)
        self.max_attempts = max(1, max_attempts)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session
        self._owns_session = session is None
        self._current = 0  # index of the URL that answered last
        self._next_id = 0

    async def call(self, method: str, params: list[Any]) -> Any:
        """One JSON-RPC call, retried on transient failures until ``max_attempts``."""
        self._next_id += 1
        body = orjson.dumps(
            {"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params}
        )
        attempts = max(self.max_attempts, len(self.urls))  # every URL gets at least one try
        index = self._current
        for attempt in range(attempts):
            try:
                result = await self._post(self.urls[index], method, body)
            except _Retry as retry:
                if attempt + 1 == attempts:
                    last = endpoint(self.urls[index])
                    raise RpcUnavailable(
                        method, attempts, last, self._redact(retry.cause)
                    ) from None
                await self._before_retry(method, attempt, index, retry)
                index = self._fail_over(index)
                continue
            self._current = index
            return result
        raise AssertionError("unreachable: the loop returns or raises")

    async def _post(self, url: str, method: str, body: bytes) -> Any:
        session = self._get_session()
        try:
            async with session.post(
                url, data=body, headers=JSON_HEADERS, timeout=self._timeout
            ) as response:
                raw = await response.read()
                status, retry_after = response.status, response.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _Retry(_describe(exc)) from exc
        _check_status(method, status, raw, retry_after)
        return _unwrap(method, raw)

    async def _before_retry(self, method: str, attempt: int, index: int, retry: _Retry) -> None:
        delay = self._delay(attempt, retry.retry_after)
        log.warning(
            "RPC %s attempt %d on %s failed (%s); retrying in %.2fs",
            method,
            attempt + 1,
            endpoint(self.urls[index]),
            self._redact(retry.cause),
            delay,
        )
        await asyncio.sleep(delay)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.backoff_max * RETRY_AFTER_CAP_FACTOR)
        return random.uniform(0, min(self.backoff_max, self.backoff_base * 2**attempt))

    def _fail_over(self, index: int) -> int:
        following = (index + 1) % len(self.urls)
        if self._current == index:  # concurrent calls failing together move it once
            self._current = following
        return following

    def _redact(self, text: str) -> str:
        """Belt and braces: an exception text must not carry a URL's path or query."""
        for url in self.urls:
            text = text.replace(url, endpoint(url))
        return text[:CAUSE_MAX_CHARS]

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:  # created here, inside the running loop that will use it
            self._session = aiohttp.ClientSession()
        return self._session

    async def chain_id(self) -> int:
        return int(await self.call("eth_chainId", []), 16)

    async def head_number(self) -> int:
        return int(await self.call("eth_blockNumber", []), 16)

    async def block(self, number: int | str) -> BlockRef | None:
        """A block's identity by number or tag ("latest", "finalized"); None if not there."""
        raw = await self.call("eth_getBlockByNumber", [_block_param(number), False])
        if raw is None:
            return None
        return BlockRef(
            number=int(raw["number"], 16),
            hash=raw["hash"].lower(),
            parent_hash=raw["parentHash"].lower(),
            timestamp=int(raw["timestamp"], 16),
        )

    async def get_logs(
        self,
        from_block: int,
        to_block: int,
        addresses: list[str],
        topics: list[list[str]] | None = None,
    ) -> list[LogDict]:
        """The logs as the node sent them; ``RangeTooLarge`` if the node wants a smaller range."""
        logs: list[LogDict] = await self.call(
            "eth_getLogs", [_log_filter(from_block, to_block, addresses, topics)]
        )
        return logs

    async def get_logs_by_block_hash(
        self, block_hash: str, addresses: list[str], topics: list[list[str]] | None = None
    ) -> list[LogDict]:
        """The logs of exactly one block (EIP-234), safe against a reorg during the read."""
        query: dict[str, Any] = {"blockHash": block_hash, "address": addresses}
        if topics is not None:
            query["topics"] = topics
        logs: list[LogDict] = await self.call("eth_getLogs", [query])
        return logs

    async def receipt(self, tx_hash: str) -> dict[str, Any] | None:
        receipt: dict[str, Any] | None = await self.call("eth_getTransactionReceipt", [tx_hash])
        return receipt

    async def code_size(self, address: str) -> int:
        code: str = await self.call("eth_getCode", [address, "latest"])
        return (len(code) - 2) // 2

    async def close(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
            self._session = None


__all__ = [
    "BlockRef",
    "ChainRpc",
    "RangeTooLarge",
    "RpcError",
    "RpcResponseError",
    "RpcUnavailable",
    "classify_error",
    "endpoint",
    "suggested_range_size",
]
