"""Push dispatchers in separate OS processes on one PostgreSQL database: every event reaches
each subscription once, and the deliveries of a dispatcher killed mid-send are taken over
when its lease expires."""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.agents.events import NewEvent, record_events
from inftd.daemon.config import PushSettings
from inftd.daemon.events.push import SEND_BATCH, PushDispatcher, push_cursor
from inftd.store.db import create_async
from inftd.store.models import Agent, EventRecord, PushDelivery, PushSubscription
from tests.support.processes import BOUND, until
from tests.support.schema import at_head

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[3]
RUN_DISPATCHER = "from tests.daemon.events.test_push_processes import main; main()"
OWNER = "0x" + "11" * 20


def main() -> None:
    """A dispatcher process: ``python -c RUN_DISPATCHER <database url> <PushSettings JSON>``."""
    url, settings = sys.argv[1], PushSettings.model_validate_json(sys.argv[2])
    asyncio.run(_dispatch(url, settings))


async def _dispatch(url: str, settings: PushSettings) -> None:
    engine = create_async(url)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    dispatcher = PushDispatcher(engine, settings)
    print("ready", dispatcher.name, flush=True)
    try:
        await dispatcher.run(stop)  # a pass in progress ends before run returns
    finally:
        await engine.dispose()


class DispatcherProcess:
    def __init__(self, url: str, settings: PushSettings, log: Path) -> None:
        self.url = url
        self.settings = settings
        self.log = log
        self.name = ""
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("wb") as stderr:
            self.process = await asyncio.create_subprocess_exec(
                *(sys.executable, "-c", RUN_DISPATCHER, self.url),
                self.settings.model_dump_json(),
                cwd=ROOT,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        assert self.process.stdout is not None
        line = (await asyncio.wait_for(self.process.stdout.readline(), BOUND)).decode()
        assert line.startswith("ready "), line + self.log.read_text()
        self.name = line.split()[1]

    async def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(sig)
        code = await asyncio.wait_for(self.process.wait(), BOUND)
        assert code in (0, -signal.SIGKILL), self.log.read_text()


@asynccontextmanager
async def dispatchers(
    url: str, settings: PushSettings, tmp_path: Path, count: int
) -> AsyncIterator[list[DispatcherProcess]]:
    started = [
        DispatcherProcess(url, settings, tmp_path / f"dispatcher-{uuid.uuid4().hex[:6]}.log")
        for _ in range(count)
    ]
    async with AsyncExitStack() as stack:
        for process in started:
            stack.push_async_callback(process.stop, signal.SIGKILL)  # after a clean stop: no-op
        await asyncio.gather(*(p.start() for p in started))
        yield started


class Receiver:
    """Counts deliveries per (subscription, event seq). Answers wait until ``release`` is set,
    which happens by itself once ``release_at`` requests are waiting at the same time."""

    def __init__(self, release_at: int | None = None) -> None:
        self.release_at = release_at
        self.release = asyncio.Event()
        self.calls: Counter[tuple[str, int]] = Counter()
        self.waiting = 0
        self.most_waiting = 0
        self.server = TestServer(web.Application())
        self.server.app.router.add_post("/hook/{name}", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        seq = (await request.json())["seq"]
        self.calls[(request.match_info["name"], seq)] += 1
        self.waiting += 1
        self.most_waiting = max(self.most_waiting, self.waiting)
        if self.release_at is not None and self.waiting >= self.release_at:
            self.release.set()
        try:
            await self.release.wait()
        finally:
            self.waiting -= 1
        return web.Response(status=200)

    def url(self, name: str) -> str:
        return str(self.server.make_url(f"/hook/{name}"))

    async def __aenter__(self) -> Receiver:
        await self.server.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        await self.server.close()


@pytest.fixture
async def engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    """A migrated database with agent 1 and the push cursor made (events count from now)."""
    at_head(postgres_url)
    engine = create_async(postgres_url)
    async with engine.begin() as conn:
        await conn.execute(
            insert(Agent).values(
                token_id=1, package_type=0, owner=OWNER, created_block=1, owner_since_block=1
            )
        )
        await push_cursor(conn)
    yield engine
    await engine.dispose()


def url_of(engine: AsyncEngine) -> str:
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


async def subscribe(engine: AsyncEngine, urls: Sequence[str]) -> None:
    rows = [
        {"id": str(uuid.uuid4()), "token_id": 1, "url": url, "secret": "s", "created_by": OWNER}
        for url in urls
    ]
    async with engine.begin() as conn:
        await conn.execute(insert(PushSubscription), rows)


async def publish(engine: AsyncEngine, count: int) -> list[int]:
    async with engine.begin() as conn:
        await record_events(conn, [NewEvent("credits.changed", 1, {"n": n}) for n in range(count)])
        return list((await conn.scalars(select(EventRecord.seq).order_by(EventRecord.seq))).all())


async def deliveries(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(PushDelivery).order_by(PushDelivery.id))).all())


async def delivered(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        query = select(func.count()).where(PushDelivery.status == "delivered")
        return int(await conn.scalar(query) or 0)


async def test_two_dispatcher_processes_deliver_each_event_once(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    settings = PushSettings(allow_private_targets=True, timeout=30, lease=60)
    # Answers wait until more than one batch is in flight, which one dispatcher alone
    # never reaches: the test goes on only if both are sending at the same time.
    async with Receiver(release_at=SEND_BATCH + 1) as receiver:
        await subscribe(engine, [receiver.url("a"), receiver.url("b")])
        async with dispatchers(url_of(engine), settings, tmp_path, 2) as (one, two):
            seqs = await publish(engine, SEND_BATCH + 25)
            expected = 2 * len(seqs)

            async def all_delivered() -> bool:
                return await delivered(engine) == expected

            await until(all_delivered, "every delivery made")
            await asyncio.gather(one.stop(), two.stop())  # each finishes its pass first
    assert receiver.most_waiting > SEND_BATCH
    assert receiver.calls == Counter({(name, seq): 1 for name in "ab" for seq in seqs})
    rows = await deliveries(engine)
    assert {row.lease_owner for row in rows} == {one.name, two.name}
    assert all((row.attempts, row.lease_expires_at) == (1, None) for row in rows)


async def test_a_killed_dispatchers_deliveries_are_taken_over_when_its_lease_expires(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    settings = PushSettings(allow_private_targets=True, timeout=4, lease=5)
    async with Receiver() as receiver:  # holds every answer until released
        await subscribe(engine, [receiver.url("a")])
        async with dispatchers(url_of(engine), settings, tmp_path, 1) as (dying,):
            seqs = await publish(engine, 3)

            async def all_sent() -> bool:
                return sum(receiver.calls.values()) == len(seqs)

            await until(all_sent, "the first dispatcher sending")
            await dying.stop(signal.SIGKILL)  # mid-send, holding the leases
        held = await deliveries(engine)
        assert [(r.status, r.attempts, r.lease_owner) for r in held] == [
            ("pending", 0, dying.name)
        ] * len(seqs)
        receiver.release.set()
        async with dispatchers(url_of(engine), settings, tmp_path, 1) as (heir,):

            async def taken_over() -> bool:
                return await delivered(engine) == len(seqs)

            await until(taken_over, "the deliveries taken over")
            await heir.stop()
    rows = await deliveries(engine)
    assert [(r.attempts, r.lease_owner) for r in rows] == [(1, heir.name)] * len(seqs)
    for before, after in zip(held, rows, strict=True):
        delivered_at: datetime = after.delivered_at
        assert delivered_at >= before.lease_expires_at  # not before the dead one's lease ran out
    # The dead dispatcher's attempts reached the receiver, then the heir's: at least once.
    assert receiver.calls == Counter({("a", seq): 2 for seq in seqs})
