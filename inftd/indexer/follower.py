"""Following the chain: backfill in bulk, then block by block near the head, reorg-safe.

Blocks deeper than ``window`` below the head are final: they are read with adaptive
``eth_getLogs`` ranges. The last ``window`` blocks are read one by one, each checked
against its parent's stored hash; a mismatch walks back to the common ancestor and rolls
back in one transaction. The cursor and the rows it covers are written together, so a
crash never skips or repeats a block.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, delete, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from inftd.indexer.decode import ChainLog, Decoder
from inftd.indexer.deployment import Deployment
from inftd.indexer.direct import apply_new
from inftd.indexer.errors import IndexerError
from inftd.indexer.events import StoredMeanwhile, any_stored, drop_unseen, store_logs
from inftd.indexer.heads import watch_new_heads
from inftd.indexer.projections import ApplyResult, apply_confirmed
from inftd.indexer.ranges import AdaptiveRange, fetch_logs_in_order, log_position
from inftd.indexer.reorg import rollback_to, unmine_unseen
from inftd.indexer.rpc import BlockRef, ChainRpc, RpcError
from inftd.store.models import BlockWindow, SyncCursor, table_of
from inftd.store.sql import insert_ignore

log = logging.getLogger(__name__)

CURSOR = "main"  # the name of the indexer's row in sync_cursor
RETRY_PAUSE_MAX = 30.0  # seconds between attempts while syncs keep failing
REASON_MAX_CHARS = 300  # of a failure's reason in /v1/status


class ReorgTooDeep(IndexerError):
    def __init__(self, block: int, oldest: int) -> None:
        self.block = block
        self.oldest = oldest
        super().__init__(
            f"reorg deeper than the block window: block {block} changed and no stored hash "
            f"down to block {oldest} matches the chain; the indexer stopped to protect the "
            "database (raise chain.reorg_window, or re-index into a new database)"
        )


@dataclass(frozen=True)
class IndexerConfig:
    window: int = 128  # recent block hashes kept to detect reorgs
    confirmations: int = 0  # blocks on top before an event takes effect
    poll_interval: float = 1.0  # seconds between head polls
    concurrency: int = 4  # eth_getLogs ranges in flight during backfill
    initial_range: int = 2000  # blocks per eth_getLogs range to start with
    ws_url: str | None = None  # follow new heads over this WebSocket as well as by polling


@dataclass(frozen=True)
class Cursor:
    number: int
    hash: str


@dataclass
class IndexerStats:
    head: int | None = None
    stored: int = 0  # events stored by this process
    reorgs: int = 0
    applied: Counter[str] = field(default_factory=Counter)
    problems: int = 0
    direct: int = 0  # events stored and applied in one pass from memory (the fast path)
    halted: str | None = None
    failures: int = 0  # syncs failed in a row
    failing: str | None = None  # why the last sync failed, while they keep failing

    def record(self, result: ApplyResult) -> None:
        self.applied.update(result.applied)
        self.problems += result.problems
        self.direct += result.direct


Progress = Callable[[int, int, int], None]  # (block reached, target block, events stored)


def _no_progress(block: int, target: int, events: int) -> None:
    pass


class Indexer:
    def __init__(
        self,
        rpc: ChainRpc,
        engine: AsyncEngine,
        deployment: Deployment,
        config: IndexerConfig,
    ) -> None:
        self.rpc = rpc
        self.engine = engine
        self.deployment = deployment
        self.config = config
        self.decoder = Decoder(deployment)
        self.sizer = AdaptiveRange(initial=config.initial_range)
        self.stats = IndexerStats()
        self.wake = asyncio.Event()  # set by new heads and webhooks: sync now
        self.on_commit: Callable[[], None] = lambda: None  # e.g. wake the event hub

    @property
    def chain_id(self) -> int:
        return self.deployment.chain_id

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the chain until ``stop``; RPC faults are waited out, a deep reorg halts."""
        heads = None
        if self.config.ws_url:
            heads = asyncio.create_task(watch_new_heads(self.config.ws_url, self.wake, stop))
        try:
            await self._follow(stop)
        finally:
            if heads:
                heads.cancel()
                await asyncio.gather(heads, return_exceptions=True)

    async def _follow(self, stop: asyncio.Event) -> None:
        """Sync after sync. Only a deep reorg ends it: any other failure rolled its
        transaction back whole, so the next sync starts again from the stored cursor. A
        node or a database that is away (or a deadlock) is waited out; anything else is
        logged with its traceback and tried again, backing off, never dropped silently."""
        stats = self.stats
        while not stop.is_set():
            try:
                await self.sync_once()
                stats.failures, stats.failing = 0, None
            except ReorgTooDeep as exc:
                stats.halted = str(exc)
                log.error("indexer halted: %s", exc)
                raise
            except (RpcError, DBAPIError) as exc:
                stats.failures, stats.failing = stats.failures + 1, _reason(exc)
                log.warning("indexer: sync failed (%d in a row): %s", stats.failures, stats.failing)
            except Exception as exc:
                stats.failures, stats.failing = stats.failures + 1, _reason(exc)
                log.exception("indexer: sync failed (%d in a row)", stats.failures)
            pause = min(RETRY_PAUSE_MAX, self.config.poll_interval * 2**stats.failures)
            await _wait_any(stop, self.wake, pause)
            self.wake.clear()

    async def sync_once(self, target: int | None = None, progress: Progress = _no_progress) -> int:
        """Index up to the head (or ``target``); returns the block reached."""
        head = await self.rpc.head_number()
        self.stats.head = head
        end = head if target is None else min(target, head)
        cursor = await self._verified_cursor(head)
        final = min(end, head - self.config.window)
        if cursor.number < final:
            cursor = await self._backfill(cursor, final, head, lambda b, e: progress(b, end, e))
        while cursor.number < end:
            cursor = await self._follow_block(cursor, head)
            progress(cursor.number, end, self.stats.stored)
        await self._apply(min(cursor.number, head - self.config.confirmations))
        return cursor.number

    # -- cursor ---------------------------------------------------------------------------

    async def cursor(self) -> Cursor | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(SyncCursor.block_number, SyncCursor.block_hash).where(
                        SyncCursor.name == CURSOR
                    )
                )
            ).first()
        return Cursor(row[0], row[1]) if row else None

    async def _start_cursor(self, from_block: int | None = None) -> Cursor:
        start = max(from_block or self.deployment.deploy_block, 1) - 1
        block = await self._block(start)
        cursor = Cursor(block.number, block.hash)
        async with self.engine.begin() as conn:
            await conn.execute(
                insert_ignore(conn, table_of(SyncCursor)),
                {"name": CURSOR, "block_number": cursor.number, "block_hash": cursor.hash},
            )
            await _remember_block(conn, block)
        return cursor

    async def start_at(self, from_block: int) -> None:
        """Begin a fresh database at ``from_block`` instead of the deployment block."""
        if await self.cursor() is not None:
            raise IndexerError("this database is already indexed; --from-block needs a fresh one")
        await self._start_cursor(from_block)

    async def _verified_cursor(self, head: int) -> Cursor:
        cursor = await self.cursor() or await self._start_cursor()
        if cursor.number <= head:
            block = await self.rpc.block(cursor.number)
            if block is not None and block.hash == cursor.hash:
                return cursor
        return await self._reorg(min(cursor.number, head))

    async def _block(self, number: int) -> BlockRef:
        block = await self.rpc.block(number)
        if block is None:
            raise RpcError(f"the node has no block {number}")
        return block

    # -- reading --------------------------------------------------------------------------

    async def _backfill(
        self, cursor: Cursor, final: int, head: int, progress: Callable[[int, int], None]
    ) -> Cursor:
        ranges = fetch_logs_in_order(
            self.rpc,
            cursor.number + 1,
            final,
            self.decoder.addresses,
            self.decoder.topics,
            self.sizer,
            self.config.concurrency,
        )
        # aclosing: a failure while writing must not leave range requests running
        async with aclosing(ranges):
            async for first, last, raw in ranges:
                cursor = await self._store_range(first, last, raw, head)
                progress(last, self.stats.stored)
        return cursor

    async def _store_range(
        self, first: int, last: int, raw: list[dict[str, Any]], head: int
    ) -> Cursor:
        return await self._write(first, last, raw, await self._block(last), head)

    async def _follow_block(self, cursor: Cursor, head: int) -> Cursor:
        block = await self._block(cursor.number + 1)
        if block.parent_hash != cursor.hash:
            return await self._reorg(cursor.number)
        raw = await self.rpc.get_logs_by_block_hash(
            block.hash, self.decoder.addresses, self.decoder.topics
        )
        raw.sort(key=log_position)  # nodes send them sorted; a proxy may not
        return await self._write(block.number, block.number, raw, block, head)

    async def _write(
        self, first: int, last: int, raw: list[dict[str, Any]], block: BlockRef, head: int
    ) -> Cursor:
        """Blocks [first, last], read whole (``raw``, in chain order), with ``block`` the last:
        their events, the cursor move and the events they confirm, in one transaction."""
        try:
            stored, result = await self._write_once(first, last, raw, block, head, fast=True)
        except StoredMeanwhile as exc:  # a webhook stored some of them: the careful way
            log.info("indexer: blocks %d-%d: %s; storing them again", first, last, exc)
            stored, result = await self._write_once(first, last, raw, block, head, fast=False)
        self.stats.stored += stored
        self.stats.record(result)
        self.on_commit()
        return Cursor(block.number, block.hash)

    async def _write_once(
        self,
        first: int,
        last: int,
        raw: list[dict[str, Any]],
        block: BlockRef,
        head: int,
        *,
        fast: bool,
    ) -> tuple[int, ApplyResult]:
        """Returns the events stored and what applying did.

        The usual case, a backfill range or a followed block whose events are confirmed and
        of which none was stored before (by a webhook): they are inserted already applied,
        straight from memory (``apply_new``), after any older confirmed event still pending.
        Otherwise (or with ``fast`` off) they are stored unapplied and applied from the
        database in chain order, as far as they are confirmed (``apply_confirmed``).
        """
        confirmed = head - self.config.confirmations
        async with self.engine.begin() as conn:
            # Writes first: on SQLite they take the write lock before ids are handed out.
            await _remember_block(conn, block)
            await _move_cursor(conn, block)
            await _forget_blocks_below(conn, block.number - self.config.window)
            if fast and last <= confirmed and not await any_stored(conn, first, last):
                result = await apply_confirmed(conn, self.chain_id, first - 1)  # older first
                new = await apply_new(conn, self.chain_id, raw, self.decoder)
                result.add(new)
                await unmine_unseen(conn, first, last)
                return new.direct, result
            logs = self._decode(raw)
            # Before the insert, so it looks at the rows stored earlier only (all it may drop).
            await drop_unseen(conn, first, last, {log.key for log in logs})
            stored = await store_logs(conn, self.chain_id, logs, "poll")
            await unmine_unseen(conn, first, last)
            return stored, await apply_confirmed(conn, self.chain_id, min(last, confirmed))

    def _decode(self, raw: list[dict[str, Any]]) -> list[ChainLog]:
        return [event for log in raw if (event := self.decoder.decode(log)) is not None]

    # -- applying and undoing ---------------------------------------------------------------

    async def _apply(self, up_to: int) -> None:
        async with self.engine.begin() as conn:
            result = await apply_confirmed(conn, self.chain_id, up_to)
        self.stats.record(result)
        self.on_commit()

    async def _reorg(self, changed: int) -> Cursor:
        """Walk back from ``changed`` to the newest stored block still on the chain."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(BlockWindow.number, BlockWindow.hash)
                    .where(BlockWindow.number <= changed)
                    .order_by(BlockWindow.number.desc())
                )
            ).all()
        for number, stored_hash in rows:
            block = await self.rpc.block(number)
            if block is not None and block.hash == stored_hash:
                return await self._roll_back(block, changed)
        raise ReorgTooDeep(changed, rows[-1][0] if rows else changed)

    async def _roll_back(self, ancestor: BlockRef, changed: int) -> Cursor:
        async with self.engine.begin() as conn:
            undone = await rollback_to(conn, ancestor.number)
            depth = changed - ancestor.number
            await conn.execute(
                update(table_of(SyncCursor))
                .where(table_of(SyncCursor).c.name == CURSOR)
                .values(
                    block_number=ancestor.number,
                    block_hash=ancestor.hash,
                    reorgs=table_of(SyncCursor).c.reorgs + 1,
                    deepest_reorg=_greatest(depth),
                )
            )
        self.stats.reorgs += 1
        self.on_commit()
        log.warning(
            "reorg: rolled back to block %d (%d events removed, %d agents recomputed)",
            ancestor.number,
            undone.events_removed,
            undone.agents_touched,
        )
        return Cursor(ancestor.number, ancestor.hash)


def _greatest(depth: int) -> object:
    column = table_of(SyncCursor).c.deepest_reorg
    return case((column < depth, depth), else_=column)


async def _remember_block(conn: AsyncConnection, block: BlockRef) -> None:
    await conn.execute(
        insert_ignore(conn, table_of(BlockWindow)),
        {
            "number": block.number,
            "hash": block.hash,
            "parent_hash": block.parent_hash,
            "timestamp": block.timestamp,
        },
    )


async def _move_cursor(conn: AsyncConnection, block: BlockRef) -> None:
    await conn.execute(
        update(table_of(SyncCursor))
        .where(table_of(SyncCursor).c.name == CURSOR)
        .values(block_number=block.number, block_hash=block.hash)
    )


async def _forget_blocks_below(conn: AsyncConnection, number: int) -> None:
    await conn.execute(delete(table_of(BlockWindow)).where(BlockWindow.number < number))


def _reason(exc: Exception) -> str:
    """One line for /v1/status: a database error without its SQL and parameters."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text = (str(cause).strip().splitlines() or [""])[0]
    return f"{type(cause).__name__}: {text}"[:REASON_MAX_CHARS]


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event, seconds: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
