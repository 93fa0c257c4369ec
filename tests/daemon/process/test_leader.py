"""Leadership by advisory lock on a real PostgreSQL: one leader, a standby that takes over
when the leader's session ends, and a leader that stops its work at once when it loses
its lock connection (fencing)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import psycopg
import pytest
from sqlalchemy.engine import make_url

from inftd.daemon.process.leader import LEADER, STANDBY, Leadership, Work, lock_key
from tests.support.processes import until
from tests.support.tcpproxy import TcpProxy

pytestmark = pytest.mark.postgres

RETRY = 0.05


def test_lock_keys_are_stable_signed_64_bit_and_distinct() -> None:
    keys = {lock_key("indexer"), lock_key("relayer", "0xabc"), lock_key("relayer", "0xabd")}
    assert len(keys) == 3
    assert lock_key("indexer") == lock_key("indexer")
    assert all(-(2**63) <= key < 2**63 for key in keys)


class Recorder:
    """A ``Work`` that notes when it starts and how it ends."""

    def __init__(self) -> None:
        self.log: list[str] = []

    def work(self, name: str) -> Work:
        async def run(stop: asyncio.Event) -> None:
            self.log.append(f"{name} started")
            try:
                await stop.wait()
                self.log.append(f"{name} stopped")
            except asyncio.CancelledError:
                self.log.append(f"{name} cancelled")
                raise

        return run


@pytest.fixture
def states() -> dict[str, list[str]]:
    return {}


@pytest.fixture
async def make(
    postgres_url: str, states: dict[str, list[str]]
) -> AsyncIterator[Callable[[str], Leadership]]:
    made: list[Leadership] = []

    def leadership(name: str) -> Leadership:
        states[name] = []
        one = Leadership(postgres_url, name, lock_key("test"), RETRY, states[name].append)
        made.append(one)
        return one

    yield leadership
    for one in made:
        await one.close()


async def test_one_leads_and_a_standby_takes_over_when_it_stops(
    make: Callable[[str], Leadership], states: dict[str, list[str]]
) -> None:
    a, b = make("a"), make("b")
    assert await a.try_lead()
    assert not await b.try_lead()
    recorder, stop_a, stop_b = Recorder(), asyncio.Event(), asyncio.Event()
    running_a = asyncio.create_task(a.run(recorder.work("a"), stop_a))
    running_b = asyncio.create_task(b.run(recorder.work("b"), stop_b))
    await asyncio.sleep(RETRY * 5)  # b tries the lock several times meanwhile
    assert recorder.log == ["a started"]

    stop_a.set()
    await running_a
    await until(lambda: _true(b.leading), "b leads")
    await until(lambda: _true("b started" in recorder.log), "b's work started")
    assert recorder.log[:2] == ["a started", "a stopped"]
    assert states["a"][-1] == STANDBY
    assert LEADER in states["a"]
    assert STANDBY in states["b"]
    assert states["b"][-1] == LEADER
    stop_b.set()
    await running_b


async def test_a_leader_that_loses_its_lock_connection_stops_its_work(
    make: Callable[[str], Leadership], postgres_url: str
) -> None:
    a, b = make("a"), make("b")
    recorder, stop = Recorder(), asyncio.Event()
    assert await a.try_lead()
    tasks = [asyncio.create_task(x.run(recorder.work(x.name), stop)) for x in (a, b)]
    await until(lambda: _true("a started" in recorder.log), "a's work started")
    with psycopg.connect(
        postgres_url, autocommit=True
    ) as admin:  # the server ends a's lock session
        ended = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks "
            "WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid() AND "
            "database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchall()
    assert ended == [(True,)]
    await until(lambda: _true("a cancelled" in recorder.log), "a stopped its work")
    # Someone leads again (a with a new session, or b), never both at once.
    await until(lambda: _true(a.leading or b.leading), "a new leader")
    assert not (a.leading and b.leading)
    # The server freed the lock at once, so b may start before a notices; a real partition
    # leaves the lock held for SERVER_GIVES_UP seconds, long after a has stopped.
    assert recorder.log[0] == "a started"
    assert sorted(recorder.log[1:]) in (["a cancelled", "a started"], ["a cancelled", "b started"])
    stop.set()
    await asyncio.gather(*tasks)


async def test_a_cut_off_leader_stops_while_the_server_still_holds_its_lock(
    make: Callable[[str], Leadership], postgres_url: str, states: dict[str, list[str]]
) -> None:
    """Fencing: a leader cut off from PostgreSQL (its session alive on the server, so the
    lock still held) stops its work on its own; only then does the lock go to another."""
    url = make_url(postgres_url)
    async with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        a = make("a")
        a.dsn = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        b = make("b")
        recorder, stop = Recorder(), asyncio.Event()
        assert await a.try_lead()
        tasks = [asyncio.create_task(x.run(recorder.work(x.name), stop)) for x in (a, b)]
        await until(lambda: _true("a started" in recorder.log), "a's work started")

        proxy.freeze()
        await until(lambda: _true("a cancelled" in recorder.log), "a stopped on its own")
        assert not b.leading  # the server still holds a's lock: nobody else leads
        assert recorder.log == ["a started", "a cancelled"]

        await proxy.close()  # a's session ends on the server; a cannot reconnect
        await until(lambda: _true(b.leading), "b leads")
        await until(lambda: _true("b started" in recorder.log), "b's work started")
        assert recorder.log == ["a started", "a cancelled", "b started"]
        assert states["a"][-1] == STANDBY
        stop.set()
        await asyncio.gather(*tasks)


async def _true(value: bool) -> bool:
    return value
