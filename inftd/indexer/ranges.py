"""Reading eth_getLogs over a long block span: adaptive range sizes, several ranges in flight,
results handed out strictly in chain order and never with a gap."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncGenerator
from typing import TypeAlias

from inftd.indexer.rpc import ChainRpc, LogDict, RangeTooLarge

DEFAULT_INITIAL = 2_000  # blocks in the first eth_getLogs range
DEFAULT_MINIMUM = 1  # blocks: a single block cannot be split further
DEFAULT_MAXIMUM = 100_000  # blocks: beyond this, nodes time out more than they answer
DEFAULT_TARGET_LOGS = 5_000  # logs per response that keep a response cheap to parse
DEFAULT_TARGET_SECONDS = 2.0  # seconds per eth_getLogs that keep the node responsive
DEFAULT_CONCURRENCY = 4  # eth_getLogs requests in flight at once


class AdaptiveRange:
    """The eth_getLogs range size: grows while responses are small and fast, shrinks when they
    are big or slow, and follows the node's own hint when it refuses a range."""

    def __init__(
        self,
        initial: int = DEFAULT_INITIAL,
        minimum: int = DEFAULT_MINIMUM,
        maximum: int = DEFAULT_MAXIMUM,
        target_logs: int = DEFAULT_TARGET_LOGS,
        target_seconds: float = DEFAULT_TARGET_SECONDS,
    ) -> None:
        if not 1 <= minimum <= maximum:
            raise ValueError(f"range bounds need 1 <= minimum <= maximum, got {minimum}, {maximum}")
        self.minimum = minimum
        self.maximum = maximum
        self.target_logs = target_logs
        self.target_seconds = target_seconds
        self.size = self._clamp(initial)

    def _clamp(self, size: int) -> int:
        return max(self.minimum, min(self.maximum, size))

    def record_success(self, blocks: int, logs: int, seconds: float) -> None:
        if logs > 2 * self.target_logs or seconds > 2 * self.target_seconds:
            # Relative to the range that was heavy: a short tail range can be heavy too.
            self.size = self._clamp(min(self.size, blocks) // 2)
        elif self._cheap(logs, seconds) and blocks >= self.size:
            # Only a full-size range proves the current size cheap; the one- or two-block
            # ranges of following the head would otherwise inflate it to the maximum.
            self.size = self._clamp(self.size * 2)

    def _cheap(self, logs: int, seconds: float) -> bool:
        return logs < self.target_logs / 2 and seconds < self.target_seconds / 2

    def record_too_large(self, blocks: int, suggested: int | None) -> int:
        """The size to retry a refused range of ``blocks`` with; also the size from now on."""
        size = suggested if suggested is not None and 0 < suggested < blocks else blocks // 2
        self.size = self._clamp(size)
        return self.size


def log_position(log: LogDict) -> tuple[int, int]:
    """(block number, log index) of a raw log: its place in the chain."""
    return int(log["blockNumber"], 16), int(log["logIndex"], 16)


async def _fetch_range(
    rpc: ChainRpc,
    first: int,
    last: int,
    addresses: list[str],
    topics: list[list[str]] | None,
    sizer: AdaptiveRange,
) -> list[LogDict]:
    """Every log of [first, last], in smaller pieces, one after another, if the node refuses
    the whole; ``RangeTooLarge`` only when a single block is refused."""
    logs: list[LogDict] = []
    cursor, chunk = first, last - first + 1
    while cursor <= last:
        chunk = min(chunk, last - cursor + 1)
        started = time.monotonic()
        try:
            part = await rpc.get_logs(cursor, cursor + chunk - 1, addresses, topics)
        except RangeTooLarge as exc:
            if chunk <= 1:
                raise
            chunk = min(chunk - 1, sizer.record_too_large(chunk, exc.suggested_size))
            continue
        sizer.record_success(chunk, len(part), time.monotonic() - started)
        logs.extend(part)
        cursor += chunk
    logs.sort(key=log_position)  # nodes send them sorted; a proxy or a mix of nodes may not
    return logs


_Pending: TypeAlias = deque[tuple[int, int, asyncio.Task[list[LogDict]]]]


async def _cancel_all(pending: _Pending) -> None:
    for _, _, task in pending:
        task.cancel()
    # Collect the outcomes so no "exception was never retrieved" is left behind.
    await asyncio.gather(*(task for _, _, task in pending), return_exceptions=True)
    pending.clear()


async def fetch_logs_in_order(
    rpc: ChainRpc,
    start: int,
    end: int,
    addresses: list[str],
    topics: list[list[str]] | None,
    sizer: AdaptiveRange,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> AsyncGenerator[tuple[int, int, list[LogDict]], None]:
    """``(from_block, to_block, logs)`` covering [start, end] contiguously in chain order.

    Up to ``concurrency`` ranges are read at once, each sized by ``sizer`` when scheduled.
    Any error (``RpcUnavailable``, a single block refused) ends the iteration after the last
    range read whole: nothing after a failed range is ever yielded. Use it under
    ``contextlib.aclosing`` so the requests in flight are cancelled when the caller stops early.
    """
    pending: _Pending = deque()
    next_block = start
    try:
        while pending or next_block <= end:
            while next_block <= end and len(pending) < max(1, concurrency):
                last = min(end, next_block + sizer.size - 1)
                task = asyncio.create_task(
                    _fetch_range(rpc, next_block, last, addresses, topics, sizer)
                )
                pending.append((next_block, last, task))
                next_block = last + 1
            first, last, task = pending[0]
            logs = await task
            pending.popleft()
            yield first, last, logs
    finally:
        await _cancel_all(pending)
