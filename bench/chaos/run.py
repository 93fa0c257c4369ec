"""One chaos run: the world up, the workload and the faults for ``seconds``, then calm,
quiescence (bounded), the invariant checks, and a report."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.chaos import faults
from bench.chaos.chain import Chain, ChainFacts
from bench.chaos.gate import holes
from bench.chaos.invariants import Findings, Snapshot, check, snapshot
from bench.chaos.workload import Tally, Workload
from bench.chaos.world import World, open_world
from inftd.daemon.cli.backfill import backfill
from inftd.daemon.cli.devnet import rpc_call
from inftd.daemon.config import Settings
from inftd.store import migrate
from inftd.store.db import create_async, sqlite_url
from inftd.store.models import Generation, Mint

log = logging.getLogger(__name__)

WORKERS = 4  # workload tasks at once
RPC_FAULT_RATE = 0.03  # of the daemons' RPC requests, besides the bursts
UNSETTLED_GENERATIONS = ("queued", "running")
UNSETTLED_MINTS = ("pending", "sent", "mined")


@dataclass(frozen=True)
class Options:
    seconds: float = 60.0
    seed: int = 1
    database_url: str | None = None  # None: a SQLite file in the work folder
    processes: int = 1
    settle: float = 120.0  # seconds quiescence may take at most
    # The daemons' confirmation depth; reorgs then stay shallower (0: any depth up to
    # faults.MAX_REORG_DEPTH, acting on unconfirmed events as the dev chain does).
    confirmations: int = 0
    work_dir: Path = Path(".chaos")


@dataclass
class Report:
    options: Options
    tally: Tally = field(default_factory=Tally)
    strikes: faults.Strikes = field(default_factory=faults.Strikes)
    rpc_faults: Counter[str] = field(default_factory=Counter)
    settled: bool = False
    settle_seconds: float = 0.0
    generations: Counter[str] = field(default_factory=Counter)
    mints: Counter[str] = field(default_factory=Counter)
    agents: int = 0
    head: int = 0
    stale_logs: int = 0  # eth_getLogs answers from removed blocks (see chain.Chain.facts)
    findings: Findings = field(default_factory=Findings)

    @property
    def operations(self) -> int:
        return sum(self.tally.ops.values())

    @property
    def faults(self) -> int:
        return sum(self.rpc_faults.values()) + sum(self.strikes.provider.values())

    @property
    def violations(self) -> int:
        return len(self.findings.violations)


async def counts(engine: AsyncEngine) -> tuple[Counter[str], Counter[str]]:
    async with engine.connect() as conn:
        generations = await conn.execute(
            select(Generation.status, func.count()).group_by(Generation.status)
        )
        mints = await conn.execute(select(Mint.status, func.count()).group_by(Mint.status))
        return Counter({s: n for s, n in generations}), Counter({s: n for s, n in mints})


async def _caught_up(http: aiohttp.ClientSession, world: World, head: int) -> bool:
    for url in world.daemons.urls():
        try:
            async with http.get(f"{url}/v1/status") as answer:
                indexer = (await answer.json())["indexer"]
        except (aiohttp.ClientError, TimeoutError, KeyError):
            return False
        if indexer["indexedBlock"] != head:
            return False
    return True


class NodeBroken(Exception):
    """Anvil lost blocks: the run's chain is no chain, the fault is the node's, not inftd's."""


async def settle(world: World, engine: AsyncEngine, bound: float) -> bool:
    """Until nothing is queued, running or unmined and every daemon has indexed the head,
    twice in a row (a job can be between two of those); False if ``bound`` passed first."""
    deadline = time.monotonic() + bound
    quiet, buried = 0, -1  # buried: the last head empty blocks were mined over
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            generations, mints = await counts(engine)
            busy = sum(generations[s] for s in UNSETTLED_GENERATIONS)
            busy += sum(mints[s] for s in UNSETTLED_MINTS)
            head = await asyncio.to_thread(lambda: int(world_chain(world).w3.eth.block_number))
            if world.confirmations and head != buried:  # confirm what the last blocks hold
                for _ in range(world.confirmations):
                    await asyncio.to_thread(rpc_call, world.chain.url, "evm_mine")
                head = buried = head + world.confirmations
            quiet = quiet + 1 if busy == 0 and await _caught_up(http, world, head) else 0
            if quiet >= 2:
                return True
            await asyncio.sleep(0.5)
    return False


def world_chain(world: World) -> Chain:
    return Chain(world.chain.url, world.deployment)


async def recompute(world: World) -> Snapshot:
    """A new SQLite database indexed from scratch from the canonical chain."""
    folder = world.work_dir / "recompute"
    folder.mkdir(parents=True, exist_ok=True)
    url = sqlite_url(folder / f"recompute-{time.time_ns()}.db")
    await asyncio.to_thread(migrate.upgrade, url)
    settings = Settings.load(
        data_dir=folder,
        database_url=url,
        chain={
            "rpc_urls": [world.chain.url],
            "deployment_file": world.work_dir / "deployment.json",
        },
    )
    await backfill(settings, None, None)
    engine = create_async(url)
    try:
        return await snapshot(engine)
    finally:
        await engine.dispose()


async def verify(
    world: World, database_url: str, accepted: dict[str, int]
) -> tuple[Findings, ChainFacts]:
    """The invariant checks of the database at ``database_url`` against ``world``'s chain."""
    lost = await asyncio.to_thread(holes, world.chain.url, world.deployment.deploy_block)
    if lost:  # nothing can be checked against such a node; gate.py says why it happens
        raise NodeBroken(f"Anvil has no block {lost[0]} (of {len(lost)} missing) below its head")
    facts = await asyncio.to_thread(world_chain(world).facts)
    engine = create_async(database_url)
    try:
        db = await snapshot(engine)
    finally:
        await engine.dispose()
    return check(db, facts, accepted, await recompute(world)), facts


async def _strike(world: World, report: Report, seconds: float) -> None:
    """The workload and the faults, for ``seconds``."""
    stop = asyncio.Event()
    seed = report.options.seed
    async with aiohttp.ClientSession() as http:
        workload = Workload(world, report.tally, http)
        tasks = [
            asyncio.create_task(workload.run(stop, random.Random(seed * 100 + i)))
            for i in range(WORKERS)
        ]
        for i, loop in enumerate(
            (faults.kills, faults.reorgs, faults.rpc_faults, faults.provider_faults)
        ):
            tasks.append(
                asyncio.create_task(
                    loop(world, stop, random.Random(seed * 1000 + i), report.strikes)
                )
            )
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.gather(*tasks)


@asynccontextmanager
async def chaos(options: Options) -> AsyncIterator[tuple[World, Report]]:
    """Run it; yields the world (still up, daemons stopped) and the report, checked."""
    report = Report(options)
    async with open_world(
        options.work_dir,
        database_url=options.database_url,
        processes=options.processes,
        seed=options.seed,
        rpc_fault_rate=RPC_FAULT_RATE,
        confirmations=options.confirmations,
    ) as world:
        await _strike(world, report, options.seconds)
        faults.calm(world)
        for i, daemon in enumerate(world.daemons.daemons):  # killed as the run ended
            if not daemon.alive:
                await asyncio.to_thread(world.daemons.revive, i)
        engine = create_async(world.database_url)
        began = time.monotonic()
        try:
            report.settled = await settle(world, engine, options.settle)
            report.settle_seconds = time.monotonic() - began
        finally:
            await engine.dispose()
        await asyncio.to_thread(world.daemons.stop)
        report.rpc_faults = Counter(world.proxy.faults_injected)
        engine = create_async(world.database_url)
        try:
            report.generations, report.mints = await counts(engine)
        finally:
            await engine.dispose()
        report.findings, facts = await verify(world, world.database_url, report.tally.accepted)
        report.agents, report.head = len(facts.purchases), facts.head
        report.stale_logs = facts.stale_logs
        yield world, report
