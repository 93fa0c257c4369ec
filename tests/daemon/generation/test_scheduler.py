"""The generation service: what wakes the dispatcher (a new job, a retry coming due, an
expired lease), SIGTERM with its grace, provider probes, and the maintenance jobs."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select, update

from inftd.agents.credits import reserve
from inftd.agents.events import NewEvent, record_events
from inftd.agents.ledger import Balances
from inftd.daemon.cli.devnet import BUYER, Anvil
from inftd.daemon.cli.run import serve
from inftd.daemon.config import Settings
from inftd.daemon.generation.dispatcher import STOP_REASON
from inftd.daemon.generation.queue import claim, utcnow
from inftd.daemon.generation.routing.recorder import MemoryRecorder
from inftd.daemon.generation.routing.router import Router
from inftd.daemon.generation.scheduler import GenerationService, priorities_of
from inftd.daemon.providers.base import Provider
from inftd.daemon.providers.local import LocalProvider
from inftd.daemon.providers.openai import OpenAIProvider
from inftd.daemon.runtime import Runtime
from inftd.daemon.server.app import api_document
from inftd.indexer.deployment import Deployment
from inftd.store.db import create_async
from inftd.store.models import Agent, CreditEntry, EventRecord
from tests.daemon.generation.support import (
    FAST,
    OPENAI_KEY,
    ROUTING,
    balances,
    entries_of,
    events_of,
    fake_openai,
    generation,
    mints_of,
    queue,
)
from tests.support.api import api_client, bearer, indexed_with_hub, runtime_of, sign
from tests.support.contracts import Contracts
from tests.support.fakes.generation import script_of
from tests.support.openapi import Spec
from tests.support.schema import at_head

TEXT = {"kind": "text", "prompt": "a lighthouse at dawn over a quiet harbour"}
WAIT = 15.0  # seconds a test waits for something that takes milliseconds
ASLEEP = 3600  # a poll interval no test waits out: only a wake-up can start the job
SPEC = Spec(api_document())


def settings_for(chain: Anvil, tmp_path: Path, database_url: str, **generation: Any) -> Settings:
    return Settings.load(
        data_dir=tmp_path,
        database_url=database_url,
        chain={"rpc_urls": [chain.url]},
        generation={**FAST, **generation},
        routing=ROUTING,
    )


@pytest.fixture
async def runtime(
    chain: Anvil, deployment: Deployment, tmp_path: Path, database_url: str
) -> AsyncIterator[Runtime]:
    """A runtime whose token 1 (Starter, 100 credits) is indexed, with its hub running;
    generation settings as the test's ``generation`` marker says."""
    settings = settings_for(chain, tmp_path, database_url, poll_interval=ASLEEP)
    Contracts(chain.url, deployment).buy(0, BUYER.address)
    async with indexed_with_hub(settings, deployment) as client:
        yield runtime_of(client)


def with_generation(runtime: Runtime, **changes: Any) -> Runtime:
    """The runtime with its generation settings changed (its writer shared)."""
    settings = runtime.settings
    generation = settings.generation.model_copy(update=changes)
    copy = dataclasses.replace(
        runtime, settings=settings.model_copy(update={"generation": generation})
    )
    copy.writer = runtime.writer
    return copy


def service_for(
    runtime: Runtime, providers: dict[str, Provider] | None = None, owner: str = "worker"
) -> GenerationService:
    providers = providers or {"local": LocalProvider()}
    router = Router(providers, runtime.settings.routing, MemoryRecorder())
    return GenerationService(runtime, router, owner=owner)


async def finished(runtime: Runtime, generation_id: str) -> Any:
    deadline = asyncio.get_running_loop().time() + WAIT
    while (row := await generation(runtime.engine, generation_id)).status not in (
        "succeeded", "failed", "cancelled",
    ):  # fmt: skip
        assert asyncio.get_running_loop().time() < deadline, row.status
        await asyncio.sleep(0.02)
    return row


async def test_a_new_job_is_taken_at_once_not_at_the_next_poll(runtime: Runtime) -> None:
    service = service_for(runtime)
    await service.start()
    try:
        await asyncio.sleep(0.1)  # the first dispatch (at start) found nothing
        generation_id = await queue(runtime, 1, TEXT)
        runtime.hub.poke()  # as the API does after it commits
        row = await finished(runtime, generation_id)
    finally:
        await service.stop()
    assert row.status == "succeeded"


async def test_a_retry_is_taken_when_it_comes_due(runtime: Runtime) -> None:
    async with fake_openai() as openai:
        service = service_for(runtime, {"openai": openai.provider})
        openai.fake.fail_next(500)
        await service.start()
        try:
            generation_id = await queue(runtime, 1, TEXT)
            runtime.hub.poke()
            row = await finished(runtime, generation_id)
        finally:
            await service.stop()
    assert (row.status, row.attempts) == ("succeeded", 2)
    assert await entries_of(runtime.engine, generation_id) == [("reserve", 1), ("commit", 1)]


async def test_the_reaper_gives_a_dead_workers_job_to_a_live_one(runtime: Runtime) -> None:
    generation_id = await queue(runtime, 1, TEXT)
    settings = runtime.settings
    [taken] = await claim(
        runtime.engine, "dead-worker", 1, settings.generation, priorities_of(settings)
    )  # a worker of another process takes it, then dies without a word
    service = service_for(runtime)
    await service.start()
    try:
        row = await finished(runtime, generation_id)
    finally:
        await service.stop()
    assert (row.status, row.attempts, row.lease_owner) == ("succeeded", 2, "worker")
    assert await entries_of(runtime.engine, generation_id) == [("reserve", 1), ("commit", 1)]
    assert await mints_of(runtime.engine, generation_id) == 1
    assert taken.id == generation_id


async def test_stopping_lets_a_short_job_finish_within_the_grace(runtime: Runtime) -> None:
    runtime = with_generation(runtime, shutdown_grace=WAIT)
    service = service_for(runtime, {"local": LocalProvider(delay=0.02)})
    await service.start()
    generation_id = await queue(runtime, 1, TEXT)
    runtime.hub.poke()
    await _running(runtime, generation_id)
    await service.stop()
    row = await generation(runtime.engine, generation_id)
    assert row.status == "succeeded"
    assert await balances(runtime.engine, 1) == Balances(total=100, used=1, reserved=0)


async def _running(runtime: Runtime, generation_id: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT
    while (await generation(runtime.engine, generation_id)).status != "running":
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)


async def test_stopping_gives_a_long_job_back_after_the_grace(runtime: Runtime) -> None:
    slow = with_generation(runtime, shutdown_grace=0.2)
    service = service_for(slow, {"local": LocalProvider(delay=0.5)})
    await service.start()
    generation_id = await queue(runtime, 1, TEXT)
    runtime.hub.poke()
    await _running(runtime, generation_id)
    await service.stop()
    row = await generation(runtime.engine, generation_id)
    assert (row.status, row.attempts, row.lease_owner) == ("queued", 0, None)
    assert await balances(runtime.engine, 1) == Balances(total=100, used=0, reserved=1)
    retrying = [d for k, d in await events_of(runtime.engine, 1) if k == "generation.retrying"]
    assert retrying[-1]["error"] == STOP_REASON
    successor = service_for(runtime, owner="next-start")
    await successor.start()
    try:
        row = await finished(runtime, generation_id)
    finally:
        await successor.stop()
    assert (row.status, row.attempts) == ("succeeded", 1)
    assert await entries_of(runtime.engine, generation_id) == [("reserve", 1), ("commit", 1)]


async def test_probes_record_each_providers_health(runtime: Runtime) -> None:
    down = OpenAIProvider("sk-x", base_url="http://127.0.0.1:9/v1", timeout=2)
    service = service_for(runtime, {"local": LocalProvider(), "openai": down})
    try:
        await service.probe()
    finally:
        await down.close()
    assert service.probes["local"]["ok"] is True
    assert (service.probes["openai"]["ok"], service.probes["openai"]["error"]) == (
        False, "unavailable",
    )  # fmt: skip
    assert service.router.health.cooling_for("openai") > 0  # jobs skip it for a while
    report = service.report()
    assert set(report["probes"]) == {"local", "openai"}
    recorder = service.router.recorder
    assert isinstance(recorder, MemoryRecorder)
    assert [(c.provider, c.purpose, c.outcome) for c in recorder.calls] == [
        ("local", "probe", "ok"),
        ("openai", "probe", "unavailable"),
    ]


async def test_cleanup_drops_old_progress_and_releases_orphaned_reservations(
    runtime: Runtime,
) -> None:
    old = utcnow() - timedelta(days=2)
    async with runtime.engine.begin() as conn:
        await record_events(conn, [NewEvent("generation.progress", 1, {"n": 1}, private=True)])
        await record_events(conn, [NewEvent("generation.progress", 1, {"n": 2}, private=True)])
        await conn.execute(
            update(EventRecord)
            .where(
                EventRecord.type == "generation.progress",
                EventRecord.payload["n"].as_integer() == 1,
            )
            .values(created_at=old)
        )
    async with runtime.writer.write(1) as (conn, agent):
        await reserve(conn, agent, 3, "gone-gen", "gone-gen")  # its generation is no more
    async with runtime.engine.begin() as conn:
        await conn.execute(
            update(CreditEntry).where(CreditEntry.kind == "reserve").values(created_at=old)
        )
    await service_for(runtime).cleanup()
    progress = [d for k, d in await events_of(runtime.engine, 1) if k == "generation.progress"]
    assert progress == [{"n": 2}]
    assert await balances(runtime.engine, 1) == Balances(total=100, used=0, reserved=0)
    assert await entries_of(runtime.engine, "gone-gen") == [("reserve", 3), ("release", 3)]


async def test_consolidation_refreshes_the_influences_of_active_agents(
    runtime: Runtime, chain: Anvil, deployment: Deployment
) -> None:
    Contracts(chain.url, deployment).buy(0, BUYER.address)
    await runtime.indexer.sync_once()
    evolution = {"weights": {"styles": {"noir": 4.0}}, "updatedAt": utcnow().isoformat()}
    async with runtime.engine.begin() as conn:
        await conn.execute(update(Agent).where(Agent.token_id == 2).values(evolution=evolution))
    await service_for(runtime).consolidate()
    async with runtime.engine.connect() as conn:
        influences = await conn.scalar(
            select(Agent.collection_influences).where(Agent.token_id == 1)
        )
    assert influences == ["noir"]


async def test_sigterm_stops_serve_after_the_grace_giving_the_running_job_back(
    chain: Anvil,
    deployment: Deployment,
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The daemon as ``inftd run`` runs it: SIGTERM sets its stop event; the generation
    worker stops claiming, waits its grace, and gives the unfinished job back."""
    Contracts(chain.url, deployment).buy(0, BUYER.address)
    async with fake_openai() as openai:
        script_of(openai.app).latency = WAIT  # the provider takes longer than the grace
        monkeypatch.setenv("INFTD_OPENAI_API_KEY", OPENAI_KEY)
        settings = Settings.load(
            data_dir=tmp_path,
            database_url=database_url,
            chain={"rpc_urls": [chain.url]},
            api={"port": 0},
            providers={"openai_base_url": openai.url, "timeout": 2 * WAIT},
            generation={**FAST, "shutdown_grace": 0.2},
            routing=ROUTING,
        )
        at_head(settings.database)
        stop, ready = asyncio.Event(), asyncio.get_running_loop().create_future()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        try:
            daemon = asyncio.create_task(serve(settings, deployment, stop, ready.set_result))
            url = await asyncio.wait_for(ready, WAIT)
            async with aiohttp.ClientSession(url) as http:
                owner = await _sign_in(http)
                generation_id = await _ask(http, owner)
                await _until_running(http, owner, generation_id)
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.wait_for(daemon, WAIT)
        finally:
            loop.remove_signal_handler(signal.SIGTERM)
    engine = create_async(settings.database)
    try:
        row = await generation(engine, generation_id)
        assert (row.status, row.attempts, row.lease_owner) == ("queued", 0, None)
        assert await balances(engine, 1) == Balances(total=100, used=0, reserved=1)
    finally:
        await engine.dispose()


async def _sign_in(http: aiohttp.ClientSession) -> dict[str, str]:
    """The owner's credentials, once the daemon's indexer has seen the purchase."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while True:
        async with http.get("/v1/agents/1") as answer:
            if answer.status == 200:
                break
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    async with http.get("/v1/auth/nonce", params={"address": BUYER.address}) as answer:
        message = (await answer.json())["message"]
    login = {"message": message, "signature": sign(message, BUYER.key)}
    async with http.post("/v1/auth/login", json=login) as answer:
        return bearer((await answer.json())["token"])


async def _ask(http: aiohttp.ClientSession, owner: dict[str, str]) -> str:
    async with http.post("/v1/agents/1/generations", json=TEXT, headers=owner) as answer:
        assert answer.status == 202, await answer.text()
        return str((await answer.json())["id"])


async def _until_running(
    http: aiohttp.ClientSession, owner: dict[str, str], generation_id: str
) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT
    while True:
        async with http.get(f"/v1/generations/{generation_id}", headers=owner) as answer:
            if (await answer.json())["status"] == "running":
                return
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)


async def test_status_shows_the_worker_and_each_providers_health(
    chain: Anvil, deployment: Deployment, tmp_path: Path, database_url: str
) -> None:
    settings = settings_for(chain, tmp_path, database_url, poll_interval=ASLEEP)
    cooling = {**ROUTING, "cooldown_base": ASLEEP, "cooldown_max": ASLEEP}  # outlasts the test
    settings = settings.model_copy(update={"routing": settings.routing.model_copy(update=cooling)})
    down = OpenAIProvider("sk-x", base_url="http://127.0.0.1:9/v1", timeout=2)
    async with api_client(settings, deployment) as client:
        assert (await status_of(client))["providers"] is None  # no worker in this process yet
        service = service_for(runtime_of(client), {"local": LocalProvider(), "openai": down})
        await service.start()
        try:
            await service.probe()
            body = await status_of(client)
        finally:
            await service.stop()
            await down.close()
        after = await status_of(client)
    SPEC.validate(body, SPEC.doc["components"]["schemas"]["Status"])
    assert body["generation"] == {"worker": "worker", "running": 0, "concurrency": 4}
    local, openai = body["providers"]["local"], body["providers"]["openai"]
    assert (local["healthy"], local["coolingUntil"], local["errorRate"]) == (True, None, 0.0)
    assert local["latencyMs"]["text"] > 0
    assert local["probe"]["ok"] is True
    assert (openai["healthy"], openai["errorRate"], openai["recentCalls"]) == (False, 1.0, 1)
    assert datetime.fromisoformat(openai["coolingUntil"]) > utcnow()
    assert (openai["probe"]["ok"], openai["probe"]["error"]) == (False, "unavailable")
    assert (after["generation"], after["providers"]) == (None, None)  # the worker stopped


async def status_of(client: Any) -> Any:
    response = await client.get("/v1/status")
    assert response.status == 200
    return await response.json()
