"""Roles across ``inftd run`` OS processes on one PostgreSQL database: one indexer leads and
a standby takes over from a SIGKILLed leader; one relayer sends per minter key; an
API-only process streams what an indexer-only process stored; ``inftd status`` reads it all.

Takeover times are printed (``-s``), never asserted: speed is for bench/, not tests."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.daemon.cli.devnet import BUYER, MINTER, Anvil
from inftd.daemon.config import DEFAULT_PACKAGES
from inftd.daemon.process.heartbeat import is_alive
from inftd.daemon.process.leader import LEADER, STANDBY
from inftd.indexer.deployment import Deployment
from inftd.indexer.follower import CURSOR
from inftd.store.models import ChainEvent, CreditEntry, DaemonProcess, SyncCursor, utcnow
from tests.support.contracts import Contracts
from tests.support.faultproxy import FaultProxy
from tests.support.mints import assert_minted_once, finish_generations, mints
from tests.support.processes import BOUND, FAST, InftdProcess, clean_env, running, until
from tests.support.state import agents, migrated
from tests.support.ws import events_until, receive, with_kind

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(180)]

OPERATOR_KEY = "operator-key-for-role-process-tests"


@pytest.fixture
async def engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    async with migrated(postgres_url) as engine:
        yield engine


@pytest.fixture
def make(
    postgres_url: str, deployment: Deployment, chain: Anvil, tmp_path: Path
) -> Callable[..., InftdProcess]:
    """``make(name, role, rpc_url=..., **env)``: an ``inftd run`` of its own data folder."""

    def process(name: str, role: str, rpc_url: str = chain.url, **env: str) -> InftdProcess:
        folder = tmp_path / name
        folder.mkdir()
        deployment.write(folder / "deployment.json")
        base = {
            "INFTD_DATABASE_URL": postgres_url,
            "INFTD_CHAIN__RPC_URLS": rpc_url,
            "INFTD_OPERATOR_API_KEY": OPERATOR_KEY,
        }
        return InftdProcess(folder, {**base, **FAST, **env}, role)

    return process


async def states(engine: AsyncEngine, role: str) -> dict[int, str | None]:
    """pid -> the role's state, of every process whose heartbeat is fresh."""
    async with engine.connect() as conn:
        rows = (await conn.execute(select(DaemonProcess))).all()
    now = utcnow()
    return {
        r.pid: r.facts.get(role, {}).get("state")
        for r in rows
        if is_alive(r.heartbeat_at, r.heartbeat_interval, now)
    }


def leading(engine: AsyncEngine, role: str, pid: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await states(engine, role)).get(pid) == LEADER

    return check


def having_agents(engine: AsyncEngine, tokens: list[int]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return set(tokens) <= set(await agents(engine))

    return check


async def cursor_block(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        query = select(SyncCursor.block_number).where(SyncCursor.name == CURSOR)
        return int(await conn.scalar(query) or 0)


async def grants_and_purchases(engine: AsyncEngine) -> tuple[dict[int, int], int]:
    """Grant entries per token, and PackagePurchased events stored."""
    async with engine.connect() as conn:
        grants = await conn.execute(
            select(CreditEntry.token_id, func.count())
            .where(CreditEntry.kind == "grant")
            .group_by(CreditEntry.token_id)
        )
        purchases = await conn.scalar(
            select(func.count()).where(ChainEvent.name == "PackagePurchased")
        )
    return {int(t): int(n) for t, n in grants}, int(purchases or 0)


def blocks_asked(requests: list[dict[str, Any]]) -> list[int]:
    """Block numbers named in the eth_getBlockByNumber / eth_getLogs calls seen."""
    found = []
    for request in requests:
        params = request.get("params") or []
        if request.get("method") == "eth_getBlockByNumber" and str(params[0]).startswith("0x"):
            found.append(int(params[0], 16))
        if request.get("method") == "eth_getLogs" and "fromBlock" in params[0]:
            found.append(int(params[0]["fromBlock"], 16))
    return found


async def test_a_standby_indexer_takes_over_from_a_killed_leader(
    chain: Anvil, deployment: Deployment, engine: AsyncEngine, make: Callable[..., InftdProcess]
) -> None:
    contracts = Contracts(chain.url, deployment)
    async with FaultProxy(chain.url) as proxy:  # B's chain traffic, watched, never faulted
        seen: list[dict[str, Any]] = []
        proxy.fault_filter = lambda request: seen.append(request) is not None
        a, b = make("a", "indexer"), make("b", "indexer", rpc_url=proxy.url)
        async with running(a, b):
            first = [contracts.buy(0), contracts.buy(1)]
            await until(having_agents(engine, first), "A indexed the first purchases")
            await until(leading(engine, "indexer", a.pid), "A's heartbeat says it leads")
            assert (await states(engine, "indexer"))[b.pid] == STANDBY
            assert proxy.by_method["eth_getLogs"] == proxy.by_method["eth_blockNumber"] == 0
            cursor = await cursor_block(engine)
            seen.clear()

            await a.kill()
            killed = time.monotonic()
            later = [contracts.buy(2), contracts.buy(0)]
            await until(leading(engine, "indexer", b.pid), "B leads")
            print(f"\nindexer takeover: B leads {time.monotonic() - killed:.2f} s after SIGKILL")
            await until(having_agents(engine, first + later), "B indexed the later purchases")

        assert proxy.by_method["eth_getLogs"] > 0
        assert min(blocks_asked(seen)) >= cursor  # resumed from the cursor, not the start
    held = await agents(engine)
    bought = dict(zip(first + later, (0, 1, 2, 0), strict=True))
    assert {t: credits for t, (_, credits) in held.items()} == {
        t: DEFAULT_PACKAGES[kind].credits for t, kind in bought.items()
    }
    assert await grants_and_purchases(engine) == ({t: 1 for t in bought}, len(bought))


async def test_one_relayer_sends_per_key_and_a_standby_takes_over(
    chain: Anvil, deployment: Deployment, engine: AsyncEngine, make: Callable[..., InftdProcess]
) -> None:
    contracts = Contracts(chain.url, deployment)
    key = {"INFTD_MINTER_KEY": MINTER.key}
    indexer = make("indexer", "indexer")
    a, b = make("a", "relayer", **key), make("b", "relayer", **key)
    async with running(indexer, a, b):
        token = contracts.buy(0, BUYER.address)
        await until(having_agents(engine, [token]), "the agent is indexed")
        first = await finish_generations(engine, token, 3)
        await until(settled(engine, first), "A minted the first generations")
        assert (await states(engine, "relayer")) | {indexer.pid: None} == {
            a.pid: LEADER,
            b.pid: STANDBY,
            indexer.pid: None,
        }
        assert "mint relayer started" not in b.log.read_text()  # B never ran a round

        later = await finish_generations(engine, token, 3)  # A may be sending them as it dies
        await a.kill()
        killed = time.monotonic()
        await until(leading(engine, "relayer", b.pid), "B leads")
        print(f"\nrelayer takeover: B leads {time.monotonic() - killed:.2f} s after SIGKILL")
        await until(settled(engine, first + later), "every mint confirmed")
    assert_minted_once(contracts, await mints(engine), BUYER.address)


def settled(engine: AsyncEngine, ids: list[str]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        rows = await mints(engine)
        return all(gid in rows and rows[gid].status == "confirmed" for gid in ids)

    return check


async def test_an_api_process_streams_what_an_indexer_process_stored(
    chain: Anvil, deployment: Deployment, engine: AsyncEngine, make: Callable[..., InftdProcess]
) -> None:
    contracts = Contracts(chain.url, deployment)
    api, indexer = make("api", "api"), make("indexer", "indexer")
    async with running(api, indexer), aiohttp.ClientSession() as http:
        assert api.url
        assert not indexer.url
        headers = {"Authorization": f"Bearer {OPERATOR_KEY}"}
        firehose = await http.ws_connect(f"{api.url}/v1/ws?since=0", headers=headers)
        token = contracts.buy(1)
        (created,) = [
            e
            for e in await events_until(firehose, with_kind("agent.created"))
            if e["event"] == "agent.created"
        ]
        assert created["tokenId"] == token
        agent = await http.ws_connect(f"{api.url}/v1/agents/{token}/ws")
        snapshot = await receive(agent)
        assert (snapshot["type"], snapshot["agent"]["totalCredits"]) == ("snapshot", 600)
        async with http.get(f"{api.url}/v1/status") as response:
            status = await response.json()
        assert status["process"]["roles"] == ["api"]
        assert status["roles"]["indexer"]["leader"] is not None
        assert {p["pid"] for p in status["processes"]} == {api.pid, indexer.pid}
        for ws in (firehose, agent):
            await ws.close()


async def inftd_status(folder: Path, env: dict[str, str], *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "inftd.daemon.cli.main", "status", *args),
        env={**env, "INFTD_DATA_DIR": str(folder)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), BOUND)
    assert process.returncode is not None
    return process.returncode, out.decode() + err.decode()


async def test_status_reads_every_role_and_fails_without_an_indexer_leader(
    chain: Anvil,
    deployment: Deployment,
    engine: AsyncEngine,
    make: Callable[..., InftdProcess],
    tmp_path: Path,
) -> None:
    contracts = Contracts(chain.url, deployment)
    indexer, worker, api = make("i", "indexer"), make("w", "worker"), make("a", "api,relayer")
    env = {**clean_env(), **indexer.env}
    async with running(indexer, worker, api):
        token = contracts.buy(0)
        await until(having_agents(engine, [token]), "the agent is indexed")
        code, out = await inftd_status(tmp_path / "i", env, "--json")
        assert code == 0, out
        report = orjson.loads(out)
        assert report["ok"]
        assert report["problems"] == []
        assert report["chain"]["ok"]
        assert report["indexer"]["indexedBlock"] >= 1
        assert report["roles"]["indexer"]["leader"].split(":")[1] == str(indexer.pid)
        assert len(report["roles"]["worker"]["alive"]) == 1
        assert len(report["roles"]["api"]["alive"]) == 1
        assert report["roles"]["relayer"]["signers"] == {}  # no minter key: relayer off
        assert {p["pid"] for p in report["processes"] if p["alive"]} == {
            indexer.pid,
            worker.pid,
            api.pid,
        }

        code, out = await inftd_status(tmp_path / "i", env)
        assert code == 0, out
        lines = out.splitlines()
        assert lines[0].startswith("inftd status: healthy")
        header = next(line for line in lines if line.startswith("PROCESS"))
        rows = lines[lines.index(header) + 1 :]
        assert len(rows) == 3
        assert all("s ago" in row for row in rows)
        assert header.index("ROLES") == rows[0].index(rows[0].split()[3])  # aligned columns

        await indexer.kill()
        await until(no_leader(engine), "the killed leader's heartbeat went stale")
        code, out = await inftd_status(tmp_path / "i", env)
        assert code == 3, out
        assert "problem: no live indexer leader" in out
        assert "STALE" in out


def no_leader(engine: AsyncEngine) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return LEADER not in (await states(engine, "indexer")).values()

    return check
