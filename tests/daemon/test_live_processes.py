"""Live agents across ``inftd run`` processes on PostgreSQL: each process's copies follow
the other's writes (at once with ``?minSeq=``, the seq the write answered), and a process
killed with SIGKILL loses nothing: its copies were only copies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.daemon.cli.devnet import Anvil
from inftd.indexer.deployment import Deployment
from tests.support.contracts import Contracts
from tests.support.processes import InftdProcess, running, until
from tests.support.state import migrated

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(240)]

OPERATOR_KEY = "operator-key-for-live-process-tests"
OPERATOR = {"Authorization": f"Bearer {OPERATOR_KEY}"}


@pytest.fixture
async def engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    async with migrated(postgres_url) as engine:
        yield engine


async def agent(http: aiohttp.ClientSession, url: str, token: int, **query: str) -> Any:
    async with http.get(f"{url}/v1/agents/{token}", params=query) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def adjust(http: aiohttp.ClientSession, url: str, token: int, key: str) -> str:
    """+1 credit through ``url``; the X-Inftd-Seq its answer names."""
    body = {"amount": 1, "note": "across processes", "idempotencyKey": key}
    path = f"{url}/v1/agents/{token}/credits/adjust"
    async with http.post(path, json=body, headers=OPERATOR) as response:
        assert response.status == 200, await response.text()
        return response.headers["X-Inftd-Seq"]


async def test_each_process_reads_the_other_s_writes_and_a_killed_one_loses_nothing(
    chain: Anvil, deployment: Deployment, engine: AsyncEngine, postgres_url: str, tmp_path: Path
) -> None:
    contracts = Contracts(chain.url, deployment)
    shared = {
        "INFTD_DATABASE_URL": postgres_url,
        "INFTD_OPERATOR_API_KEY": OPERATOR_KEY,
        "INFTD_CHAIN__RPC_URLS": chain.url,
        "INFTD_CHAIN__POLL_INTERVAL": "0.2",
    }
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        deployment.write(tmp_path / name / "deployment.json")
    a = InftdProcess(tmp_path / "a", shared)
    b = InftdProcess(tmp_path / "b", shared, role="api")
    token = contracts.buy(0)
    async with running(a, b), aiohttp.ClientSession() as http:

        async def indexed() -> bool:
            async with http.get(f"{b.url}/v1/agents/{token}") as response:
                return response.status == 200

        await until(indexed, "the purchase shows on B")
        assert (await agent(http, b.url, token))["totalCredits"] == 100  # B keeps a copy

        # A write on A: B answers it at once when asked for its seq...
        seq = await adjust(http, a.url, token, "a1")
        assert (await agent(http, b.url, token, minSeq=seq))["totalCredits"] == 101
        # ...and a write on B, on A.
        seq = await adjust(http, b.url, token, "b1")
        assert (await agent(http, a.url, token, minSeq=seq))["totalCredits"] == 102
        # Without minSeq too, once each hub has read the event.
        await adjust(http, a.url, token, "a2")

        async def followed() -> bool:
            return bool((await agent(http, b.url, token))["totalCredits"] == 103)

        await until(followed, "B's copy follows A's write")

        # A dies mid-stream; what it acknowledged is in the database, not only its copy.
        await adjust(http, a.url, token, "a3")
        await a.kill()
        assert (await agent(http, b.url, token))["totalCredits"] >= 103
        await a.start()
        assert (await agent(http, a.url, token))["totalCredits"] == 104
        seq = await adjust(http, a.url, token, "a4")
        assert (await agent(http, b.url, token, minSeq=seq))["totalCredits"] == 105
        before = await live_of(http, b.url)
        assert before["tracking"] is True
        await agent(http, b.url, token)  # nothing written since: from B's copy
        assert (await live_of(http, b.url))["hits"] == before["hits"] + 1


async def live_of(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(f"{url}/v1/status") as response:
        return (await response.json())["live"]
