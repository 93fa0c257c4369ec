"""Generation pipeline benchmark: overhead per job and jobs per second.

    .venv/bin/python -m bench.generation [--quick] [--postgres-url URL] [--out FILE]

Each run gets a fresh migrated database (a SQLite file, or a PostgreSQL database made for
it and dropped after) with agents inserted directly and credits granted through the ledger
(no chain: the worker needs neither Anvil nor the indexer). Jobs are queued as the API
queues them (``queue.create``: limits checked, credits reserved) before the clock starts.

- overhead: one job at a time, as a worker runs it (``queue.claim`` of one job, then
  ``worker.run_claimed``), with the offline local provider behind a wrapper that sleeps a
  fixed 100 ms before answering. A job's overhead is its wall time from the claim to the
  end of its final transaction, minus the provider's own time (the sleep and composing
  the text, timed inside the wrapper): p50 and p99. Also counted there: the SQL statements
  and transactions per job (a listener on the engine; connection pings are not statements).
  Baseline: the same SQL, job by job, through the bare driver (``bench.replay``).
- throughput: the same provider with no sleep, drained by worker PROCESSES (each one the
  daemon's ``Dispatcher`` with its default concurrency, on the same database): SQLite with
  one, PostgreSQL with one and with two; jobs / seconds from the first process's start to
  the last one's end, and the CPU time the worker processes used per job (the database
  server's own CPU is not in it).

The work is checked after each run: every job ``succeeded``, its credits committed once,
one mint row each; anything else fails the benchmark. The figures are not a pass/fail.
The router records each provider call in the spend ledger (``DbRecorder``), as the daemon's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shlex
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bench import replay
from bench.backfill import cpu_model, postgres_database, postgres_version
from inftd.agents.credits import grant
from inftd.agents.writer import AgentWriter
from inftd.daemon.cli.devnet import PROJECT_ROOT
from inftd.daemon.config import Settings
from inftd.daemon.generation.content import ContentStore
from inftd.daemon.generation.context import WorkerContext
from inftd.daemon.generation.dispatcher import Dispatcher
from inftd.daemon.generation.queue import claim, create
from inftd.daemon.generation.requests import parse_request
from inftd.daemon.generation.routing.recorder import DbRecorder
from inftd.daemon.generation.routing.router import Router
from inftd.daemon.generation.scheduler import priorities_of, runner_for, worker_name
from inftd.daemon.generation.worker import Control, run_claimed
from inftd.daemon.providers.base import TextRequest, TextResult
from inftd.daemon.providers.embedders import build_embedder
from inftd.daemon.providers.local import LocalProvider
from inftd.store import migrate
from inftd.store.db import create_async, sqlite_url
from inftd.store.models import Agent, CreditEntry, Generation, Mint

RESULTS_FILE = PROJECT_ROOT / "bench" / "RESULTS-generation.md"
POSTGRES_ENV = "INFTD_BENCH_POSTGRES_URL"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
LATENCY = 0.1  # seconds: the provider's fixed latency in the overhead runs
PACKAGE_TYPE = 2  # the top tier: 8 active jobs per agent
JOBS_PER_AGENT = 8  # its max_concurrent_jobs: queued jobs count against it
CREDITS = 1_000  # granted to each agent, far more than its jobs cost
OWNER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
WARMUP = 3  # overhead jobs run first and not counted (imports, caches, pool)


class TimedProvider(LocalProvider):
    """The local provider after a fixed latency; ``spent`` adds up its own time (the
    sleep and composing), not the time its caller spends between chunks."""

    def __init__(self, latency: float) -> None:
        super().__init__()
        self.latency = latency
        self.spent = 0.0

    async def stream_text(self, request: TextRequest) -> AsyncIterator[str | TextResult]:
        began = time.perf_counter()
        await asyncio.sleep(self.latency)
        pieces = [piece async for piece in super().stream_text(request)]
        self.spent += time.perf_counter() - began
        for piece in pieces:
            yield piece


@dataclass(frozen=True)
class Overhead:
    backend: str
    jobs: int
    p50_ms: float
    p99_ms: float
    wall_p50_ms: float
    statements: float  # per job
    transactions: float  # per job
    floor_p50_ms: float = 0.0  # the same SQL through the bare driver (``bench.replay``)


@dataclass(frozen=True)
class Throughput:
    backend: str
    workers: int
    jobs: int
    seconds: float
    cpu_seconds: float  # of the worker processes, together

    @property
    def per_second(self) -> float:
        return self.jobs / self.seconds


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def settings_for(data_dir: Path, url: str) -> Settings:
    # No probes (they would call the provider outside the jobs); the rest as configured.
    return Settings.load(data_dir=data_dir, database_url=url, generation={"probe_interval": 0})


def context(engine: AsyncEngine, settings: Settings, provider: LocalProvider) -> WorkerContext:
    recorder = DbRecorder(engine)
    router = Router({"local": provider}, settings.routing, recorder)
    return WorkerContext(
        engine=engine,
        writer=AgentWriter(engine),
        embedder=build_embedder(settings),
        settings=settings,
        content=ContentStore(settings.content_dir),
        run=runner_for(router),
        owner=worker_name(),
        recorder=recorder,
    )


# -- the database ---------------------------------------------------------------------------


async def prepare(url: str, data_dir: Path, jobs: int) -> None:
    """Agents with credits, and ``jobs`` text generations queued as the API queues them."""
    migrate.upgrade(url)
    engine = create_async(url)
    settings = settings_for(data_dir, url)
    writer = AgentWriter(engine)
    agents = -(-jobs // JOBS_PER_AGENT)
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(Agent), [_agent(t) for t in range(1, agents + 1)])
        for token in range(1, agents + 1):
            async with writer.write(token) as (conn, agent):
                await grant(conn, agent, CREDITS, "bench")
        for i in range(jobs):
            request = parse_request({"kind": "text", "prompt": f"bench job {i}: a short poem"})
            await create(writer, settings, 1 + i % agents, request, None)
    finally:
        await engine.dispose()


def _agent(token: int) -> dict[str, Any]:
    return {
        "token_id": token,
        "package_type": PACKAGE_TYPE,
        "owner": OWNER,
        "created_block": 1,
        "owner_since_block": 1,
    }


async def check_done(url: str, jobs: int) -> None:
    """Every job succeeded, its credits committed once, one mint row each."""
    engine = create_async(url)
    try:
        async with engine.connect() as conn:
            statuses = dict(
                (
                    await conn.execute(
                        select(Generation.status, func.count()).group_by(Generation.status)
                    )
                ).all()
            )
            commits = await _per_generation(conn, CreditEntry.generation_id, CreditEntry.kind)
            mints = await _per_generation(conn, Mint.generation_id, None)
    finally:
        await engine.dispose()
    if statuses != {"succeeded": jobs}:
        raise RuntimeError(f"expected {jobs} succeeded jobs, found {statuses}")
    if commits != {1: jobs}:
        raise RuntimeError(f"credits commits per job: {commits}, expected one each")
    if mints != {1: jobs}:
        raise RuntimeError(f"mint rows per job: {mints}, expected one each")


async def _per_generation(conn: Any, column: Any, kind: Any) -> dict[int, int]:
    """How many generations have 1, 2, ... rows of ``column`` (commits, or mints)."""
    rows = select(column, func.count().label("n")).group_by(column)
    if kind is not None:
        rows = rows.where(kind == "commit")
    counted = rows.subquery()
    query = select(counted.c.n, func.count()).group_by(counted.c.n)
    return {int(n): int(c) for n, c in (await conn.execute(query)).all()}


@contextlib.contextmanager
def database(backend: str, tmp: Path, admin_url: str | None, name: str) -> Iterator[str]:
    if backend == "SQLite":
        yield sqlite_url(tmp / f"{name}.db")
    else:
        assert admin_url is not None
        with postgres_database(admin_url) as url:
            yield url


# -- overhead -------------------------------------------------------------------------------


@dataclass
class Counter:
    """SQL statements and transactions on an engine, while ``on``."""

    on: bool = False
    statements: int = 0
    transactions: int = 0

    def watch(self, engine: AsyncEngine) -> None:
        event.listen(engine.sync_engine, "before_cursor_execute", self._statement)
        event.listen(engine.sync_engine, "begin", self._begin)

    def _statement(self, *_: Any) -> None:
        self.statements += self.on

    def _begin(self, *_: Any) -> None:
        self.transactions += self.on


async def overhead(backend: str, url: str, data_dir: Path, jobs: int) -> Overhead:
    await prepare(url, data_dir, jobs + WARMUP)
    with replay.copy(backend, url) as copied:
        found, captured = await _overhead(backend, url, data_dir, jobs)
        floor = replay.replay(backend, copied, captured.jobs)[WARMUP:]
    return replace(found, floor_p50_ms=percentile(floor, 50))


async def _overhead(
    backend: str, url: str, data_dir: Path, jobs: int
) -> tuple[Overhead, replay.Capture]:
    engine = create_async(url)
    settings = settings_for(data_dir, url)
    provider = TimedProvider(LATENCY)
    ctx = context(engine, settings, provider)
    priorities = priorities_of(settings)
    walls: list[float] = []
    overheads: list[float] = []
    counter = Counter()
    counter.watch(engine)
    captured = replay.Capture()
    captured.watch(engine)
    try:
        for i in range(jobs + WARMUP):
            counter.on = i >= WARMUP
            captured.next_job()
            spent, began = provider.spent, time.perf_counter()
            [claimed] = await claim(engine, ctx.owner, 1, settings.generation, priorities)
            outcome = await run_claimed(ctx, claimed, Control())
            wall = time.perf_counter() - began
            if outcome.status != "succeeded":
                raise RuntimeError(f"job {claimed.id}: {outcome.status}")
            if i >= WARMUP:
                walls.append(wall)
                overheads.append(wall - (provider.spent - spent))
    finally:
        await engine.dispose()
    await check_done(url, jobs + WARMUP)
    found = Overhead(
        backend,
        jobs,
        percentile(overheads, 50),
        percentile(overheads, 99),
        percentile(walls, 50),
        counter.statements / jobs,
        counter.transactions / jobs,
    )
    return found, captured


def percentile(values: Sequence[float], p: int) -> float:
    """In milliseconds."""
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1] * 1000


# -- throughput: worker processes -----------------------------------------------------------


async def drain(url: str, data_dir: Path) -> tuple[float, float, int, float]:
    """A worker process's part: the daemon's dispatcher claims and runs jobs until none is
    queued. Waits for "go" on stdin after setting up; returns its start, end (wall clock,
    comparable across processes), job count and CPU seconds."""
    engine = create_async(url)
    settings = settings_for(data_dir, url)
    ctx = context(engine, settings, TimedProvider(0.0))
    dispatcher = Dispatcher(ctx, priorities_of(settings))
    done = 0
    try:
        async with engine.connect() as conn:  # the pool's first connection, before the clock
            await conn.scalar(select(func.count()).select_from(Generation))
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        began, cpu = time.time(), time.process_time()
        while True:
            started = await dispatcher.dispatch()
            done += started
            if dispatcher.running:
                tasks = [r.task for r in dispatcher.running.values()]
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            elif not started and not await _queued(engine):
                break
            elif not started:
                await asyncio.sleep(0.005)  # the rest is another process's agents, for now
        ended, cpu = time.time(), time.process_time() - cpu
    finally:
        await engine.dispose()
    return began, ended, done, cpu


async def _queued(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        query = select(func.count()).select_from(Generation).where(Generation.status == "queued")
        return int(await conn.scalar(query) or 0)


def throughput(backend: str, url: str, data_dir: Path, jobs: int, workers: int) -> Throughput:
    asyncio.run(prepare(url, data_dir, jobs))
    command = [sys.executable, "-m", "bench.generation", "--worker", url, str(data_dir)]
    processes = [
        subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(workers)
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            if process.stdout.readline().strip() != "ready":
                raise RuntimeError("a worker process failed to start")
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        reports = [_report(process) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    asyncio.run(check_done(url, jobs))
    seconds = max(r["end"] for r in reports) - min(r["start"] for r in reports)
    say(f"  per process: {[r['jobs'] for r in reports]} jobs")
    return Throughput(backend, workers, jobs, seconds, sum(r["cpu"] for r in reports))


def _report(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = process.communicate(timeout=600)
    if process.returncode != 0:
        raise RuntimeError(f"a worker process exited with {process.returncode}")
    report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return report


def worker_main(url: str, data_dir: str) -> int:
    began, ended, done, cpu = asyncio.run(drain(url, Path(data_dir)))
    print(json.dumps({"start": began, "end": ended, "jobs": done, "cpu": cpu}), flush=True)
    return 0


# -- all of it ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    overhead_jobs: int
    throughput_jobs: int
    postgres_url: str | None
    out: Path
    command: str
    load: float = 0.0  # the 1-minute load average as the runs began


def parse_args(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.generation", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small runs (under a minute)")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES),
        help=f"admin URL of the PostgreSQL server (env {POSTGRES_ENV}); '' skips PostgreSQL",
    )
    parser.add_argument("--out", type=Path, default=RESULTS_FILE, help="where the table goes")
    args = parser.parse_args(argv)
    return Options(
        overhead_jobs=40 if args.quick else 200,
        throughput_jobs=120 if args.quick else 600,
        postgres_url=args.postgres_url or None,
        out=args.out,
        command=shlex.join([".venv/bin/python", "-m", "bench.generation", *argv]),
    )


def measure(options: Options, tmp: Path) -> tuple[list[Overhead], list[Throughput]]:
    backends = ["SQLite"] + (["PostgreSQL"] if options.postgres_url else [])
    overheads, rates = [], []
    for backend in backends:
        say(f"{backend}: overhead, {options.overhead_jobs} jobs one at a time")
        data = tmp / f"{backend}-overhead"
        with database(backend, tmp, options.postgres_url, "overhead") as url:
            found = asyncio.run(overhead(backend, url, data, options.overhead_jobs))
        say(
            f"  p50 {found.p50_ms:.1f} ms, p99 {found.p99_ms:.1f} ms; its SQL through the "
            f"bare driver {found.floor_p50_ms:.1f} ms"
        )
        overheads.append(found)
    runs = [("SQLite", 1)] + ([("PostgreSQL", 1), ("PostgreSQL", 2)] if len(backends) > 1 else [])
    for backend, workers in runs:
        say(f"{backend}: throughput, {options.throughput_jobs} jobs, {workers} process(es)")
        data = tmp / f"{backend}-{workers}"
        with database(backend, tmp, options.postgres_url, f"throughput-{workers}") as url:
            rate = throughput(backend, url, data, options.throughput_jobs, workers)
        say(f"  {rate.per_second:.1f} jobs/s")
        rates.append(rate)
    return overheads, rates


def render(overheads: list[Overhead], rates: list[Throughput], options: Options) -> str:
    pg = postgres_version(options.postgres_url) if options.postgres_url else None
    lines = [
        "# inftd generation pipeline benchmark: overhead per job and throughput",
        "",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC",
        f"- Machine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()} "
        f"{platform.release()}",
        f"- Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
        + (f", PostgreSQL {pg}" if pg else ""),
        f"- Command: `{options.command}`",
        f"- Load average (1 min, the machine's, other work included): {options.load:.1f} as "
        f"the runs began, {os.getloadavg()[0]:.1f} as they ended",
        f"- Provider: the local provider behind a wrapper sleeping {LATENCY * 1000:.0f} ms "
        "(overhead) or not at all (throughput); routed, recorded in the spend ledger.",
        "",
        "Overhead: wall time from the claim to the end of the final transaction, minus the "
        "provider's own time; one job at a time. Baseline: each job's SQL (every statement, "
        "commit and rollback it sent) replayed through the bare driver (`sqlite3`, "
        "synchronous `psycopg`) on a copy of the database taken before the run: the "
        "database's own part of the overhead.",
        "",
        "| database | jobs | overhead p50 ms | overhead p99 ms | job wall p50 ms "
        "| SQL statements / job | transactions / job | its SQL, bare driver, p50 ms "
        "| overhead ÷ bare SQL |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for o in overheads:
        lines.append(
            f"| {o.backend} | {o.jobs} | {o.p50_ms:.1f} | {o.p99_ms:.1f} | {o.wall_p50_ms:.1f} "
            f"| {o.statements:.1f} | {o.transactions:.1f} | {o.floor_p50_ms:.1f} "
            f"| {o.p50_ms / o.floor_p50_ms:.1f}x |"
        )
    lines += [
        "",
        "Throughput: zero-latency provider, worker processes on one database (each the "
        "daemon's dispatcher, concurrency 4).",
        "",
        "| database | worker processes | jobs | seconds | jobs/s | ÷ one process "
        "| worker CPU ms / job |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    one = {r.backend: r.per_second for r in rates if r.workers == 1}
    for r in rates:
        ratio = r.per_second / one[r.backend]
        lines.append(
            f"| {r.backend} | {r.workers} | {r.jobs} | {r.seconds:.2f} | {r.per_second:.1f} "
            f"| {ratio:.2f}x | {r.cpu_seconds / r.jobs * 1000:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--worker"]:
        return worker_main(args[1], args[2])
    options = replace(parse_args(args), load=os.getloadavg()[0])
    with tempfile.TemporaryDirectory(prefix="inftd-bench-generation-") as tmp:
        overheads, rates = measure(options, Path(tmp))
    text = render(overheads, rates, options)
    print(text)
    options.out.write_text(text)
    say(f"written to {options.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
