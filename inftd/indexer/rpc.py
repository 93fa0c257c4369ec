"""Chain RPC access for the rest of the daemon (the indexer issue adds failover and retries)."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.exceptions import BlockNotFound

from inftd.indexer.errors import IndexerError

T = TypeVar("T")

RPC_TIMEOUT = 10  # seconds for one JSON-RPC request


class RpcError(IndexerError):
    pass


@dataclass(frozen=True)
class BlockRef:
    number: int
    hash: str
    parent_hash: str


class ChainRpc:
    """A small async client over the first configured RPC URL."""

    def __init__(self, urls: list[str]) -> None:
        if not urls:
            raise RpcError("no RPC URL configured (chain.rpc_urls)")
        self.url = urls[0]
        self._w3 = AsyncWeb3(AsyncHTTPProvider(self.url, request_kwargs={"timeout": RPC_TIMEOUT}))

    async def chain_id(self) -> int:
        return await self._call(self._w3.eth.chain_id)

    async def head_number(self) -> int:
        return await self._call(self._w3.eth.block_number)

    async def block(self, number: int) -> BlockRef | None:
        try:
            block = await self._call(self._w3.eth.get_block(number))
        except RpcError as exc:
            if isinstance(exc.__cause__, BlockNotFound):
                return None
            raise
        return BlockRef(block["number"], block["hash"].to_0x_hex(), block["parentHash"].to_0x_hex())

    async def code_size(self, address: str) -> int:
        code = await self._call(self._w3.eth.get_code(AsyncWeb3.to_checksum_address(address)))
        return len(code)

    async def _call(self, awaitable: Awaitable[T]) -> T:
        try:
            return await awaitable
        except Exception as exc:
            raise RpcError(f"RPC {self.url}: {exc}") from exc

    async def close(self) -> None:
        await self._w3.provider.disconnect()
