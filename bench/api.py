"""API benchmark: the real daemon under N concurrent connections, against a bare aiohttp
handler, and WebSocket fan-out to many subscribers of one agent.

    .venv/bin/python -m bench.api [--quick]

One run, one chain, every figure measured in it (see bench/README.md for what each means):

1. a fresh Anvil, the contracts, a few agents bought on chain; a migrated SQLite file (and
   a fresh PostgreSQL database when one answers), indexed with ``Indexer.sync_once``;
2. the daemon as ``inftd run`` runs it (``inftd.daemon.cli.run.serve``: API, indexer, hub,
   push) in its own process, and load-generator processes (aiohttp clients) holding exactly
   N keep-alive connections, each making a fixed number of ``GET /v1/agents/{id}`` or
   ``GET /v1/status`` requests back to back;
3. the baseline: a bare aiohttp handler (no middleware, no database) answering the same
   JSON documents from memory, served the same way in its own process, under the same load;
4. fan-out: S WebSocket subscribers on ``/v1/agents/{id}/ws``; top-ups of that agent mined
   on chain one at a time, indexed by the daemon, published by its hub; the time from the
   event being written (its ``at``) and from the block being mined to each subscriber's
   receipt.

It prints a Markdown table and writes it to bench/RESULTS-api.md. It fails only when the
work was not done (an answer other than 200, an event that did not reach every subscriber),
never on speed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import platform
import queue
import resource
import shlex
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import aiohttp
import orjson
from aiohttp import web

from inftd.daemon.cli.devnet import BUYER, FRIEND, PROJECT_ROOT, Anvil

# The load generators and subscribers are spawned processes that import this module: what
# only the parent or the daemon's process needs (web3, SQLAlchemy, the daemon with its AI
# SDKs: seconds of imports) is imported inside the functions that use it.
if TYPE_CHECKING:
    from bench.backfill import BenchAnvil
    from bench.mixed import MixedRun
    from inftd.daemon.config import Settings
    from inftd.indexer.deployment import Deployment

RESULTS_FILE = PROJECT_ROOT / "bench" / "RESULTS-api.md"
POSTGRES_ENV = "INFTD_BENCH_POSTGRES_URL"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"

CONNECTIONS = (100, 500)  # concurrent connections held by the load generator
AGENTS = 20  # agents bought on chain; GET /v1/agents/{id} cycles over them
SUBSCRIBERS = 1000  # WebSocket subscribers of one agent
UNLIMITED = 1e9  # requests/s per IP and per address: the bench measures latency, not 429s
OPERATOR_KEY = "bench-operator-key-0123456789abcdef"  # the mixed run's writer (bench.mixed)
CREDIT_PRICE_WEI = 10**14  # as bench.backfill.deploy sets it: one credit per top-up
TOP_UP = "addCredits(uint256)"
FD_LIMIT = 8192  # open files wanted by every process (sockets: subscribers + connections)
CONNECT_AT_ONCE = 100  # WebSockets opened at once (the server's listen backlog is 128)
START_TIMEOUT = 120.0  # seconds a server or client process may take to get ready
RUN_TIMEOUT = 900.0  # seconds one load run may take
EVENT_TIMEOUT = 30.0  # seconds an event may take to reach every subscriber
STOP_TIMEOUT = 15.0  # seconds a process gets between SIGTERM and SIGKILL
POLL = 0.5  # seconds between liveness checks while waiting on a child process
NO_ANSWER = 0  # the "status" of a request the server never answered

SPAWN = multiprocessing.get_context("spawn")  # no fork: the parent holds threads and loops

AGENT_ENDPOINT = "GET /v1/agents/{id}"
STATUS_ENDPOINT = "GET /v1/status"
BARE = "bare aiohttp"  # the baseline's name in the table


class BenchError(RuntimeError):
    """The work was not done: an answer other than 200, an event that did not arrive."""


def say(line: str) -> None:
    print(f"bench: {line}", file=sys.stderr, flush=True)


def percentile(samples: Sequence[float], p: float) -> float:
    """Nearest rank (as bench.backfill): the smallest sample at or above ``p`` percent."""
    ordered = sorted(samples)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


# -- options -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    connections: tuple[int, ...]
    requests: int  # per connection
    client_processes: int
    agents: int
    subscribers: int
    events: int
    postgres_url: str | None
    out: Path
    command: str
    mixed_seconds: float = 10.0


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer requests and events")
    parser.add_argument(
        "--connections", default=",".join(map(str, CONNECTIONS)), help="comma-separated"
    )
    parser.add_argument("--requests", type=int, help="requests per connection (default 20)")
    parser.add_argument("--client-processes", type=int, default=1, help="load generators")
    parser.add_argument("--agents", type=int, default=AGENTS, help="agents bought on chain")
    parser.add_argument("--subscribers", type=int, default=SUBSCRIBERS, help="WebSockets")
    parser.add_argument("--events", type=int, help="top-ups published (default 50)")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES),
        help=f"admin URL of the PostgreSQL server (env {POSTGRES_ENV}); '' skips PostgreSQL",
    )
    parser.add_argument("--out", type=Path, default=RESULTS_FILE, help="where the table goes")
    args = parser.parse_args(argv)
    return Options(
        connections=tuple(int(n) for n in args.connections.split(",") if n.strip()),
        requests=args.requests or (5 if args.quick else 20),
        client_processes=max(1, args.client_processes),
        agents=max(1, args.agents),
        subscribers=max(1, args.subscribers),
        events=args.events or (5 if args.quick else 50),
        postgres_url=args.postgres_url or None,
        mixed_seconds=3.0 if args.quick else 10.0,
        out=args.out,
        command=shlex.join([".venv/bin/python", "-m", "bench.api", *(argv or sys.argv[1:])]),
    )


# -- child processes -----------------------------------------------------------------------


def raise_fd_limit() -> None:
    """Thousands of sockets need more open files than a default soft limit of 1,024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = FD_LIMIT if hard == resource.RLIM_INFINITY else min(FD_LIMIT, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def stop_on_sigterm() -> asyncio.Event:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    return stop


@contextlib.contextmanager
def child(target: Callable[..., None], *args: Any) -> Iterator[BaseProcess]:
    """A spawned process, stopped (SIGTERM, then SIGKILL) when the block ends."""
    process = SPAWN.Process(target=target, args=args, daemon=True)
    process.start()
    try:
        yield process
    finally:
        process.terminate()
        process.join(STOP_TIMEOUT)
        if process.is_alive():
            process.kill()
            process.join()


def receive(messages: Queue[Any], processes: Sequence[BaseProcess], timeout: float) -> Any:
    """The next message from child processes; BenchError if one of them died or time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(queue.Empty):
            return messages.get(timeout=POLL)
        for process in processes:
            if process.exitcode is not None and process.exitcode != 0:
                raise BenchError(f"{process.name} exited with code {process.exitcode}")
    raise BenchError(f"no word from {', '.join(p.name for p in processes)} in {timeout:.0f} s")


def expect(messages: Queue[Any], process: BaseProcess, kind: str, timeout: float) -> Any:
    message = receive(messages, [process], timeout)
    if message[0] == "error":
        raise BenchError(message[1])
    if message[0] != kind:
        raise BenchError(f"expected {kind!r} from {process.name}, got {message!r}")
    return message


# -- servers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    url: str
    pid: int


@contextlib.contextmanager
def server_process(target: Callable[..., None], *args: Any) -> Iterator[Server]:
    messages: Queue[Any] = SPAWN.Queue()
    with child(target, messages, *args) as process:
        _, url = expect(messages, process, "ready", START_TIMEOUT)
        assert process.pid is not None
        yield Server(url, process.pid)


def inftd_server(messages: Queue[Any], settings: Settings, deployment: Deployment) -> None:
    """The daemon as ``inftd run`` runs it, until SIGTERM (a child process's target)."""
    from inftd.daemon.logs import setup_logging

    raise_fd_limit()
    setup_logging(settings.log_level, settings.log_format, settings.secret_values())
    asyncio.run(_serve_inftd(messages, settings, deployment))


async def _serve_inftd(messages: Queue[Any], settings: Settings, deployment: Deployment) -> None:
    from inftd.daemon.cli.run import serve

    stop = stop_on_sigterm()
    await serve(settings, deployment, stop, lambda url: messages.put(("ready", url)))


def server_settings(
    data_dir: Path, database_url: str, anvil: Anvil, roles: Sequence[str] = ("all",)
) -> Settings:
    """The daemon's defaults, but for the rate limits: every request comes from 127.0.0.1."""
    from inftd.daemon.config import Settings

    data_dir.mkdir(parents=True, exist_ok=True)
    return Settings.load(
        data_dir=data_dir,
        database_url=database_url,
        log_level="WARNING",
        api={"port": 0, "rate_per_ip": UNLIMITED, "rate_per_address": UNLIMITED},
        chain={"rpc_urls": [anvil.url, f"ws://127.0.0.1:{anvil.port}"]},
        operator_api_key=OPERATOR_KEY,  # the mixed run's writer adjusts credits
        daemon={"roles": ",".join(roles)},
    )


@dataclass(frozen=True)
class Documents:
    """What the daemon answered, for the bare handler to answer the same."""

    agents: dict[int, Any]
    status: Any

    def sizes(self) -> tuple[int, int]:
        agent = statistics.median(len(orjson.dumps(a)) for a in self.agents.values())
        return int(agent), len(orjson.dumps(self.status))


def fetch_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return orjson.loads(response.read())


def documents(url: str, tokens: Sequence[int]) -> Documents:
    agents = {t: fetch_json(f"{url}/v1/agents/{t}") for t in tokens}
    return Documents(agents, fetch_json(f"{url}/v1/status"))


def bare_app(docs: Documents) -> web.Application:
    """The baseline: the same paths, the same JSON (serialized per request with orjson, as
    the daemon does), no middleware, no database, no chain."""

    async def agent(request: web.Request) -> web.Response:
        document = docs.agents.get(int(request.match_info["token_id"]))
        if document is None:
            raise web.HTTPNotFound()
        return web.Response(body=orjson.dumps(document), content_type="application/json")

    async def status(request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(docs.status), content_type="application/json")

    app = web.Application()
    app.router.add_get("/v1/agents/{token_id}", agent)
    app.router.add_get("/v1/status", status)
    return app


def bare_server(messages: Queue[Any], docs: Documents) -> None:
    raise_fd_limit()
    asyncio.run(_serve_bare(messages, docs))


async def _serve_bare(messages: Queue[Any], docs: Documents) -> None:
    stop = stop_on_sigterm()
    runner = web.AppRunner(bare_app(docs))
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        messages.put(("ready", f"http://{host}:{port}"))
        await stop.wait()
    finally:
        await runner.cleanup()


# -- load ----------------------------------------------------------------------------------


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far; 0 where /proc is missing."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class LoadRun:
    """One load generator's run (or several merged): the timed phase only."""

    latencies: list[float]  # seconds, one per request
    statuses: dict[int, int]
    connections: int  # connections opened, warm-up included
    started: float  # time.monotonic(), shared by the processes of one machine
    ended: float
    client_cpu: float  # CPU seconds of the load generators in the timed phase
    server_cpu: tuple[float, float]  # the server's CPU seconds at start and end

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        return percentile(self.latencies, p)

    def server_cpu_per_request(self) -> float:
        """The server's CPU seconds per request: its cost, whoever bounds the rate (with
        the load generator on the same two cores, it is often the generator)."""
        return (self.server_cpu[1] - self.server_cpu[0]) / max(1, self.requests)

    def cpu_share(self) -> tuple[float, float]:
        """Server and client CPU as a share of one core over the timed phase."""
        server = self.server_cpu[1] - self.server_cpu[0]
        return server / self.seconds, self.client_cpu / self.seconds


def merge(runs: Sequence[LoadRun]) -> LoadRun:
    first = min(runs, key=lambda r: r.started)
    last = max(runs, key=lambda r: r.ended)
    statuses: Counter[int] = Counter()
    for run in runs:
        statuses.update(run.statuses)
    return LoadRun(
        latencies=[s for run in runs for s in run.latencies],
        statuses=dict(statuses),
        connections=sum(r.connections for r in runs),
        started=first.started,
        ended=last.ended,
        client_cpu=sum(r.client_cpu for r in runs),
        server_cpu=(first.server_cpu[0], last.server_cpu[1]),
    )


class Connection:
    """One of the N: requests back to back, so it holds one keep-alive connection."""

    def __init__(self, session: aiohttp.ClientSession, paths: Sequence[str], index: int) -> None:
        self.session = session
        self.paths = paths
        self.next = index  # connections start on different paths
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()

    async def request(self) -> float:
        path = self.paths[self.next % len(self.paths)]
        self.next += 1
        began = time.perf_counter()
        try:
            async with self.session.get(path) as response:
                await response.read()
            self.statuses[response.status] += 1
        except aiohttp.ClientError:
            self.statuses[NO_ANSWER] += 1  # a reset or a dropped connection: counted, not fatal
        return time.perf_counter() - began

    async def run(self, requests: int) -> None:
        for _ in range(requests):
            self.latencies.append(await self.request())


async def hold_connections(
    url: str,
    paths: Sequence[str],
    connections: int,
    requests: int,
    server_pid: int,
    start: Callable[[], object] = lambda: None,
) -> LoadRun:
    """Open ``connections`` connections (one warm-up request each, not counted), wait for
    ``start`` (the other load generators), then make ``requests`` requests on each."""
    opened = Counter[str]()

    async def on_open(*_: object) -> None:
        opened["connections"] += 1

    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(on_open)
    # No idle expiry (aiohttp drops a pooled connection idle for 15 s): the N stay open.
    connector = aiohttp.TCPConnector(limit=connections, keepalive_timeout=RUN_TIMEOUT)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=RUN_TIMEOUT)
    async with aiohttp.ClientSession(
        url, connector=connector, trace_configs=[trace], timeout=timeout
    ) as session:
        held = [Connection(session, paths, i) for i in range(connections)]
        await asyncio.gather(*(c.request() for c in held))
        for c in held:
            c.statuses.clear()  # the warm-up's answers are not counted
        gc.freeze()  # the tool's own full collections are not the server's latency
        await asyncio.to_thread(start)
        cpu, server, began = time.process_time(), process_cpu(server_pid), time.monotonic()
        await asyncio.gather(*(c.run(requests) for c in held))
        ended, server_end = time.monotonic(), process_cpu(server_pid)
        cpu = time.process_time() - cpu
    statuses: Counter[int] = Counter()
    for c in held:
        statuses.update(c.statuses)
    return LoadRun(
        [s for c in held for s in c.latencies],
        dict(statuses),
        opened["connections"],
        began,
        ended,
        cpu,
        (server, server_end),
    )


def load_client(
    messages: Queue[Any],
    url: str,
    paths: list[str],
    connections: int,
    requests: int,
    server_pid: int,
    barrier: Barrier,
) -> None:
    """One load generator (a child process's target): its result goes on ``messages``."""
    raise_fd_limit()
    run = asyncio.run(hold_connections(url, paths, connections, requests, server_pid, barrier.wait))
    messages.put(run)


def shares(total: int, parts: int) -> list[int]:
    parts = max(1, min(parts, total))
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def run_load(
    server: Server, paths: Sequence[str], connections: int, requests: int, processes: int = 1
) -> LoadRun:
    """``connections`` connections across ``processes`` load generators, ``requests`` each."""
    split = shares(connections, processes)
    messages: Queue[Any] = SPAWN.Queue()
    barrier = SPAWN.Barrier(len(split))
    with contextlib.ExitStack() as stack:
        children = [
            stack.enter_context(
                child(
                    load_client, messages, server.url, list(paths), n, requests, server.pid, barrier
                )
            )
            for n in split
        ]
        runs = [receive(messages, children, RUN_TIMEOUT) for _ in split]
    return merge(runs)


def check_run(run: LoadRun, connections: int, requests: int) -> None:
    """BenchError unless ``connections`` connections were open and every one of their
    ``requests`` requests was answered 200 (more connections: the server closed some)."""
    expected = connections * requests
    if run.connections < connections:
        raise BenchError(f"only {run.connections} of {connections} connections were open")
    if run.requests != expected or run.statuses != {200: expected}:
        raise BenchError(
            f"{expected:,} requests expected, {run.requests:,} made; answers by status "
            f"({NO_ANSWER}: none): {dict(sorted(run.statuses.items()))}"
        )


# -- WebSocket fan-out ---------------------------------------------------------------------


class Receipt(NamedTuple):
    """One event as one subscriber got it (wall-clock seconds: shared by the processes)."""

    subscriber: int
    seq: int
    tx_hash: str
    written_at: float  # the event's ``at``: when the daemon wrote it to the events table
    received_at: float


class Subscribers:
    """``total`` WebSockets on one agent's channel, each expecting ``events`` events."""

    def __init__(
        self, total: int, events: int, token: int, tell: Callable[[tuple[Any, ...]], None]
    ) -> None:
        self.total = total
        self.events = events
        self.token = token
        self.tell = tell
        self.receipts: list[Receipt] = []
        self.counts: Counter[int] = Counter()

    async def connect(
        self, session: aiohttp.ClientSession, gate: asyncio.Semaphore
    ) -> aiohttp.ClientWebSocketResponse:
        async with gate:
            ws = await session.ws_connect(f"/v1/agents/{self.token}/ws", autoclose=False)
            first = await ws.receive_json(timeout=EVENT_TIMEOUT)
        if first.get("type") != "snapshot":
            raise BenchError(f"a subscriber's first message was not a snapshot: {first}")
        return ws

    async def listen(self, index: int, ws: aiohttp.ClientWebSocketResponse) -> None:
        last = 0
        for got in range(self.events):
            try:
                message = await ws.receive(timeout=EVENT_TIMEOUT)
            except TimeoutError:
                raise BenchError(f"subscriber {index} got {got} of {self.events} events") from None
            received = time.time()
            if message.type != aiohttp.WSMsgType.TEXT:
                raise BenchError(f"subscriber {index} got {message.type.name} after {got} events")
            receipt = self.record(index, orjson.loads(message.data), received)
            if receipt.seq <= last:
                raise BenchError(f"subscriber {index} got seq {receipt.seq} after {last}")
            last = receipt.seq

    def record(self, index: int, event: dict[str, Any], received: float) -> Receipt:
        if event.get("type") != "event" or event.get("tokenId") != self.token:
            raise BenchError(f"subscriber {index} got {event} instead of an event")
        written = datetime.fromisoformat(event["at"]).timestamp()
        receipt = Receipt(index, event["seq"], event["data"]["txHash"], written, received)
        self.receipts.append(receipt)
        self.counts[receipt.seq] += 1
        if self.counts[receipt.seq] == self.total:
            self.tell(("complete", receipt.seq, receipt.tx_hash))
        return receipt


async def subscribe_all(
    url: str, token: int, total: int, events: int, tell: Callable[[tuple[Any, ...]], None]
) -> list[Receipt]:
    """Connect ``total`` subscribers, say ("ready",), collect ``events`` events on each."""
    subscribers = Subscribers(total, events, token, tell)
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)
    async with aiohttp.ClientSession(url, connector=aiohttp.TCPConnector(limit=0)) as session:
        sockets = await asyncio.gather(*(subscribers.connect(session, gate) for _ in range(total)))
        gc.freeze()  # the tool's own full collections (180 ms here) are not the server's
        try:
            tell(("ready", len(sockets)))
            await asyncio.gather(*(subscribers.listen(i, ws) for i, ws in enumerate(sockets)))
        finally:
            await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return subscribers.receipts


def ws_client(messages: Queue[Any], url: str, token: int, total: int, events: int) -> None:
    """The subscribers (a child process's target); a BenchError goes back as ("error", ...)."""
    raise_fd_limit()
    try:
        receipts = asyncio.run(subscribe_all(url, token, total, events, messages.put))
    except BenchError as exc:
        messages.put(("error", str(exc)))
        return
    messages.put(("done", receipts))


def top_up(anvil_url: str, package: str, token: int) -> tuple[str, float]:
    """Add one credit to ``token`` on chain; its tx hash and when the receipt came back."""
    from eth_abi.abi import encode as abi_encode
    from eth_utils.crypto import keccak

    from bench.backfill import transact

    data = keccak(text=TOP_UP)[:4] + abi_encode(["uint256"], [token])
    tx = {"from": FRIEND.address, "to": package, "data": "0x" + data.hex()}
    receipt = transact(anvil_url, {**tx, "value": hex(CREDIT_PRICE_WEI)})
    return str(receipt["transactionHash"]), time.time()


@dataclass(frozen=True)
class FanOut:
    subscribers: int
    events: int
    receipts: list[Receipt]
    mined: dict[str, float]  # tx hash → when its receipt came back

    def from_written(self) -> list[float]:
        return [r.received_at - r.written_at for r in self.receipts]

    def from_mined(self) -> list[float]:
        return [r.received_at - self.mined[r.tx_hash] for r in self.receipts]

    def last_subscriber(self) -> list[float]:
        """Per event: written → received by the last of the subscribers."""
        last: dict[int, float] = defaultdict(float)
        for r in self.receipts:
            last[r.seq] = max(last[r.seq], r.received_at - r.written_at)
        return list(last.values())


def fan_out(
    server: Server, anvil_url: str, package: str, token: int, total: int, events: int
) -> FanOut:
    """``total`` subscribers in their own process; ``events`` top-ups, each published only
    once every subscriber has the one before. BenchError if any subscriber misses one."""
    messages: Queue[Any] = SPAWN.Queue()
    mined: dict[str, float] = {}
    with child(ws_client, messages, server.url, token, total, events) as process:
        expect(messages, process, "ready", START_TIMEOUT)
        for _ in range(events):
            tx_hash, mined[tx_hash] = top_up(anvil_url, package, token)
            _, _, delivered = expect(messages, process, "complete", EVENT_TIMEOUT)
            if delivered != tx_hash:
                raise BenchError(f"subscribers got {delivered}, {tx_hash} was published")
        _, receipts = expect(messages, process, "done", EVENT_TIMEOUT)
    check_fan_out(receipts, mined, total)
    return FanOut(total, events, receipts, mined)


def check_fan_out(receipts: Sequence[Receipt], mined: dict[str, float], total: int) -> None:
    per_tx = Counter(r.tx_hash for r in receipts)
    if set(per_tx) != set(mined) or any(n != total for n in per_tx.values()):
        raise BenchError(f"{len(mined)} events to {total} subscribers, receipts: {dict(per_tx)}")


# -- the chain and the databases -----------------------------------------------------------


@dataclass(frozen=True)
class BenchChain:
    deployment: Deployment
    tokens: list[int]  # agents bought

    def agent_paths(self) -> list[str]:
        return [f"/v1/agents/{t}" for t in self.tokens]


def buy_agents(anvil_url: str, deployment: Deployment, count: int) -> BenchChain:
    """``count`` purchases by two buyers, package types in turn; the token ids bought."""
    from eth_abi.abi import encode as abi_encode

    from bench.backfill import PURCHASE_SELECTOR, transact
    from inftd.daemon.config import DEFAULT_PACKAGES

    tokens = []
    for i in range(count):
        package_type = i % len(DEFAULT_PACKAGES)
        data = PURCHASE_SELECTOR + abi_encode(["uint8"], [package_type])
        receipt = transact(
            anvil_url,
            {
                "from": (BUYER, FRIEND)[i % 2].address,
                "to": deployment.package_address,
                "data": "0x" + data.hex(),
                "value": hex(DEFAULT_PACKAGES[package_type].price_wei),
            },
        )
        tokens.append(int(receipt["logs"][-1]["topics"][1], 16))
    return BenchChain(deployment, tokens)


async def index(database_url: str, anvil_url: str, chain: BenchChain) -> None:
    """Migrate, index the chain, and check every agent bought is there."""
    from sqlalchemy import func, select

    from inftd.indexer.follower import Indexer, IndexerConfig
    from inftd.indexer.rpc import ChainRpc
    from inftd.store import migrate
    from inftd.store.db import create_async
    from inftd.store.models import Agent

    migrate.upgrade(database_url)
    engine = create_async(database_url)
    rpc = ChainRpc([anvil_url])
    try:
        await Indexer(rpc, engine, chain.deployment, IndexerConfig()).sync_once()
        async with engine.connect() as conn:
            found = await conn.scalar(
                select(func.count()).select_from(Agent).where(Agent.token_id.in_(chain.tokens))
            )
    finally:
        await rpc.close()
        await engine.dispose()
    if found != len(chain.tokens):
        raise BenchError(f"{found} agents indexed of {len(chain.tokens)} bought")


# -- figures -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadFigure:
    endpoint: str
    server: str  # "bare aiohttp" or the database
    run: LoadRun
    connections: int


@dataclass
class Target:
    name: str  # the database
    url: str
    version: str | None = None
    fan_out: FanOut | None = None
    mixed: list[MixedRun] = field(default_factory=list)


@dataclass
class Results:
    agents: int
    loads: list[LoadFigure] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    sizes: tuple[int, int] = (0, 0)  # median agent document, status document (bytes)
    failures: list[str] = field(default_factory=list)  # work not done: the run fails
    load: tuple[float, ...] = field(default_factory=os.getloadavg)  # at the start

    def fail(self, failure: str) -> None:
        say(f"FAILED: {failure}")
        self.failures.append(failure)

    def bare(self, figure: LoadFigure) -> LoadFigure | None:
        return next(
            (
                f
                for f in self.loads
                if f.server == BARE
                and f.endpoint == figure.endpoint
                and f.connections == figure.connections
            ),
            None,
        )


# -- report --------------------------------------------------------------------------------


def machine_lines(results: Results, options: Options) -> list[str]:
    from bench.backfill import anvil_version, cpu_model

    pg = next((t.version for t in results.targets if t.version), None)
    return [
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()} "
        f"{platform.release()}",
        f"- Python {platform.python_version()}, aiohttp {aiohttp.__version__}, "
        f"SQLite {sqlite3.sqlite_version}"
        + (f", PostgreSQL {pg}" if pg else "")
        + f", {anvil_version()}",
        f"- Load average (1 min) at the start and the end: {results.load[0]:.1f}, "
        f"{os.getloadavg()[0]:.1f} (other work on the machine takes cores from the run)",
        f"- Command: `{options.command}`",
    ]


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}"


def load_row(figure: LoadFigure, bare: LoadFigure | None) -> str:
    run = figure.run
    server_cpu, client_cpu = run.cpu_share()
    cells = [
        figure.endpoint,
        figure.server,
        f"{figure.connections}"
        + (f" ({run.connections} opened)" if run.connections != figure.connections else ""),
        f"{run.requests:,}",
        f"{run.rate:,.0f}",
        ms(run.percentile(50)),
        ms(run.percentile(99)),
        f"{server_cpu:.0%}",
        f"{client_cpu:.0%}",
        f"{run.server_cpu_per_request() * 1e6:.0f}",
        f"{run.requests - run.statuses.get(200, 0):,}",
    ]
    if bare is None or bare is figure:
        cells += ["", "", "", ""]
    else:
        cells += [
            f"{run.rate / bare.run.rate:.2f}",
            f"{run.percentile(50) / bare.run.percentile(50):.1f}x",
            f"{run.percentile(99) / bare.run.percentile(99):.1f}x",
            f"{run.server_cpu_per_request() / bare.run.server_cpu_per_request():.1f}x",
        ]
    return "| " + " | ".join(cells) + " |"


def load_rows(results: Results) -> list[str]:
    rows = [
        "| endpoint | server | connections | requests | req/s | p50 ms | p99 ms | server CPU "
        "| client CPU | server CPU µs/request | non-200 | req/s ÷ bare | p50 ÷ bare "
        "| p99 ÷ bare | CPU/request ÷ bare |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    order = {name: i for i, name in enumerate([BARE, *(t.name for t in results.targets)])}
    figures = sorted(
        results.loads, key=lambda f: (f.endpoint != AGENT_ENDPOINT, f.connections, order[f.server])
    )
    rows += [load_row(f, results.bare(f)) for f in figures]
    return rows


def fan_out_rows(results: Results) -> list[str]:
    rows = [
        "| database | from | receipts | p50 ms | p99 ms | max ms | last subscriber p50 ms |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for target in results.targets:
        fan = target.fan_out
        if fan is None:
            continue
        last = percentile(fan.last_subscriber(), 50)
        for name, lat, tail in (
            ("event written", fan.from_written(), ms(last)),
            ("block mined", fan.from_mined(), ""),
        ):
            rows.append(
                f"| {target.name} | {name} | {len(lat):,} | {ms(percentile(lat, 50))} "
                f"| {ms(percentile(lat, 99))} | {ms(max(lat))} | {tail} |"
            )
    return rows


def mixed_rows(results: Results) -> list[str]:
    from bench.mixed import PACE

    rows = [
        "Mixed: readers of `GET /v1/agents/{id}` for the run's seconds while, every "
        + ", ".join(f"{pace} s a {kind.replace('_', '-')}" for kind, pace in PACE.items())
        + " (purchases and top-ups on chain, generations and credit adjustments through the "
        "writing process's API); each adjustment read back from every process (from the "
        "others with `?minSeq=`). On PostgreSQL the reads are spread over the writing "
        "process and an API-only process.",
        "",
        "| database | connections | processes | reads | reads/s | p50 ms | p99 ms | writes "
        "| refused | events | own-write reads | older than own write |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    stale = [
        "",
        "Staleness, per event of a read agent: from its commit (when an observer process "
        "saw it: PostgreSQL's NOTIFY, SQLite's data_version checked every 0.5 ms) to the "
        "start of the last read that began after it and still showed the older version (0 "
        "where none did); and from its insert (its created_at, before the commit: a bound):",
        "",
        "| database | connections | process | events | p50 ms | p99 ms | max ms "
        "| from the insert: p99 ms |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for target in results.targets:
        for run in target.mixed:
            writes = ", ".join(f"{n} {k}" for k, n in sorted(run.writes.counts.items()))
            rows.append(
                f"| {target.name} | {run.connections} | {run.servers} | {len(run.reads):,} "
                f"| {run.rate():,.0f} | {ms(run.latency(50))} | {ms(run.latency(99))} "
                f"| {writes} | {sum(run.writes.refused.values())} | {run.events} "
                f"| {len(run.writes.own)} | {run.misses()} |"
            )
            for server, figures in run.stale.items():
                name = "writing" if server == 0 else "another (API only)"
                bound = run.stale_inserted[server]
                stale.append(
                    f"| {target.name} | {run.connections} | {name} | {len(figures)} "
                    f"| {stale_cells(figures)} | {ms(percentile(bound, 99)) if bound else ''} |"
                )
    return rows + stale


def stale_cells(figures: Sequence[float]) -> str:
    if not figures:
        return " | | "
    return f"{ms(percentile(figures, 50))} | {ms(percentile(figures, 99))} | {ms(max(figures))}"


def setup_lines(results: Results, options: Options) -> list[str]:
    agent, status = results.sizes
    fan = next((t.fan_out for t in results.targets if t.fan_out), None)
    lines = [
        f"{results.agents} agents bought on chain and indexed; `GET /v1/agents/{{id}}` cycles "
        f"over them. Each connection makes {options.requests} requests after one warm-up "
        f"request; {options.client_processes} load-generator process(es). JSON bodies: agent "
        f"{agent:,} B (median), status {status:,} B; the bare handler answers the same "
        "documents from memory."
    ]
    if fan:
        lines.append(
            f"Fan-out: {fan.subscribers:,} WebSocket subscribers of one agent, {fan.events} "
            "top-ups mined one at a time (the next once every subscriber had the last)."
        )
    return lines


def render(results: Results, options: Options) -> str:
    parts = [
        "# inftd API benchmark: request latency and WebSocket fan-out",
        "",
        *machine_lines(results, options),
        "",
        *setup_lines(results, options),
        "",
        *load_rows(results),
        "",
        "WebSocket fan-out, event → each subscriber's receipt:",
        "",
        *fan_out_rows(results),
        "",
        *mixed_rows(results),
    ]
    if results.failures:
        parts += ["", "**Failed** (work not done):", "", *(f"- {f}" for f in results.failures)]
    return "\n".join(parts) + "\n"


# -- running it all ------------------------------------------------------------------------


def measure_loads(
    results: Results, server: Server, name: str, chain: BenchChain, options: Options
) -> None:
    for endpoint_name, paths in (
        (AGENT_ENDPOINT, chain.agent_paths()),
        (STATUS_ENDPOINT, ["/v1/status"]),
    ):
        for n in options.connections:
            say(f"{name}: {endpoint_name}, {n} connections x {options.requests} requests")
            run = run_load(server, paths, n, options.requests, options.client_processes)
            results.loads.append(LoadFigure(endpoint_name, name, run, n))
            say(f"  {run.rate:,.0f} req/s, p50 {ms(run.percentile(50))} ms")
            try:
                check_run(run, n, options.requests)
            except BenchError as exc:
                results.fail(f"{name}, {endpoint_name}, {n} connections: {exc}")


def measure_target(
    results: Results, target: Target, anvil: BenchAnvil, chain: BenchChain, options: Options
) -> Documents:
    say(f"inftd on {target.name}")
    with tempfile.TemporaryDirectory(prefix="inftd-bench-api-") as data_dir:
        settings = server_settings(Path(data_dir) / "a", target.url, anvil)
        with server_process(inftd_server, settings, chain.deployment) as server:
            docs = documents(server.url, chain.tokens)
            measure_loads(results, server, target.name, chain, options)
            say(f"{target.name}: fan-out to {options.subscribers} subscribers")
            try:
                target.fan_out = fan_out(
                    server,
                    anvil.url,
                    chain.deployment.package_address,
                    chain.tokens[0],
                    options.subscribers,
                    options.events,
                )
            except BenchError as exc:
                results.fail(f"{target.name}, fan-out: {exc}")
            measure_mixed(results, target, [server], anvil, chain, options, Path(data_dir))
    return docs


def measure_mixed(
    results: Results,
    target: Target,
    servers: list[Server],
    anvil: BenchAnvil,
    chain: BenchChain,
    options: Options,
    data_dir: Path,
) -> None:
    """Readers while the chain and the API write; on PostgreSQL the reads are spread over
    the writing process and an API-only process beside it."""
    if target.name == "PostgreSQL":
        settings = server_settings(data_dir / "b", target.url, anvil, roles=("api",))
        with server_process(inftd_server, settings, chain.deployment) as other:
            _mixed_runs(results, target, [*servers, other], anvil, chain, options)
    else:
        _mixed_runs(results, target, servers, anvil, chain, options)


def _mixed_runs(
    results: Results,
    target: Target,
    servers: list[Server],
    anvil: BenchAnvil,
    chain: BenchChain,
    options: Options,
) -> None:
    from bench.mixed import run_mixed

    for n in options.connections:
        say(f"{target.name}: mixed, {n} connections over {len(servers)} process(es)")
        try:
            run = run_mixed(
                servers,
                target.url,
                anvil.url,
                chain.deployment.package_address,
                chain.tokens,
                n,
                options.mixed_seconds,
            )
        except BenchError as exc:
            results.fail(f"{target.name}, mixed, {n} connections: {exc}")
            continue
        target.mixed.append(run)
        say(f"  {run.rate():,.0f} reads/s, {run.events} events, {run.misses()} own-write misses")
        if run.misses():
            results.fail(f"{target.name}, mixed, {n}: {run.misses()} reads missed own writes")
        if set(run.statuses()) != {200}:
            results.fail(f"{target.name}, mixed, {n}: answers {dict(run.statuses())}")


def measure(anvil: BenchAnvil, targets: list[Target], options: Options) -> Results:
    from bench.backfill import deploy

    say(f"deploying and buying {options.agents} agents on Anvil at {anvil.url}")
    chain = buy_agents(anvil.url, deploy(anvil.url), options.agents)
    for target in targets:
        asyncio.run(index(target.url, anvil.url, chain))
    results = Results(options.agents, targets=targets)
    for i, target in enumerate(targets):
        docs = measure_target(results, target, anvil, chain, options)
        if i == 0:  # the baseline answers what the daemon answered
            results.sizes = docs.sizes()
            say("bare aiohttp handler")
            with server_process(bare_server, docs) as bare:
                measure_loads(results, bare, BARE, chain, options)
    return results


def postgres_target(stack: contextlib.ExitStack, admin_url: str) -> list[Target]:
    """A fresh PostgreSQL database for the run, or none (said why) if the server is away."""
    import psycopg

    from bench.backfill import postgres_database, postgres_version
    from inftd.indexer.rpc import endpoint

    try:
        url = stack.enter_context(postgres_database(admin_url))
    except psycopg.OperationalError as exc:
        say(f"PostgreSQL skipped: {endpoint(admin_url)} does not answer ({exc})".strip())
        return []
    return [Target("PostgreSQL", url, postgres_version(url))]


def run(options: Options) -> Results:
    from bench.backfill import BenchAnvil
    from inftd.store.db import sqlite_url

    raise_fd_limit()
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="inftd-bench-")))
        targets = [Target("SQLite", sqlite_url(tmp / "inftd.db"))]
        if options.postgres_url:
            targets += postgres_target(stack, options.postgres_url)
        anvil = stack.enter_context(BenchAnvil())
        return measure(anvil, targets, options)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    options = parse_args(argv)
    results = run(options)
    text = render(results, options)
    print(text)
    options.out.write_text(text)
    say(f"written to {options.out}")
    if results.failures:
        say(f"{len(results.failures)} failure(s): the work was not all done")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
