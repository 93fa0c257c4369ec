"""The generation service of one daemon process: an APScheduler ``AsyncIOScheduler`` and
the dispatcher it drives.

Scheduled jobs (each one a short coroutine; none runs twice at once):

    dispatch   every poll_interval        claim due jobs (also woken at once, see dispatcher)
    reap       every lease / 2            expired leases: requeue or fail (queue.reap)
    retry      at a retry's due time      a one-off wake-up for each job queued again
    probe      every probe_interval       a one-token text call per provider: its health
                                          (kept for /v1/status and fed to the router)
    learning   every learning_interval    collaborators' untaught lessons, influences and
                                          memory consolidation of recently active agents
    cleanup    every cleanup_interval     progress events older than progress_retention;
                                          reservations whose generation a reorg removed

``run_generation(runtime)`` opens the providers and the router, starts it all and, on exit,
stops claiming and gives running jobs their grace (see ``Dispatcher.stop``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]
from sqlalchemy import String, delete, func, literal, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import aliased

from inftd.agents.credits import release
from inftd.agents.errors import AgentError
from inftd.agents.influences import refresh_influences_of
from inftd.agents.learning import catch_up_collaborators
from inftd.agents.memory import consolidate
from inftd.agents.usage import RESERVE_PREFIX, SETTLE_PREFIX
from inftd.daemon.config import GenerationSettings, Settings
from inftd.daemon.generation.content import ContentStore
from inftd.daemon.generation.context import JobRunner, WorkerContext, shielded
from inftd.daemon.generation.dispatcher import Dispatcher, Wakeup
from inftd.daemon.generation.queue import reap, utcnow
from inftd.daemon.generation.routing.recorder import CallRecord, DbRecorder
from inftd.daemon.generation.routing.router import Router
from inftd.daemon.generation.strategies.run import run_job
from inftd.daemon.generation.types import Job, Output, Progress
from inftd.daemon.providers.base import Provider, ProviderError, TextRequest, complete_text
from inftd.daemon.providers.factory import open_providers
from inftd.daemon.runtime import Runtime
from inftd.store.models import Agent, CreditEntry, EventRecord, Generation

log = logging.getLogger(__name__)

MIN_REAP_INTERVAL = 0.5  # seconds: the reaper never runs more often than this
PROBE_PROMPT = "Reply with OK."  # a probe's whole request: one output token
ACTIVE_AGENTS = 100  # agents whose learning is consolidated per pass, most recent first
ORPHAN_AGE = timedelta(hours=1)  # a reservation this old without its generation is orphaned
ORPHAN_BATCH = 100


def worker_name() -> str:
    """Who holds a lease: host, process and a random part (two workers of one process)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


def priorities_of(settings: Settings) -> dict[int, int]:
    return {p.id: p.limits.priority for p in settings.packages}


def runner_for(router: Router) -> JobRunner:
    def run(job: Job, progress: Progress) -> Coroutine[Any, Any, Output]:
        return run_job(job, router, progress)

    return run


class GenerationService:
    def __init__(
        self,
        runtime: Runtime,
        router: Router,
        run: JobRunner | None = None,
        *,
        owner: str | None = None,
    ) -> None:
        settings = runtime.settings
        self.runtime = runtime
        self.router = router
        self.settings = settings.generation
        self.ctx = WorkerContext(
            engine=runtime.engine,
            writer=runtime.writer,
            embedder=runtime.embedder,
            settings=settings,
            content=ContentStore(settings.content_dir),
            run=run or runner_for(router),
            owner=owner or worker_name(),
            poke=runtime.hub.poke,
            recorder=router.recorder if isinstance(router.recorder, DbRecorder) else None,
        )
        self.dispatcher = Dispatcher(self.ctx, priorities_of(settings))
        self.dispatcher.on_retry = self.wake_at
        self.probes: dict[str, dict[str, Any]] = {}  # provider -> its last probe
        self.scheduler: AsyncIOScheduler | None = None
        self._wakeup = Wakeup(self.dispatcher)
        self._waker: asyncio.Task[None] | None = None

    # -- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        if logging.getLogger("apscheduler").level == logging.NOTSET:
            logging.getLogger("apscheduler").setLevel(logging.WARNING)  # a line per run else
        self.scheduler = self._scheduler()
        self.scheduler.start()
        self.runtime.generation = self.report  # /v1/status shows it
        self.runtime.hub.subscribe(self._wakeup)
        self._waker = asyncio.create_task(self.dispatcher.run_waker(), name="generation waker")
        self.dispatcher.wake()
        log.info("generation worker %s started", self.ctx.owner)

    async def stop(self) -> None:
        """Stop claiming and scheduling; running jobs get their grace."""
        if self.runtime.generation == self.report:
            self.runtime.generation = None
        self.runtime.hub.unsubscribe(self._wakeup)
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        await self.dispatcher.stop(self.settings.shutdown_grace)
        if self._waker is not None:
            self._waker.cancel()
            await asyncio.gather(self._waker, return_exceptions=True)
        log.info("generation worker %s stopped", self.ctx.owner)

    def _scheduler(self) -> AsyncIOScheduler:
        s = self.settings
        scheduler = AsyncIOScheduler(timezone=UTC)
        jobs: list[tuple[str, float, Callable[[], Coroutine[Any, Any, Any]]]] = [
            ("dispatch", s.poll_interval, self.dispatcher.dispatch),
            ("reap", max(s.lease / 2, MIN_REAP_INTERVAL), self.reap),
            ("learning", s.learning_interval, self.consolidate),
            ("cleanup", s.cleanup_interval, self.cleanup),
        ]
        if s.probe_interval > 0:
            jobs.append(("probe", s.probe_interval, self.probe))
        for name, seconds, job in jobs:
            scheduler.add_job(
                self._guarded(job),
                "interval",
                seconds=seconds,
                id=name,
                max_instances=1,
                coalesce=True,
            )
        return scheduler

    def _guarded(
        self, work: Callable[[], Coroutine[Any, Any, Any]]
    ) -> Callable[[], Coroutine[Any, Any, None]]:
        """The job as APScheduler runs it: shielded, since its shutdown cancels running jobs
        and a write cut off halfway can keep SQLite's lock; the worker's stop awaits it."""

        async def job() -> None:
            try:
                await shielded(self.ctx, work())
            except asyncio.CancelledError:
                return  # the scheduler's shutdown: the work goes on, and stop() awaits it

        return job

    def wake_at(self, at: datetime) -> None:
        """Claim again when a job queued for a retry comes due."""
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.add_job(self._wake, "date", run_date=at, misfire_grace_time=None)

    async def _wake(self) -> None:  # a coroutine: APScheduler runs plain functions in threads
        self.dispatcher.wake()

    # -- scheduled jobs -------------------------------------------------------------------

    async def reap(self) -> None:
        try:
            due = await reap(self.runtime.writer, self.settings)
        except Exception:
            log.exception("the lease reaper failed")
            return
        if due:
            log.info("lease reaper: %d job(s) whose worker stopped went back", len(due))
            self.runtime.hub.poke()
            for at in due:
                self.wake_at(at)

    async def probe(self) -> None:
        for name, provider in self.router.providers.items():
            if "text" in provider.capabilities and provider.text_model is not None:
                self.probes[name] = await self._probe_one(provider)

    async def _probe_one(self, provider: Provider) -> dict[str, Any]:
        started = time.monotonic()
        request = TextRequest(PROBE_PROMPT, max_tokens=1)
        try:
            result = await asyncio.wait_for(complete_text(provider, request), provider.timeout)
        except (ProviderError, TimeoutError) as exc:
            error = exc if isinstance(exc, ProviderError) else _probe_timeout(provider)
            self.router.health.failed(error)
            await self._record(provider, str(provider.text_model), error.kind, 0.0, started)
            return {"ok": False, "error": error.kind, "checkedAt": utcnow().isoformat()}
        seconds = time.monotonic() - started
        self.router.health.succeeded(provider.name, "text", seconds)
        await self._record(provider, result.model, "ok", result.usage.cost_usd, started)
        return {
            "ok": True,
            "latencyMs": round(seconds * 1000, 1),
            "checkedAt": utcnow().isoformat(),
        }

    async def _record(
        self, provider: Provider, model: str, outcome: str, cost: float, started: float
    ) -> None:
        """A probe spends like any call: it goes in the spend ledger."""
        latency = (time.monotonic() - started) * 1000
        call = CallRecord(
            provider.name, model, "text", "probe", outcome, cost_usd=cost, latency_ms=latency
        )
        await self.router.recorder.record(call)

    async def consolidate(self) -> None:
        writer, embedder, now = self.runtime.writer, self.runtime.embedder, utcnow()
        try:
            await catch_up_collaborators(writer, embedder, now)
            for token_id in await _active_agents(self.runtime.engine, now, self.settings):
                await refresh_influences_of(writer, token_id, now)
                async with writer.write(token_id) as (conn, _):
                    bound = self.runtime.settings.memory.max_per_agent
                    await consolidate(conn, embedder, token_id, bound)
        except Exception:
            log.exception("learning consolidation failed")
        self.runtime.hub.poke()

    async def cleanup(self) -> None:
        try:
            await _drop_old_progress(self.runtime.engine, self.settings.progress_retention)
            released = await _release_orphans(self.runtime)
        except Exception:
            log.exception("generation cleanup failed")
            return
        if released:
            log.info("cleanup: released %d reservation(s) whose generation is gone", released)
            self.runtime.hub.poke()

    def report(self) -> dict[str, Any]:
        """For ``/v1/status``: this worker, its running jobs, and each configured provider's
        health (``Health.status``) with its last probe."""
        now = utcnow()
        return {
            "worker": self.ctx.owner,
            "running": len(self.dispatcher.running),
            "concurrency": self.settings.concurrency,
            "probes": dict(self.probes),
            "providers": {
                name: {**self.router.health.status(name, now), "probe": self.probes.get(name)}
                for name in sorted(self.router.providers)
            },
        }


def _probe_timeout(provider: Provider) -> ProviderError:
    return ProviderError(provider.name, "timeout", f"no answer within {provider.timeout:g}s")


async def _active_agents(
    engine: AsyncEngine, now: datetime, settings: GenerationSettings
) -> list[int]:
    since = now - timedelta(seconds=2 * settings.learning_interval)
    async with engine.connect() as conn:
        rows = await conn.scalars(
            select(Agent.token_id)
            .where(Agent.last_activity >= since)
            .order_by(Agent.last_activity.desc())
            .limit(ACTIVE_AGENTS)
        )
        return [int(t) for t in rows]


async def _drop_old_progress(engine: AsyncEngine, retention: float) -> None:
    """Progress is for watching a job live; a client resuming a day later gets the result
    events (kept), not the stream."""
    cutoff = utcnow() - timedelta(seconds=retention)
    newest = select(func.max(EventRecord.seq)).scalar_subquery()
    async with engine.begin() as conn:
        await conn.execute(
            delete(EventRecord).where(
                EventRecord.type == "generation.progress",
                EventRecord.created_at < cutoff,
                # Never the newest: SQLite numbers the next event max(seq) + 1, and a reused
                # seq would be one that readers have passed already.
                EventRecord.seq < newest,
            )
        )


async def _release_orphans(runtime: Runtime) -> int:
    """Reservations whose generation row is gone (a reorg removed an on-chain request
    while a worker held its reservation, and the worker died): released, once."""
    held, settled = aliased(CreditEntry), aliased(CreditEntry)
    settle_key = literal(SETTLE_PREFIX, String) + func.substr(
        held.idempotency_key, len(RESERVE_PREFIX) + 1
    )
    query = (
        select(held.token_id, held.generation_id)
        .where(
            held.kind == "reserve",
            held.generation_id.is_not(None),
            held.created_at < utcnow() - ORPHAN_AGE,
            ~select(Generation.id).where(Generation.id == held.generation_id).exists(),
            ~select(settled.id).where(settled.idempotency_key == settle_key).exists(),
        )
        .limit(ORPHAN_BATCH)
    )
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    released = 0
    for token_id, generation_id in rows:
        try:
            async with runtime.writer.write(int(token_id)) as (conn, agent):
                change = await release(conn, agent, str(generation_id))
        except AgentError:
            continue
        released += not change.replayed
    return released


@asynccontextmanager
async def run_generation(
    runtime: Runtime, providers: Mapping[str, Provider] | None = None
) -> AsyncIterator[GenerationService | None]:
    """The generation service of this process, if ``generation.worker`` is on; stopped
    (with the grace) on exit. ``providers``: the configured ones unless given."""
    if not runtime.settings.generation.worker:
        yield None
        return
    async with _providers(runtime.settings, providers) as opened:
        router = Router(opened, runtime.settings.routing, DbRecorder(runtime.engine))
        service = GenerationService(runtime, router)
        await service.start()
        try:
            yield service
        finally:
            await service.stop()


@asynccontextmanager
async def _providers(
    settings: Settings, given: Mapping[str, Provider] | None
) -> AsyncIterator[Mapping[str, Provider]]:
    if given is not None:
        yield given
        return
    async with open_providers(settings) as opened:
        yield opened
