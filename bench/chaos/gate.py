"""Keeps Anvil's reorgs apart from transactions being mined.

Anvil 1.7.1 rolls the chain back without taking its mining lock (foundry-rs/foundry PR
16711, open): a block mined while ``anvil_reorg`` unwinds gets the old head's number, and the
replaced numbers stay empty for good: ``eth_getBlockByNumber`` answers null below the head.
Automine mines after ``eth_sendTransaction`` has answered, so holding the senders back is not
enough: the reorg also waits until the pool is empty and the head stands still.

Senders are the workload's threads (``sending``) and the daemons' requests through the proxy
(``sending_async``); the reorg loop holds ``closed`` in a thread."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from inftd.daemon.cli.devnet import rpc_call

POLL = 0.01  # seconds between looks at the gate
QUIET_POLL = 0.05  # seconds between looks at the node's pool and head
QUIET_BOUND = 3.0  # seconds a reorg waits for the node to stop mining before it gives up
SEND_METHODS = frozenset({"eth_sendRawTransaction", "eth_sendTransaction"})


class MiningGate:
    """Many senders at once, or one reorg; a waiting reorg lets no new sender in."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sending = 0
        self._closed = False

    def _try_enter(self) -> bool:
        with self._lock:
            if self._closed:
                return False
            self._sending += 1
            return True

    def _leave(self) -> None:
        with self._lock:
            self._sending -= 1

    @contextmanager
    def sending(self) -> Iterator[None]:
        while not self._try_enter():
            time.sleep(POLL)
        try:
            yield
        finally:
            self._leave()

    @asynccontextmanager
    async def sending_async(self) -> AsyncIterator[None]:
        while not self._try_enter():  # noqa: ASYNC110 - a thread opens it, not this loop
            await asyncio.sleep(POLL)
        try:
            yield
        finally:
            self._leave()

    def for_request(self, request: dict[str, Any]) -> Any:
        """The proxy's hook: a transaction waits at the gate, anything else passes."""
        return self.sending_async() if request.get("method") in SEND_METHODS else None

    @contextmanager
    def closed(self) -> Iterator[None]:
        with self._lock:
            self._closed = True
        try:
            while True:
                with self._lock:
                    if self._sending == 0:
                        break
                time.sleep(POLL)
            yield
        finally:
            with self._lock:
                self._closed = False


def node_quiet(url: str, bound: float = QUIET_BOUND) -> bool:
    """Whether the node's pool emptied and its head stood still within ``bound`` seconds."""
    deadline = time.monotonic() + bound
    last = -1
    while time.monotonic() < deadline:
        pending = int(rpc_call(url, "txpool_status")["pending"], 16)
        head = int(rpc_call(url, "eth_blockNumber"), 16)
        if pending == 0 and head == last:
            return True
        last = head
        time.sleep(QUIET_POLL)
    return False


def holes(url: str, first: int) -> list[int]:
    """Block numbers from ``first`` to the head the node has no block for."""
    head = int(rpc_call(url, "eth_blockNumber"), 16)
    return [
        n
        for n in range(max(first, 0), head + 1)
        if rpc_call(url, "eth_getBlockByNumber", [hex(n), False]) is None
    ]
