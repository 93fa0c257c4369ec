"""Events across API processes on PostgreSQL: two ``inftd run`` processes on one database,
events produced in one reach WebSocket clients of the other by LISTEN/NOTIFY, in seq order,
and a client of the other that reconnects with ``since`` loses nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.daemon.cli.devnet import FRIEND, Anvil
from inftd.indexer.deployment import Deployment
from inftd.store.models import EventRecord
from tests.support.contracts import Contracts
from tests.support.faultproxy import FaultProxy
from tests.support.processes import InftdProcess, running
from tests.support.state import migrated
from tests.support.ws import Message, Socket, events_until, receive, with_kind

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(240)]

OPERATOR_KEY = "operator-key-for-hub-process-tests"
FIREHOSE = {"Authorization": f"Bearer {OPERATOR_KEY}"}
NO_POLL = 3600  # seconds: B's hub never polls within the test, so only a NOTIFY wakes it


@pytest.fixture
async def engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    async with migrated(postgres_url) as engine:
        yield engine


Brief = tuple[int, str, int | None]  # seq, event type, token id


@dataclass(frozen=True)
class Stored:
    brief: Brief
    private: bool


async def stored_events(engine: AsyncEngine, after: int) -> list[Stored]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(EventRecord.seq, EventRecord.type, EventRecord.token_id, EventRecord.private)
            .where(EventRecord.seq > after)
            .order_by(EventRecord.seq)
        )
        return [Stored((r.seq, r.type, r.token_id), r.private) for r in rows]


def brief(events: list[Message]) -> list[Brief]:
    return [(e["seq"], e["event"], e["tokenId"]) for e in events]


def everything(stored: list[Stored]) -> list[Brief]:
    return [s.brief for s in stored]


def public_of(stored: list[Stored], token: int) -> list[Brief]:
    """What an anonymous client of the agent's socket gets."""
    return [s.brief for s in stored if s.brief[2] == token and not s.private]


def through(seq: int) -> Callable[[list[Message]], bool]:
    return lambda events: bool(events) and events[-1]["seq"] >= seq


async def produced(witness: Socket, engine: AsyncEngine, kind: str, after: int) -> list[Stored]:
    """The events stored after ``after`` once A's own firehose has shown a ``kind`` event;
    A's client got exactly those, in seq order."""
    seen = await events_until(witness, with_kind(kind))
    stored = await stored_events(engine, after)
    if seen[-1]["seq"] < stored[-1].brief[0]:  # the rest of that commit
        seen += await events_until(witness, through(stored[-1].brief[0]))
    assert brief(seen) == everything(stored)
    return stored


async def test_events_of_one_api_process_reach_clients_of_another(
    chain: Anvil, deployment: Deployment, engine: AsyncEngine, postgres_url: str, tmp_path: Path
) -> None:
    contracts = Contracts(chain.url, deployment)
    shared = {"INFTD_DATABASE_URL": postgres_url, "INFTD_OPERATOR_API_KEY": OPERATOR_KEY}
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        deployment.write(tmp_path / name / "deployment.json")
    # B reaches the chain through a proxy that refuses eth_blockNumber: it starts (chain id
    # and deployment block check out) but its indexer never learns a head, so only A indexes.
    async with FaultProxy(chain.url, fault_rate=1.0, chaos_kinds=("500",)) as proxy:
        proxy.only_methods = {"eth_blockNumber"}
        a = InftdProcess(
            tmp_path / "a",
            {**shared, "INFTD_CHAIN__RPC_URLS": chain.url, "INFTD_CHAIN__POLL_INTERVAL": "0.2"},
        )
        b = InftdProcess(
            tmp_path / "b",
            {
                **shared,
                "INFTD_CHAIN__RPC_URLS": proxy.url,
                "INFTD_API__HUB_POLL_INTERVAL": str(NO_POLL),
            },
        )
        async with running(a, b), aiohttp.ClientSession() as http:
            await _across_processes(http, a, b, contracts, engine)
        assert proxy.by_method["eth_getLogs"] == 0  # B never read the chain's logs


async def _across_processes(
    http: aiohttp.ClientSession,
    a: InftdProcess,
    b: InftdProcess,
    contracts: Contracts,
    engine: AsyncEngine,
) -> None:
    witness = await http.ws_connect(f"{a.url}/v1/ws?since=0", headers=FIREHOSE)
    firehose = await http.ws_connect(f"{b.url}/v1/ws?since=0", headers=FIREHOSE)

    # A purchase, indexed by A only, reaches B's firehose.
    token = contracts.buy(0)
    bought = await produced(witness, engine, "agent.created", after=0)
    assert bought[0].brief[1:] == ("agent.created", token)
    last = bought[-1].brief[0]
    assert brief(await events_until(firehose, through(last))) == everything(bought)

    # An agent socket on B: snapshot, then A's events about the agent, in seq order.
    agent = await http.ws_connect(f"{b.url}/v1/agents/{token}/ws?since={last}")
    snapshot = await receive(agent)
    assert (snapshot["type"], snapshot["agent"]["totalCredits"]) == ("snapshot", 100)
    contracts.top_up(token, 5)
    contracts.transfer(token, FRIEND.address)
    live = await produced(witness, engine, "owner.changed", after=last)
    kinds = [s.brief[1] for s in live]
    assert kinds.index("credits.changed") < kinds.index("owner.changed")
    last_agent, last = public_of(live, token)[-1][0], live[-1].brief[0]
    assert brief(await events_until(agent, through(last_agent))) == public_of(live, token)
    assert brief(await events_until(firehose, through(last))) == everything(live)

    # B's clients go away; more happens; they come back with since and miss nothing.
    await agent.close()
    await firehose.close()
    contracts.top_up(token, 7)
    other = contracts.buy(1)
    missed = await produced(witness, engine, "agent.created", after=last)
    assert {("credits.changed", token), ("agent.created", other)} <= {s.brief[1:] for s in missed}
    agent = await http.ws_connect(f"{b.url}/v1/agents/{token}/ws?since={last_agent}")
    assert (await receive(agent))["type"] == "snapshot"
    resumed = await events_until(agent, through(public_of(missed, token)[-1][0]))
    assert brief(resumed) == public_of(missed, token)
    firehose = await http.ws_connect(f"{b.url}/v1/ws?since={last}", headers=FIREHOSE)
    assert brief(await events_until(firehose, through(missed[-1].brief[0]))) == everything(missed)
    for ws in (witness, agent, firehose):
        await ws.close()
