"""What the API tests share: the app over a real runtime on the session chain, with the
agents a test buys indexed, the operator key set, and the hub running when asked."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from inftd.daemon.cli.devnet import Anvil
from inftd.daemon.config import Settings
from inftd.indexer.deployment import Deployment
from tests.support.api import OPERATOR_KEY, Buy, OpenApi, api_client, indexed_with_hub, runtime_of
from tests.support.contracts import Contracts


@pytest.fixture
def open_api(
    chain: Anvil,
    deployment: Deployment,
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> OpenApi:
    """``open_api(BUYER, (1, FRIEND), hub=True, api={...})``: tokens 1, 2, ... bought in
    that order and indexed; ``env`` and ``settings`` on top of the defaults."""

    @asynccontextmanager
    async def open_(
        *buys: Buy, hub: bool = False, env: Mapping[str, str] | None = None, **settings: Any
    ) -> AsyncIterator[TestClient]:
        for name, value in {"INFTD_OPERATOR_API_KEY": OPERATOR_KEY, **(env or {})}.items():
            monkeypatch.setenv(name, value)
        loaded = Settings.load(
            data_dir=tmp_path, database_url=database_url, chain={"rpc_urls": [chain.url]},
            **settings,
        )  # fmt: skip
        contracts = Contracts(chain.url, deployment)
        for buy in buys:
            package, buyer = buy if isinstance(buy, tuple) else (0, buy)
            contracts.buy(package, buyer.address)
        if hub:
            async with indexed_with_hub(loaded, deployment) as client:
                yield client
            return
        async with api_client(loaded, deployment) as client:
            await runtime_of(client).indexer.sync_once()
            yield client

    return open_
