"""The dispatcher: claims jobs into this process's free slots and runs each as a task.

It claims when woken: by the scheduler's ``dispatch`` job (every ``poll_interval``, the
floor), by a slot freeing up, by a retry coming due, and by ``generation.queued`` events
from the hub, so a job created by the API (this process or another one, on PostgreSQL by
NOTIFY) or queued by the indexer is taken at once. ``generation.cancelling`` events reach
the run holding that job the same way (its heartbeat also reads the flag, as a floor).

Stopping (SIGTERM): no more claims; running jobs get ``shutdown_grace`` seconds to finish;
the rest are cancelled, their final writes (shielded) awaited, and their jobs given back to
the queue as they were, for another worker or the next start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from inftd.agents.events import Event
from inftd.daemon.events.hub import Subscription
from inftd.daemon.generation.context import WorkerContext
from inftd.daemon.generation.queue import Claimed, claim, give_back
from inftd.daemon.generation.worker import Control, Outcome, run_claimed

log = logging.getLogger(__name__)

WAKING = frozenset({"generation.queued", "generation.cancelling"})
STOP_REASON = "the worker stopped before the run finished; it runs again"


@dataclass
class Running:
    claimed: Claimed
    control: Control
    task: asyncio.Task[Outcome]


class Dispatcher:
    def __init__(self, ctx: WorkerContext, priorities: Mapping[int, int]) -> None:
        self.ctx = ctx
        self.settings = ctx.settings.generation
        self.priorities = dict(priorities)  # package type -> priority, for on-chain requests
        self.running: dict[str, Running] = {}
        self.stopping = False
        self.on_retry: Callable[[datetime], None] = lambda at: None  # a job is due again at
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._again = False

    def wake(self) -> None:
        self._wake.set()

    async def run_waker(self) -> None:
        """Claim whenever woken, until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.dispatch()

    async def dispatch(self) -> int:
        """Fill the free slots with due jobs; returns how many started. Calls that come
        while one runs make it look again rather than wait."""
        if self._lock.locked():
            self._again = True
            return 0
        async with self._lock:
            started = 0
            while not self.stopping:
                self._again = False
                free = self.settings.concurrency - len(self.running)
                claimed = await self._claim(free)
                for job in claimed:
                    self._start(job)
                started += len(claimed)
                if not claimed or (len(claimed) < free and not self._again):
                    break
            return started

    async def _claim(self, free: int) -> list[Claimed]:
        if free <= 0:
            return []
        try:
            claimed = await claim(
                self.ctx.engine, self.ctx.owner, free, self.settings, self.priorities
            )
        except Exception:
            log.exception("claiming generation jobs failed")
            return []
        if claimed:
            self.ctx.poke()  # their generation.started events
        return claimed

    def _start(self, claimed: Claimed) -> None:
        control = Control()
        task = asyncio.create_task(
            run_claimed(self.ctx, claimed, control), name=f"generation {claimed.id}"
        )
        self.running[claimed.id] = Running(claimed, control, task)
        task.add_done_callback(lambda done: self._ended(claimed.id, done))

    def _ended(self, generation_id: str, task: asyncio.Task[Outcome]) -> None:
        self.running.pop(generation_id, None)
        if task.cancelled():
            pass
        elif (error := task.exception()) is not None:  # its final write failed: the lease
            log.error(  # expires, and the reaper hands the job on
                "generation %s: its run ended in an error", generation_id, exc_info=error
            )
        elif (retry_at := task.result().retry_at) is not None:
            self.on_retry(retry_at)
        if not self.stopping:
            self.wake()  # a slot is free

    def cancel_running(self, generation_id: str) -> bool:
        """Tell the run holding the job here to stop; False if none does."""
        running = self.running.get(generation_id)
        if running is not None:
            running.control.cancel.set()
        return running is not None

    def on_event(self, event: Event) -> None:
        """From the hub: a job was queued (claim), or a cancel was asked for."""
        if event.type == "generation.queued":
            self.wake()
        elif event.type == "generation.cancelling":
            self.cancel_running(str(event.payload.get("id")))

    async def stop(self, grace: float) -> None:
        """Stop claiming; give running jobs ``grace`` seconds, then give the rest back."""
        self.stopping = True
        async with self._lock:  # a claim under way ends first, and its jobs start
            pass
        tasks = [r.task for r in self.running.values()]
        pending: set[asyncio.Task[Outcome]] = set()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
        unfinished = [r.claimed for r in self.running.values() if r.task in pending]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await asyncio.gather(*list(self.ctx.finishing), return_exceptions=True)
        for claimed in unfinished:
            await self._give_back(claimed)
        self.ctx.poke()

    async def _give_back(self, claimed: Claimed) -> None:
        try:
            if await give_back(self.ctx.engine, claimed.id, self.ctx.owner, STOP_REASON):
                log.info("generation %s given back to the queue (the worker stops)", claimed.id)
        except Exception:
            log.exception("giving generation %s back failed; its lease will expire", claimed.id)


class Wakeup(Subscription):
    """A hub subscriber that buffers nothing: it hands the dispatcher the events that
    concern it as the hub reads them."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        super().__init__(limit=1, everything=True)
        self._dispatcher = dispatcher

    def offer(self, event: Event) -> None:
        if event.type in WAKING:
            self._dispatcher.on_event(event)
