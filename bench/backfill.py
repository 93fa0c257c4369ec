"""Indexer benchmark: backfill N events from a local Anvil into SQLite and PostgreSQL.

    .venv/bin/python -m bench.backfill [--events 100000] [--quick]

One run, one chain, every figure measured in it (see bench/README.md for what each means):

1. generate: a fresh Anvil, the contracts, and N events (BulkBuyer: many purchases a
   transaction, Transfer + PackagePurchased each) after thousands of empty blocks; timed
   apart, never part of a ratio;
2. inftd backfill into a fresh SQLite file, then into a fresh PostgreSQL database
   (``Indexer.sync_once`` with a small reorg window, so nearly all goes the bulk path);
3. the raw limit: the same eth_getLogs ranges each backfill made, fetched and JSON-parsed
   with no decoding or storing (best of a few passes); around each of these passes and
   each backfill, the CPU seconds used by this process, Anvil and the PostgreSQL server's
   backends (from /proc), and the shortest wall time and best ratio that CPU allows;
4. a naive baseline: web3.py ``get_logs`` per 1,000 blocks, web3 event decoding, and one
   ORM insert + commit per event into SQLite (on a prefix, extrapolated, when asked);
5. live latency: the daemon in-process (new heads over eth_subscribe), purchases mined one
   by one, time from the receipt to ``GET /v1/agents/{id}`` answering 200.

It prints a Markdown table and writes it to bench/RESULTS-backfill.md. Benchmarks print
figures; they are never pass/fail assertions in the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import platform
import shlex
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session
from web3 import Web3
from web3.contract.contract import ContractEvent

from inftd.daemon.cli.deploy import account_from_key, deploy_contracts
from inftd.daemon.cli.devnet import (
    BUYER,
    DEPLOYER,
    FRIEND,
    MINTER,
    PROJECT_ROOT,
    Anvil,
    foundry_binary,
    rpc_call,
)
from inftd.daemon.cli.run import serve
from inftd.daemon.config import DEFAULT_PACKAGES, Settings
from inftd.indexer.abi import load_artifact
from inftd.indexer.decode import Decoder
from inftd.indexer.deployment import Deployment
from inftd.indexer.follower import Indexer, IndexerConfig
from inftd.indexer.ranges import AdaptiveRange, fetch_logs_in_order
from inftd.indexer.rpc import ChainRpc, LogDict, endpoint
from inftd.store import migrate
from inftd.store.db import create_async, create_sync_engine, sqlite_url
from inftd.store.models import Agent, ChainEvent

RESULTS_FILE = PROJECT_ROOT / "bench" / "RESULTS-backfill.md"
BULK_ARTIFACT = PROJECT_ROOT / "out" / "BulkBuyer.sol" / "BulkBuyer.json"
POSTGRES_ENV = "INFTD_BENCH_POSTGRES_URL"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"

BLOCK_GAS_LIMIT = 2_000_000_000  # Anvil's block gas limit: a few hundred purchases a block
PURCHASE_GAS = 100_000  # gas budget of one purchase inside a bulk transaction (~61k used)
BUY_SELECTOR = keccak(text="buy(address,uint8,uint256)")[:4]
PURCHASE_SELECTOR = keccak(text="purchasePackage(uint8)")[:4]
MINE_CHUNK = 500  # blocks per anvil_mine call
RICH = hex(10**30)  # wei given to the bulk buyer: every package type, many times over

WINDOW = 16  # reorg window of the backfill runs: all but the last 16 blocks go in bulk
RAW_PASSES = 3  # raw-limit passes per backfill; the fastest one is the limit
NAIVE_CHUNK = 1_000  # blocks per web3.py get_logs in the naive baseline
LIVE_POLL_INTERVAL = 1.0  # the daemon's head poll (seconds): new heads come over the WebSocket
API_POLL = 0.002  # seconds between GET /v1/agents/{id} attempts while waiting for an agent
RECEIPT_POLLS = 10_000  # eth_getTransactionReceipt attempts, 1 ms apart, before giving up
LIVE_TIMEOUT = 30.0  # seconds one purchase may take to show up on the API
AIM_RAW = 0.5
AIM_NAIVE = 5.0
CLK_TCK = os.sysconf("SC_CLK_TCK")  # /proc/<pid>/stat counts CPU time in these ticks
CPU_SAMPLE = 0.05  # seconds between reads of the PostgreSQL backends' CPU during a pass


class BenchError(RuntimeError):
    pass


def say(line: str) -> None:
    print(f"bench: {line}", file=sys.stderr, flush=True)


# -- options -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    events: int
    per_tx: int
    empty_blocks: int
    gap: int
    naive_events: int
    live_samples: int
    postgres_url: str | None
    out: Path
    command: str


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.backfill", description=__doc__)
    parser.add_argument("--events", type=int, help="events to generate (default 100000)")
    parser.add_argument("--quick", action="store_true", help="10,000 events, fewer samples")
    parser.add_argument("--per-tx", type=int, default=250, help="purchases per bulk transaction")
    parser.add_argument("--empty-blocks", type=int, help="empty blocks before the purchases")
    parser.add_argument("--gap", type=int, default=0, help="empty blocks after each bulk tx")
    parser.add_argument("--naive-events", type=int, help="events the naive baseline stores")
    parser.add_argument("--live-samples", type=int, help="purchases timed for live latency")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES),
        help=f"admin URL of the PostgreSQL server (env {POSTGRES_ENV}); '' skips PostgreSQL",
    )
    parser.add_argument("--out", type=Path, default=RESULTS_FILE, help="where the table goes")
    args = parser.parse_args(argv)
    events = args.events or (10_000 if args.quick else 100_000)
    return Options(
        events=events,
        per_tx=args.per_tx if not args.quick else min(args.per_tx, 100),
        empty_blocks=args.empty_blocks if args.empty_blocks is not None else events * 38 // 1000,
        gap=max(0, args.gap),
        naive_events=args.naive_events or min(events, 2_000 if args.quick else 10_000),
        live_samples=args.live_samples or (20 if args.quick else 100),
        postgres_url=args.postgres_url or None,
        out=args.out,
        command=shlex.join([".venv/bin/python", "-m", "bench.backfill", *(argv or sys.argv[1:])]),
    )


# -- figures -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds (user + system) used during one timed pass; None: could not be read."""

    python: float  # this process, all threads
    anvil: float | None
    server: float | None  # the PostgreSQL backends serving the bench database
    database_server: bool  # whether a server took part (False: SQLite, the raw limit)
    others: float | None = None  # every other process on the machine (not in ``total``)

    @property
    def total(self) -> float:
        """Of the parts known; a lower bound when one is not (see ``complete``)."""
        return self.python + (self.anvil or 0.0) + (self.server or 0.0)

    @property
    def complete(self) -> bool:
        return self.anvil is not None and (self.server is not None or not self.database_server)


@dataclass(frozen=True)
class Measure:
    events: int
    blocks: int
    seconds: float
    requests: int = 0  # eth_getLogs requests made
    note: str = ""
    cpu: CpuUse | None = None  # during the timed part

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds

    @property
    def blocks_per_s(self) -> float:
        return self.blocks / self.seconds


@dataclass(frozen=True)
class Latency:
    seconds: list[float]

    def percentile(self, p: float) -> float:
        """Nearest rank: the smallest sample at or above ``p`` percent of them."""
        ordered = sorted(self.seconds)
        rank = max(1, -(-len(ordered) * p // 100))
        return ordered[int(rank) - 1]


@dataclass
class Backend:
    name: str
    url: str
    version: str | None = None  # the server's, for a database server
    inftd: Measure | None = None
    raw: Measure | None = None
    live: Latency | None = None


@dataclass
class Results:
    chain: ChainInfo
    backends: list[Backend] = field(default_factory=list)
    naive: Measure | None = None


# -- the chain -----------------------------------------------------------------------------


class BenchAnvil(Anvil):
    """Anvil with a block gas limit big enough for hundreds of purchases a transaction, and
    no historical states kept (it mines faster; logs and blocks are all still served)."""

    def _command(self) -> list[str]:
        return [*super()._command(), "--gas-limit", str(BLOCK_GAS_LIMIT), "--prune-history"]

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def __enter__(self) -> BenchAnvil:
        self.start()
        return self


@dataclass(frozen=True)
class ChainInfo:
    deployment: Deployment
    start: int  # first block indexed: the deployment's
    head: int
    purchases: int
    bulk_txs: int
    seconds: float  # to deploy and generate

    @property
    def blocks(self) -> int:
        return self.head - self.start + 1


def bulk_buyer_bytecode() -> str:
    """BulkBuyer's creation code, from a Forge build (cached by Forge between runs)."""
    forge = str(foundry_binary("forge"))
    build = subprocess.run(
        [forge, "build", "--root", str(PROJECT_ROOT)], cwd=PROJECT_ROOT, capture_output=True
    )
    if build.returncode != 0:
        raise BenchError(f"forge build failed:\n{build.stderr.decode(errors='replace')}")
    code: str = json.loads(BULK_ARTIFACT.read_text())["bytecode"]["object"]
    return code if code.startswith("0x") else "0x" + code


def transact(url: str, tx: dict[str, str]) -> dict[str, Any]:
    """Send from an unlocked Anvil account (automine) and return the successful receipt."""
    tx_hash = rpc_call(url, "eth_sendTransaction", [tx], timeout=120)
    for _ in range(RECEIPT_POLLS):
        receipt: dict[str, Any] | None = rpc_call(url, "eth_getTransactionReceipt", [tx_hash])
        if receipt is not None:
            if receipt["status"] != "0x1":
                raise BenchError(f"transaction {tx_hash} reverted")
            return receipt
        time.sleep(0.001)
    raise BenchError(f"no receipt for {tx_hash}")


def deploy(url: str) -> Deployment:
    return deploy_contracts(
        url,
        account_from_key(DEPLOYER.key, "deployer"),
        minter=MINTER.address,
        operator=DEPLOYER.address,
        packages=DEFAULT_PACKAGES,
        credit_price_wei=10**14,
        progress=lambda line: None,
    )


def buy_in_bulk(url: str, bulk: str, package: str, package_type: int, n: int) -> None:
    args = abi_encode(["address", "uint8", "uint256"], [package, package_type, n])
    transact(
        url,
        {
            "from": FRIEND.address,
            "to": bulk,
            "data": "0x" + (BUY_SELECTOR + args).hex(),
            "value": hex(n * DEFAULT_PACKAGES[package_type].price_wei),
            "gas": hex(100_000 + n * PURCHASE_GAS),
        },
    )


def mine(url: str, blocks: int) -> None:
    for done in range(0, blocks, MINE_CHUNK):
        rpc_call(url, "anvil_mine", [hex(min(MINE_CHUNK, blocks - done))], timeout=300)


def generate(url: str, options: Options) -> ChainInfo:
    """Deploy; mine the empty blocks; then the purchases, one bulk transaction a block.

    Anvil recomputes its whole state root for every block, so a block costs more the more
    tokens exist: the empty blocks are mined first, while the state is small.
    """
    began = time.perf_counter()
    deployment = deploy(url)
    rpc_call(url, "anvil_setBalance", [FRIEND.address, RICH])
    code = bulk_buyer_bytecode()
    bulk = transact(url, {"from": FRIEND.address, "data": code})["contractAddress"]
    mine(url, options.empty_blocks)
    purchases, txs = options.events // 2, 0
    for done in range(0, purchases, options.per_tx):
        n = min(options.per_tx, purchases - done)
        buy_in_bulk(url, bulk, deployment.package_address, txs % len(DEFAULT_PACKAGES), n)
        mine(url, options.gap)
        txs += 1
    head = int(rpc_call(url, "eth_blockNumber"), 16)
    seconds = time.perf_counter() - began
    return ChainInfo(deployment, deployment.deploy_block, head, purchases, txs, seconds)


# -- CPU used during a timed pass ----------------------------------------------------------


def proc_cpu(pid: int) -> tuple[int, float] | None:
    """(start time in ticks, user + system CPU seconds) of a process and all its threads,
    from ``/proc/<pid>/stat``; None when it is gone or not readable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the command name, which may hold spaces: [0] is field 3 (state), so
    # utime (14), stime (15) and starttime (22) are [11], [12] and [19].
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[19]), (int(fields[11]) + int(fields[12])) / CLK_TCK


class ServerCpu:
    """CPU of the PostgreSQL backends serving one database, from ``/proc``.

    A backend's command line is ``postgres: [cluster: ]user dbname host(port) state``; the
    bench database's name is unique to the run, so a process showing it serves the run.
    Read at the start and the end, a backend counts its CPU in between; one born in
    between counts all of it (a forked process starts at zero). One that ended in between
    (the pool closing an overflow connection) would be lost at the end, so a thread reads
    them every ``CPU_SAMPLE`` seconds and keeps each one's last figure: at most that
    interval of its CPU is missed. The engine stays open until after the last read, so the
    pool's own connections are read to the end. Processes serving the whole cluster
    (WAL writer, checkpointer) show no database and are not counted."""

    def __init__(self, database: str) -> None:
        self._name = database.encode()
        self._others: set[int] = set()  # pids seen not to serve the bench database
        self._start: dict[tuple[int, int], float] = {}  # (pid, start time) → CPU at start
        self._last: dict[tuple[int, int], float] = {}
        self._unreadable = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="bench-cpu", daemon=True)
        self.own_cpu = 0.0  # the sampling thread's CPU, which is not the indexer's

    def _ours(self, pid: int) -> bool:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False  # gone already
        return cmdline.startswith(b"postgres:") and self._name in cmdline

    def read(self) -> None:
        for entry in os.listdir("/proc"):
            # A pid reused by a new bench backend within one pass would need the whole
            # pid space (pid_max) to wrap meanwhile: not cached against.
            if not entry.isdigit() or int(entry) in self._others:
                continue
            pid = int(entry)
            if not self._ours(pid):
                self._others.add(pid)
                continue
            figure = proc_cpu(pid)
            if figure is None:
                self._unreadable |= Path(f"/proc/{pid}").exists()
                continue
            self._last[(pid, figure[0])] = figure[1]

    def _sample(self) -> None:
        began = time.thread_time()
        while not self._stop.wait(CPU_SAMPLE):
            self.read()
        self.own_cpu = time.thread_time() - began

    def start(self) -> None:
        self.read()
        self._start = dict(self._last)
        self._thread.start()

    def stop(self) -> float | None:
        """The backends' CPU seconds since ``start``; None if they could not be read."""
        self._stop.set()
        self._thread.join()
        self.read()
        if self._unreadable or not self._last:  # the run surely had a backend: not seen
            return None
        return sum(cpu - self._start.get(key, 0.0) for key, cpu in self._last.items())


class CpuMeter:
    """CPU seconds used between ``start`` and ``stop`` by this process (all its threads,
    aiosqlite's writer included), Anvil, and the PostgreSQL backends of ``database``."""

    def __init__(self, anvil_pid: int | None, database: str | None = None) -> None:
        self._anvil_pid = anvil_pid
        self._server = ServerCpu(database) if database else None
        self._python = 0.0
        self._anvil: tuple[int, float] | None = None
        self._machine: float | None = None

    def _anvil_cpu(self) -> tuple[int, float] | None:
        return proc_cpu(self._anvil_pid) if self._anvil_pid else None

    def start(self) -> None:
        if self._server:
            self._server.start()
        self._machine = machine_busy()
        self._anvil = self._anvil_cpu()
        self._python = time.process_time()

    def stop(self) -> CpuUse:
        python = time.process_time() - self._python
        anvil_now, anvil = self._anvil_cpu(), None
        if self._anvil and anvil_now and anvil_now[0] == self._anvil[0]:  # the same process
            anvil = anvil_now[1] - self._anvil[1]
        machine_now = machine_busy()
        server = self._server.stop() if self._server else None
        sampler = self._server.own_cpu if self._server else 0.0
        python = max(0.0, python - sampler)  # the thread's start can precede ``start``'s clock
        use = CpuUse(python, anvil, server, database_server=self._server is not None)
        if use.complete and machine_now is not None and self._machine is not None:
            # everything else that ran meanwhile (not the sampling thread, which is
            # measurement): was the machine as idle as the figures assume?
            rest = machine_now - self._machine - use.total - sampler
            use = dataclasses.replace(use, others=max(0.0, rest))
        return use


def machine_busy() -> float | None:
    """CPU seconds all processes have used since boot (every core; idle and iowait not),
    from the first line of ``/proc/stat``; None if it cannot be read."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(n) for n in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal (guest time is counted in user)
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLK_TCK


def database_name(db_url: str) -> str | None:
    """The database whose server backends count, for PostgreSQL (SQLite has no server)."""
    url = make_url(db_url)
    return url.database if url.get_backend_name() == "postgresql" else None


# -- raw limit and inftd backfill -----------------------------------------------------------


class RecordingRpc(ChainRpc):
    """A ChainRpc that notes every eth_getLogs range it is asked for."""

    def __init__(self, urls: list[str]) -> None:
        super().__init__(urls)
        self.ranges: list[tuple[int, int]] = []

    async def get_logs(
        self,
        from_block: int,
        to_block: int,
        addresses: list[str],
        topics: list[list[str]] | None = None,
    ) -> list[LogDict]:
        self.ranges.append((from_block, to_block))
        return await super().get_logs(from_block, to_block, addresses, topics)

    def sizes(self) -> list[int]:
        return [last - first + 1 for first, last in sorted(self.ranges)]


class ScriptedRange(AdaptiveRange):
    """Hands out recorded range sizes in order, then one range for whatever is left."""

    def __init__(self, sizes: Sequence[int]) -> None:
        super().__init__()
        self._script = deque(sizes)

    @property
    def size(self) -> int:
        return self._script.popleft() if self._script else self.maximum

    @size.setter
    def size(self, value: int) -> None:
        pass  # the script decides

    def record_success(self, blocks: int, logs: int, seconds: float) -> None:
        pass

    def record_too_large(self, blocks: int, suggested: int | None) -> int:
        return max(1, blocks // 2)


async def raw_pass(
    url: str, chain: ChainInfo, sizes: Sequence[int], anvil_pid: int | None = None
) -> Measure:
    """eth_getLogs over the whole span in the given ranges, JSON-parsed, nothing more."""
    decoder = Decoder(chain.deployment)
    rpc = ChainRpc([url])
    events = requests = 0
    meter = CpuMeter(anvil_pid)
    try:
        meter.start()
        began = time.perf_counter()
        stream = fetch_logs_in_order(
            rpc,
            chain.start,
            chain.head,
            decoder.addresses,
            decoder.topics,
            ScriptedRange(sizes),
            IndexerConfig().concurrency,
        )
        async with aclosing(stream):
            async for _, _, logs in stream:
                events += len(logs)
                requests += 1
        seconds = time.perf_counter() - began
        return Measure(events, chain.blocks, seconds, requests, cpu=meter.stop())
    finally:
        await rpc.close()


async def raw_limit(anvil: BenchAnvil, chain: ChainInfo, sizes: Sequence[int]) -> Measure:
    passes = [await raw_pass(anvil.url, chain, sizes, anvil.pid) for _ in range(RAW_PASSES)]
    return min(passes, key=lambda m: m.seconds)


async def inftd_pass(db_url: str, anvil: BenchAnvil, chain: ChainInfo) -> tuple[Measure, list[int]]:
    """``Indexer.sync_once`` from the deployment block to the head, into a fresh database."""
    migrate.upgrade(db_url)
    engine = create_async(db_url)
    rpc = RecordingRpc([anvil.url])
    meter = CpuMeter(anvil.pid, database_name(db_url))
    try:
        indexer = Indexer(rpc, engine, chain.deployment, IndexerConfig(window=WINDOW))
        meter.start()
        began = time.perf_counter()
        reached = await indexer.sync_once()
        seconds = time.perf_counter() - began
        cpu = meter.stop()  # before the engine is disposed: its backends are still there
        await check_indexed(engine, chain, indexer.stats.problems)
        blocks = reached - chain.start + 1
        stats = indexer.stats
        note = f"{stats.direct:,} of {stats.stored:,} events went the fast path (stored applied)"
        measure = Measure(stats.stored, blocks, seconds, len(rpc.ranges), note, cpu)
        return measure, rpc.sizes()
    finally:
        await rpc.close()
        await engine.dispose()


async def check_indexed(engine: AsyncEngine, chain: ChainInfo, problems: int) -> None:
    """Every purchase became an agent, every event was applied: the run did the real work."""
    async with engine.connect() as conn:
        agents = await conn.scalar(select(func.count()).select_from(Agent))
        pending = await conn.scalar(
            select(func.count()).select_from(ChainEvent).where(ChainEvent.applied.is_(False))
        )
    if agents != chain.purchases or pending or problems:
        raise BenchError(
            f"backfill incomplete: {agents} agents for {chain.purchases} purchases, "
            f"{pending} events unapplied, {problems} problems"
        )


async def backfill(backend: Backend, anvil: BenchAnvil, chain: ChainInfo) -> None:
    say(f"inftd backfill into {backend.name}")
    backend.inftd, sizes = await inftd_pass(backend.url, anvil, chain)
    say(f"  {backend.inftd.events:,} events in {backend.inftd.seconds:.2f} s; raw limit")
    backend.raw = await raw_limit(anvil, chain, sizes)
    if backend.raw.events != backend.inftd.events:
        raise BenchError(
            f"inftd stored {backend.inftd.events:,} events, "
            f"the raw read found {backend.raw.events:,}"
        )


# -- naive baseline ------------------------------------------------------------------------


@dataclass
class NaiveTally:
    fetch_seconds: float = 0.0
    store_seconds: float = 0.0
    fetched: int = 0
    stored: int = 0


def event_topic(entry: dict[str, Any]) -> bytes:
    types = ",".join(i["type"] for i in entry["inputs"])
    return keccak(text=f"{entry['name']}({types})")


def naive_events(w3: Web3, deployment: Deployment) -> dict[bytes, ContractEvent]:
    abi = load_artifact("INFTPackage").abi
    contract = w3.eth.contract(Web3.to_checksum_address(deployment.package_address), abi=abi)
    return {
        event_topic(entry): contract.events[entry["name"]]()
        for entry in abi
        if entry["type"] == "event"
    }


def naive_store(
    session: Session, events: dict[bytes, ContractEvent], chain_id: int, log: Any
) -> None:
    event = events[bytes(log["topics"][0])].process_log(log)
    args = {k: v.hex() if isinstance(v, bytes) else v for k, v in event["args"].items()}
    session.add(
        ChainEvent(
            chain_id=chain_id,
            block_number=event["blockNumber"],
            block_hash=event["blockHash"].to_0x_hex(),
            tx_hash=event["transactionHash"].to_0x_hex(),
            log_index=event["logIndex"],
            address=event["address"],
            name=event["event"],
            args=args,
            token_id=args.get("tokenId"),
            source="poll",
            applied=False,
        )
    )
    session.commit()


def naive_chunk(w3: Web3, chain: ChainInfo, first: int, limit: int, tally: NaiveTally) -> list[Any]:
    """One get_logs of up to NAIVE_CHUNK blocks; the logs still to be stored."""
    deployment = chain.deployment
    topics: Any = Decoder(deployment).topics  # the indexer's filter: the same events
    last = min(first + NAIVE_CHUNK - 1, chain.head)
    began = time.perf_counter()
    logs = w3.eth.get_logs(
        {
            "fromBlock": first,
            "toBlock": last,
            "topics": topics,
            "address": [
                Web3.to_checksum_address(deployment.package_address),
                Web3.to_checksum_address(deployment.generation_address),
            ],
        }
    )
    tally.fetch_seconds += time.perf_counter() - began
    tally.fetched += len(logs)
    return list(logs[: max(0, limit - tally.stored)])


def naive_pass(db_url: str, url: str, chain: ChainInfo, limit: int) -> Measure:
    """Fetch everything; decode and store the first ``limit`` events; extrapolate the rest."""
    migrate.upgrade(db_url)
    engine = create_sync_engine(db_url)
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 300}))
    events, tally = naive_events(w3, chain.deployment), NaiveTally()
    try:
        with Session(engine) as session:
            for first in range(chain.start, chain.head + 1, NAIVE_CHUNK):
                todo = naive_chunk(w3, chain, first, limit, tally)
                began = time.perf_counter()
                for log in todo:
                    naive_store(session, events, chain.deployment.chain_id, log)
                tally.store_seconds += time.perf_counter() - began
                tally.stored += len(todo)
    finally:
        engine.dispose()
    return naive_measure(chain, tally)


def naive_measure(chain: ChainInfo, tally: NaiveTally) -> Measure:
    per_event = tally.store_seconds / max(1, tally.stored)
    seconds = tally.fetch_seconds + per_event * tally.fetched
    note = ""
    if tally.stored < tally.fetched:
        note = (
            f"fetched all {tally.fetched:,} events ({tally.fetch_seconds:.1f} s); decoded and "
            f"stored the first {tally.stored:,} ({per_event * 1e3:.2f} ms each), the rest "
            "extrapolated per event"
        )
    requests = -(-chain.blocks // NAIVE_CHUNK)
    return Measure(tally.fetched, chain.blocks, seconds, requests, note)


# -- live latency --------------------------------------------------------------------------


async def json_rpc(http: aiohttp.ClientSession, url: str, method: str, params: list[Any]) -> Any:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    async with http.post(url, json=body) as response:
        reply = await response.json()
    if "error" in reply:
        raise BenchError(f"{method} failed: {reply['error']}")
    return reply["result"]


async def purchase(http: aiohttp.ClientSession, url: str, package: str) -> tuple[int, float]:
    """Buy a Starter package; the token id and when its receipt came back (block mined)."""
    data = "0x" + (PURCHASE_SELECTOR + abi_encode(["uint8"], [0])).hex()
    tx = {"from": BUYER.address, "to": package, "data": data}
    tx["value"] = hex(DEFAULT_PACKAGES[0].price_wei)
    tx_hash = await json_rpc(http, url, "eth_sendTransaction", [tx])
    for _ in range(RECEIPT_POLLS):
        receipt = await json_rpc(http, url, "eth_getTransactionReceipt", [tx_hash])
        if receipt is not None:
            return int(receipt["logs"][-1]["topics"][1], 16), time.perf_counter()
        await asyncio.sleep(0.001)
    raise BenchError(f"no receipt for {tx_hash}")


async def seconds_to_visible(http: aiohttp.ClientSession, api: str, rpc: str, pkg: str) -> float:
    token, mined_at = await purchase(http, rpc, pkg)
    deadline = mined_at + LIVE_TIMEOUT
    while time.perf_counter() < deadline:
        async with http.get(f"{api}/v1/agents/{token}") as response:
            await response.read()
            if response.status == 200:
                return time.perf_counter() - mined_at
        await asyncio.sleep(API_POLL)
    raise BenchError(f"agent {token} not visible on the API after {LIVE_TIMEOUT:.0f} s")


async def api_url(ready: asyncio.Queue[str], server: asyncio.Task[None]) -> str:
    getting = asyncio.ensure_future(ready.get())
    done, _ = await asyncio.wait({getting, server}, timeout=120, return_when="FIRST_COMPLETED")
    if getting not in done:
        getting.cancel()
        if server.done():
            server.result()  # the daemon's own error, if it failed to start
        raise BenchError("the daemon did not start listening")
    return getting.result()


async def live_pass(
    backend: Backend, anvil: BenchAnvil, chain: ChainInfo, options: Options
) -> None:
    say(f"live latency on {backend.name}: {options.live_samples} purchases")
    with tempfile.TemporaryDirectory(prefix="inftd-bench-live-") as data_dir:
        settings = Settings.load(
            data_dir=Path(data_dir),
            database_url=backend.url,
            api={"port": 0},
            chain={"rpc_urls": [anvil.url, anvil.ws_url], "poll_interval": LIVE_POLL_INTERVAL},
        )
        backend.live = await run_daemon(settings, anvil, chain, options.live_samples)


async def run_daemon(
    settings: Settings, anvil: BenchAnvil, chain: ChainInfo, samples: int
) -> Latency:
    """The daemon in this process, timed on ``samples`` purchases after one warm-up."""
    stop, ready = asyncio.Event(), asyncio.Queue[str]()
    server = asyncio.create_task(serve(settings, chain.deployment, stop, ready.put_nowait))
    try:
        api = await api_url(ready, server)
        package = chain.deployment.package_address
        async with aiohttp.ClientSession() as http:
            await seconds_to_visible(http, api, anvil.url, package)  # warm-up: not counted
            return Latency(
                [await seconds_to_visible(http, api, anvil.url, package) for _ in range(samples)]
            )
    finally:
        stop.set()
        await server


# -- report --------------------------------------------------------------------------------


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def anvil_version() -> str:
    result = subprocess.run(
        [str(foundry_binary("anvil")), "--version"], capture_output=True, text=True
    )
    return result.stdout.splitlines()[0] if result.stdout else "unknown"


def postgres_version(url: str) -> str:
    with psycopg.connect(url, connect_timeout=5) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


def machine_lines(results: Results, options: Options) -> list[str]:
    pg = next((b.version for b in results.backends if b.version), None)
    return [
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()} "
        f"{platform.release()}",
        f"- Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
        + (f", PostgreSQL {pg}" if pg else "")
        + f", {anvil_version()}",
        f"- Command: `{options.command}`",
        f"- Load average (1 min) at the end: {os.getloadavg()[0]:.2f} (other work on the "
        "machine slows every figure; the ratios are taken within one run)",
    ]


def rate(m: Measure) -> str:
    return (
        f"{m.events:,} | {m.blocks:,} | {m.seconds:.2f} | {m.events_per_s:,.0f} "
        f"| {m.blocks_per_s:,.0f}"
    )


def run_rows(results: Results) -> list[str]:
    rows = [
        "| run | eth_getLogs | events | blocks | seconds | events/s | blocks/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for b in results.backends:
        if b.inftd and b.raw:
            rows.append(f"| inftd backfill → {b.name} | {b.inftd.requests} | {rate(b.inftd)} |")
            rows.append(f"| raw limit, the same ranges | {b.raw.requests} | {rate(b.raw)} |")
    if results.naive:
        naive = results.naive
        rows.append(
            f"| naive: web3.py, ORM insert + commit per event → SQLite | {naive.requests} "
            f"| {rate(naive)} |"
        )
    return rows


def ratio_rows(results: Results) -> list[str]:
    rows = ["| ratio | " + " | ".join(b.name for b in results.backends) + " | aim |"]
    rows.append("|---|" + "---:|" * len(results.backends) + "---|")
    to_raw = [
        f"{b.inftd.events_per_s / b.raw.events_per_s:.2f}"
        for b in results.backends
        if b.inftd and b.raw
    ]
    rows.append("| inftd / raw limit (events/s) | " + " | ".join(to_raw) + f" | ≥ {AIM_RAW} |")
    if results.naive:
        naive = results.naive.events_per_s
        to_naive = [f"{b.inftd.events_per_s / naive:.1f}x" for b in results.backends if b.inftd]
        rows.append(
            "| inftd / naive (events/s) | " + " | ".join(to_naive) + f" | ≥ {AIM_NAIVE:.0f}x |"
        )
    return rows


def seconds(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.2f}"


def cpu_row(run: str, m: Measure, raw: Measure | None) -> str:
    """One pass's CPU; ``raw``: its raw limit, for the best ratio the CPU allows."""
    cpu, cores = m.cpu, os.cpu_count() or 1
    if cpu is None:
        return f"| {run} | {m.seconds:.2f} |" + " |" * 9
    server = seconds(cpu.server) if cpu.database_server else "—"
    at_least = "" if cpu.complete else "≥ "  # a part unknown: the total is a lower bound
    busy = cpu.total / (m.seconds * cores)
    bound = cpu.total / cores  # perfect sharing of the cores: no run can be shorter
    best = f"{'≤ ' if at_least else ''}{raw.seconds / bound:.2f}" if raw and bound else "—"
    return (
        f"| {run} | {m.seconds:.2f} | {cpu.python:.2f} | {seconds(cpu.anvil)} | {server} "
        f"| {at_least}{cpu.total:.2f} | {seconds(cpu.others)} | {cores} "
        f"| {at_least}{busy:.0%} | {at_least}{bound:.2f} | {best} |"
    )


def cpu_rows(results: Results) -> list[str]:
    rows = [
        "| run | wall s | Python | Anvil | PostgreSQL server | total | other processes "
        "| cores | cores busy "
        "| wall bound s (total ÷ cores) | best ratio (raw s ÷ bound) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for b in results.backends:
        if b.inftd and b.raw:
            rows.append(cpu_row(f"inftd backfill → {b.name}", b.inftd, b.raw))
            rows.append(cpu_row("raw limit, the same ranges (fastest pass)", b.raw, None))
    return rows


CPU_NOTE = (
    "CPU seconds, user + system, over the timed part of each pass. Python: the bench's "
    "process, all its threads (aiosqlite's writer included; the thread reading /proc "
    "excluded). Anvil: its process. PostgreSQL server: the backends connected to the bench "
    "database (the WAL writer and checkpointer, shared by the cluster, are not counted). "
    "Other processes: the rest of the machine's busy time meanwhile (/proc/stat), not in the "
    "total; cores busy: the total ÷ (wall · cores). "
    "Wall bound: total ÷ cores, the shortest the pass could take with the cores perfectly "
    "shared; best ratio: the raw limit's seconds ÷ that bound, the highest inftd / raw limit "
    "this much CPU allows on this machine."
)


def latency_rows(results: Results) -> list[str]:
    rows = ["| database | samples | p50 ms | p99 ms | max ms |", "|---|---:|---:|---:|---:|"]
    for b in results.backends:
        if b.live:
            lat = b.live
            rows.append(
                f"| {b.name} | {len(lat.seconds)} | {lat.percentile(50) * 1e3:.1f} "
                f"| {lat.percentile(99) * 1e3:.1f} | {max(lat.seconds) * 1e3:.1f} |"
            )
    return rows


def chain_lines(chain: ChainInfo, options: Options) -> list[str]:
    return [
        f"Chain: {chain.purchases:,} purchases ({2 * chain.purchases:,} events) in "
        f"{chain.bulk_txs:,} bulk transactions of up to {options.per_tx} purchases, one a "
        f"block, {options.gap} empty blocks after each, all after {options.empty_blocks:,} "
        f"empty blocks; {chain.blocks:,} blocks from the deployment "
        f"(block {chain.start}) to the head ({chain.head}). Deploying and generating took "
        f"{chain.seconds:.1f} s (not part of any figure).",
    ]


def render(results: Results, options: Options) -> str:
    naive_note = (
        [f"Naive baseline: {results.naive.note}."] if results.naive and results.naive.note else []
    )
    inftd_notes = [f"inftd → {b.name}: {b.inftd.note}." for b in results.backends if b.inftd]
    parts = [
        "# inftd indexer benchmark: backfill and live latency",
        "",
        *machine_lines(results, options),
        "",
        *chain_lines(results.chain, options),
        "",
        *run_rows(results),
        "",
        *ratio_rows(results),
        "",
        *inftd_notes,
        "",
        "Where the CPU went during each backfill (CPU seconds):",
        "",
        *cpu_rows(results),
        "",
        CPU_NOTE,
        "",
        *naive_note,
        "",
        "Live latency, block mined (receipt returned) → agent on `GET /v1/agents/{id}`:",
        "",
        *latency_rows(results),
    ]
    return "\n".join(parts) + "\n"


# -- running it all ------------------------------------------------------------------------


@contextlib.contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for this run, dropped afterwards."""
    name = f"inftd_bench_{uuid.uuid4().hex[:12]}"
    dsn = make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(dsn).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def measure(anvil: BenchAnvil, backends: list[Backend], options: Options) -> Results:
    say(f"generating {options.events:,} events on Anvil at {anvil.url}")
    chain = generate(anvil.url, options)
    say(f"  {chain.blocks:,} blocks, {chain.bulk_txs} bulk transactions in {chain.seconds:.1f} s")
    results = Results(chain, backends)
    await raw_pass(anvil.url, chain, [])  # warm-up: Anvil and the OS caches, not counted
    for backend in backends:
        await backfill(backend, anvil, chain)
    say(f"naive baseline (stores {options.naive_events:,} events, extrapolates the rest)")
    with tempfile.TemporaryDirectory(prefix="inftd-bench-naive-") as tmp:
        naive_db = sqlite_url(Path(tmp) / "naive.db")
        results.naive = naive_pass(naive_db, anvil.url, chain, options.naive_events)
    for backend in backends:
        await live_pass(backend, anvil, chain, options)
    return results


def postgres_backend(stack: contextlib.ExitStack, admin_url: str) -> list[Backend]:
    """A fresh PostgreSQL database for the run, or none (said why) if the server is away."""
    try:
        url = stack.enter_context(postgres_database(admin_url))
    except psycopg.OperationalError as exc:
        say(f"PostgreSQL skipped: {endpoint(admin_url)} does not answer ({exc})".strip())
        return []
    return [Backend("PostgreSQL", url, postgres_version(url))]


def run(options: Options) -> Results:
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="inftd-bench-")))
        backends = [Backend("SQLite", sqlite_url(tmp / "inftd.db"))]
        if options.postgres_url:
            backends += postgres_backend(stack, options.postgres_url)
        anvil = stack.enter_context(BenchAnvil())
        return asyncio.run(measure(anvil, backends, options))


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    options = parse_args(argv)
    results = run(options)
    text = render(results, options)
    print(text)
    options.out.write_text(text)
    say(f"written to {options.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
