"""The fast path (events inserted already applied, planned from memory) against the careful
one (stored unapplied, read back, applied): the same agents, ledger, chain events and told
events, whatever happens on the way: crossing into the reorg window, a crash mid-range, a
webhook that stored some events first or stores one while the range is being written."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from inftd.agents import events as agent_events
from inftd.daemon.cli.devnet import BUYER, FRIEND, MINTER, Anvil
from inftd.indexer import follower, projections
from inftd.indexer.decode import Decoder
from inftd.indexer.deployment import Deployment
from inftd.indexer.direct import apply_new
from inftd.indexer.errors import IndexerError
from inftd.indexer.events import any_stored, store_logs
from inftd.indexer.follower import Indexer, IndexerConfig
from inftd.indexer.rpc import ChainRpc
from inftd.indexer.webhook import WebhookIngest
from inftd.store.db import create_async, sqlite_url
from inftd.store.models import Agent, ChainEvent, CreditEntry, EventRecord, Generation
from tests.indexer.conftest import Copying
from tests.support.contracts import Contracts
from tests.support.schema import at_head
from tests.support.state import MakeIndexer

Key = tuple[str, str, int]  # an event: block hash, tx hash, log index
State = dict[str, list[tuple[Any, ...]]]
NEVER = 10**9  # confirmations no event reaches: everything is stored, nothing applied


async def _event_keys(conn: AsyncConnection) -> dict[int, Key]:
    rows = await conn.execute(
        select(ChainEvent.id, ChainEvent.block_hash, ChainEvent.tx_hash, ChainEvent.log_index)
    )
    return {row[0]: (row[1], row[2], row[3]) for row in rows}


async def _rows(conn: AsyncConnection, table: Any, order: Any) -> list[Any]:
    return list(await conn.execute(select(table).order_by(order)))


async def state(engine: AsyncEngine) -> State:
    """Everything indexing writes, with event ids replaced by the events' chain keys."""
    async with engine.connect() as conn:
        key = await _event_keys(conn)
        events = await _rows(conn, ChainEvent, ChainEvent.block_number)
        agents = await _rows(conn, Agent, Agent.token_id)
        ledger = await _rows(conn, CreditEntry, CreditEntry.id)
        told = await _rows(conn, EventRecord, EventRecord.seq)
        generations = await _rows(conn, Generation, Generation.id)
    return {
        "chain_events": sorted(
            (e.block_number, e.log_index, e.block_hash, e.tx_hash, e.address, e.name, e.args,
             e.token_id, e.applied, e.problem)
            for e in events
        ),
        "agents": [
            (a.token_id, a.package_type, a.owner, a.total_credits, a.used_credits,
             a.reserved_credits, a.purchase_price_wei, a.created_block,
             key.get(a.created_event_id), a.owner_since_block, a.agent_metadata)
            for a in agents
        ],
        "ledger": [
            (e.token_id, e.kind, e.amount, e.idempotency_key, key.get(e.chain_event_id))
            for e in ledger
        ],
        "told": [(e.type, e.token_id, e.payload, e.private) for e in told],
        "generations": [
            (g.id, g.token_id, g.kind, g.prompt, g.options, g.source, g.status,
             g.chain_request_id, key.get(g.chain_event_id))
            for g in generations
        ],
    }  # fmt: skip


async def careful_state(chain: Anvil, deployment: Deployment, tmp_path: Path, start: int) -> State:
    """The same chain indexed the careful way into a fresh SQLite file: every event stored
    unapplied first (confirmations never reached), then applied from the database."""
    url = sqlite_url(tmp_path / "careful.db")
    at_head(url)
    engine = create_async(url)
    rpc = ChainRpc([chain.url])
    try:
        storing = Indexer(rpc, engine, deployment, IndexerConfig(confirmations=NEVER))
        await storing.start_at(start)
        await storing.sync_once()
        assert storing.stats.direct == 0
        await Indexer(rpc, engine, deployment, IndexerConfig()).sync_once()
        return await state(engine)
    finally:
        await rpc.close()
        await engine.dispose()


def busy_chain(contracts: Contracts) -> int:
    """Every kind of event the projections apply, one that cannot apply, and empty blocks
    between them; returns the block to index from."""
    early = contracts.buy(0)  # bought before the start: its transfer below has no agent
    start = contracts.head() + 1
    contracts.transfer(early, FRIEND.address)
    first = contracts.buy(0)
    second = contracts.buy(1, buyer=FRIEND.address)
    contracts.mine(3)
    contracts.top_up(first, 25)
    contracts.transfer(first, MINTER.address)
    contracts.request(second, "a lighthouse at dusk", kind=1)
    contracts.mine(2)
    for package in (2, 0, 1):
        contracts.buy(package)
    contracts.top_up(second, 7)
    contracts.mine(2)
    return start


@pytest.fixture
def make(make_indexer: MakeIndexer) -> MakeIndexer:
    """Indexers that read in small ranges (several per backfill) with a short reorg window."""

    def indexer(**config: object) -> Indexer:
        return make_indexer(**({"window": 4, "initial_range": 3} | config))

    return indexer


async def test_a_backfill_into_the_window_matches_the_careful_path(
    chain: Anvil,
    deployment: Deployment,
    contracts: Contracts,
    make: MakeIndexer,
    engine: AsyncEngine,
    tmp_path: Path,
    copying: Copying,
) -> None:
    start = busy_chain(contracts)
    indexer = make()
    await indexer.start_at(start)
    assert await indexer.sync_once() == contracts.head()
    assert gc.isenabled()
    if copying.expected(engine):
        assert set(copying.tables) == {"chain_events", "agents", "credit_entries"}
    else:
        assert copying.tables == []

    fast = await state(engine)
    assert fast == await careful_state(chain, deployment, tmp_path, start)
    assert indexer.stats.direct == indexer.stats.stored == len(fast["chain_events"])
    assert [row[-1] for row in fast["chain_events"] if row[-1]] == [
        "Transfer for package token 1, which has no agent"
    ]
    assert len(fast["agents"]) == 5
    assert ("agent.created", 2, {
        "block": start + 1,
        "txHash": fast["chain_events"][2][3],
        "buyer": BUYER.address,
        "packageType": 0,
        "credits": 100,
        "price": "10000000000000000",
    }, False) in fast["told"]  # fmt: skip


async def test_a_crash_mid_range_resumes_and_applies_everything_once(
    chain: Anvil,
    deployment: Deployment,
    contracts: Contracts,
    make: MakeIndexer,
    engine: AsyncEngine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    start = busy_chain(contracts)
    calls = 0

    async def crash_on_the_third(conn: AsyncConnection, events: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:  # the events and effects of this range are written by now
            raise RuntimeError("killed")
        await agent_events.record_events(conn, events)

    monkeypatch.setattr(projections, "record_events", crash_on_the_third)
    indexer = make()
    await indexer.start_at(start)
    with pytest.raises(RuntimeError, match="killed"):
        await indexer.sync_once()
    cursor = await indexer.cursor()
    assert cursor is not None
    assert start <= cursor.number < contracts.head()
    async with engine.connect() as conn:
        beyond = await conn.scalars(
            select(ChainEvent.id).where(ChainEvent.block_number > cursor.number)
        )
        assert list(beyond) == []  # the interrupted range left nothing behind

    monkeypatch.undo()
    await make().sync_once()  # a new process, same database
    assert await state(engine) == await careful_state(chain, deployment, tmp_path, start)


async def test_events_a_webhook_stored_first_are_applied_once(
    chain: Anvil,
    deployment: Deployment,
    contracts: Contracts,
    make: MakeIndexer,
    engine: AsyncEngine,
    tmp_path: Path,
) -> None:
    start = busy_chain(contracts)
    rpc = ChainRpc([chain.url])
    try:
        decoder = Decoder(deployment)
        pushed = await rpc.get_logs(start + 6, start + 8, decoder.addresses, decoder.topics)
        assert len(pushed) == 3  # the top-up, the transfer, the generation request
        ingest = WebhookIngest(rpc, engine, decoder, deployment.chain_id)
        await make().start_at(start)
        outcomes = await ingest.ingest(pushed)
    finally:
        await rpc.close()
    assert [o.status for o in outcomes] == ["accepted"] * 3

    indexer = make()
    await indexer.sync_once()
    assert await state(engine) == await careful_state(chain, deployment, tmp_path, start)
    async with engine.connect() as conn:
        sources = list(await conn.scalars(select(ChainEvent.source).order_by(ChainEvent.id)))
    assert sources.count("webhook") == 3
    stats = indexer.stats
    # The three were applied from the database, the others straight from memory.
    assert sum(stats.applied.values()) + stats.problems == stats.direct + 3 == len(sources)


async def test_a_webhook_storing_during_the_write_sends_the_range_the_careful_way(
    chain: Anvil,
    deployment: Deployment,
    contracts: Contracts,
    make: MakeIndexer,
    engine: AsyncEngine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    copying: Copying,
) -> None:
    """By INSERT the new rows are fewer than the logs; by COPY (PostgreSQL) the stored one
    fails the statement: either way the range is rolled back and stored the careful way."""
    start = busy_chain(contracts)

    async def webhook_just_after(conn: AsyncConnection, first: int, last: int) -> bool:
        stored = await any_stored(conn, first, last)
        rpc = ChainRpc([chain.url])
        try:
            decoder = Decoder(deployment)
            raw = await rpc.get_logs(first, last, decoder.addresses, decoder.topics)
        finally:
            await rpc.close()
        logs = [log for entry in raw if (log := decoder.decode(entry)) is not None]
        await store_logs(conn, deployment.chain_id, logs[-1:], "webhook")  # after the check
        return stored

    monkeypatch.setattr(follower, "any_stored", webhook_just_after)
    indexer = make()
    await indexer.start_at(start)
    await indexer.sync_once()
    monkeypatch.undo()

    assert await state(engine) == await careful_state(chain, deployment, tmp_path, start)
    assert indexer.stats.direct == 0  # every range met a stored event and went careful
    assert indexer.stats.stored > 0
    assert ("chain_events" in copying.tables) == copying.expected(engine)


async def test_older_unconfirmed_events_apply_before_a_fast_range(
    chain: Anvil,
    deployment: Deployment,
    contracts: Contracts,
    make: MakeIndexer,
    engine: AsyncEngine,
    tmp_path: Path,
) -> None:
    start = contracts.head() + 1
    token = contracts.buy(0)
    first = make(confirmations=2)
    await first.start_at(start)
    await first.sync_once()  # the purchase is stored, waiting for its confirmations
    assert first.stats.direct == 0
    contracts.top_up(token, 5)  # needs the agent the purchase creates
    contracts.transfer(token, FRIEND.address)
    contracts.mine(8)

    later = make(confirmations=2)
    await later.sync_once()
    fast = await state(engine)
    assert fast == await careful_state(chain, deployment, tmp_path, start)
    assert later.stats.direct > 0
    assert later.stats.problems == 0
    assert fast["agents"][0][2:4] == (FRIEND.address, 105)


async def test_logs_out_of_chain_order_are_refused(
    chain: Anvil, deployment: Deployment, contracts: Contracts, engine: AsyncEngine
) -> None:
    start = busy_chain(contracts)
    rpc = ChainRpc([chain.url])
    decoder = Decoder(deployment)
    try:
        raw = await rpc.get_logs(start, contracts.head(), decoder.addresses, decoder.topics)
    finally:
        await rpc.close()
    raw[1], raw[2] = raw[2], raw[1]
    with pytest.raises(IndexerError, match="out of chain order"):
        async with engine.begin() as conn:
            await apply_new(conn, deployment.chain_id, raw, decoder)
    assert (await state(engine))["chain_events"] == []
    assert gc.isenabled()  # paused while the range was planned, and on again
