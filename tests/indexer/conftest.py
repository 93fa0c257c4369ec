"""Fixtures of the indexer tests: the contracts, a migrated database, indexers over it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.daemon.cli.devnet import Anvil
from inftd.indexer import bulk, events
from inftd.indexer.deployment import Deployment
from inftd.indexer.follower import Indexer, IndexerConfig
from inftd.indexer.rpc import ChainRpc
from inftd.store.db import create_async
from tests.support.contracts import Contracts
from tests.support.faultproxy import FaultProxy
from tests.support.schema import at_head
from tests.support.state import MakeIndexer, fast_rpc


@pytest.fixture
def contracts(chain: Anvil, deployment: Deployment) -> Contracts:
    return Contracts(chain.url, deployment)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    at_head(database_url)
    engine = create_async(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def make_indexer(
    chain: Anvil, deployment: Deployment, engine: AsyncEngine
) -> AsyncIterator[MakeIndexer]:
    """New Indexer instances over the same database, as after a restart."""
    async with AsyncExitStack() as stack:

        def make(url: str | None = None, **config: object) -> Indexer:
            rpc = ChainRpc([url or chain.url])
            stack.push_async_callback(rpc.close)
            return Indexer(rpc, engine, deployment, IndexerConfig(**config))  # type: ignore[arg-type]

        yield make


@pytest.fixture
async def proxy(anvil: Anvil) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(anvil.url) as proxy:
        yield proxy


@pytest.fixture
async def rpc(proxy: FaultProxy) -> AsyncIterator[ChainRpc]:
    rpc = fast_rpc([proxy.url])
    yield rpc
    await rpc.close()


@dataclass
class Copying:
    """How the fast path writes: by INSERT as usual, or by COPY from a single row on."""

    forced: bool
    tables: list[str] = field(default_factory=list)  # those COPY wrote to, once a statement

    def expected(self, engine: AsyncEngine) -> bool:
        """Whether COPY must have run: forced, on PostgreSQL (SQLite has no COPY)."""
        return self.forced and engine.dialect.name == "postgresql"


@pytest.fixture(params=["insert", "copy"])
def copying(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Copying:
    copying = Copying(forced=request.param == "copy")
    if copying.forced:
        monkeypatch.setattr(bulk, "COPY_MIN_ROWS", 1)
    copy_columns = bulk.copy_columns

    async def recorded(conn: Any, table: Any, columns: Any) -> None:
        copying.tables.append(table.name)
        await copy_columns(conn, table, columns)

    monkeypatch.setattr(bulk, "copy_columns", recorded)
    monkeypatch.setattr(events, "copy_columns", recorded)
    return copying
