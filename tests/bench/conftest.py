"""What the tests of bench.api and bench.mixed share: agents bought on the session chain,
and the daemon in its own process over them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import api
from inftd.daemon.cli.devnet import Anvil
from inftd.indexer.deployment import Deployment
from inftd.store.db import sqlite_url


@pytest.fixture
def bench_chain(chain: Anvil, deployment: Deployment) -> api.BenchChain:
    return api.buy_agents(chain.url, deployment, 2)


@pytest.fixture
def daemon(chain: Anvil, bench_chain: api.BenchChain, tmp_path: Path) -> Iterator[api.Server]:
    """The daemon in its own process over a migrated, indexed SQLite file."""
    database = sqlite_url(tmp_path / "inftd.db")
    asyncio.run(api.index(database, chain.url, bench_chain))
    settings = api.server_settings(tmp_path, database, chain)
    with api.server_process(api.inftd_server, settings, bench_chain.deployment) as server:
        yield server
