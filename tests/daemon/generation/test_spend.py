"""Spend analytics over the provider_calls ledger, on SQLite and PostgreSQL: figures against
totals worked out by hand, and the router writing the ledger through the DB recorder."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.agents.analytics import Window
from inftd.daemon.generation.routing.recorder import CallRecord, DbRecorder
from inftd.daemon.generation.routing.router import Ask
from inftd.daemon.generation.spend import provider_spend
from inftd.daemon.providers.base import TextRequest
from inftd.daemon.providers.prices import OPENAI
from inftd.store.db import create_async, sqlite_url
from inftd.store.models import Generation
from tests.agents.credits_helpers import add_agent
from tests.daemon.generation.routing_support import make_router, routing, served, with_local
from tests.support.fakes.generation import Fault

START = datetime(2026, 5, 1, tzinfo=UTC)
WINDOW = Window(START, START + timedelta(days=1))
INSIDE = START + timedelta(hours=3)
BEFORE = START - timedelta(hours=1)


def call(provider: str, token_id: int | None, **fields: Any) -> CallRecord:
    values: dict[str, Any] = {
        "model": f"{provider}-model",
        "capability": "text",
        "purpose": "generate",
        "outcome": "ok",
        "created_at": INSIDE,
        **fields,
    }
    return CallRecord(provider=provider, token_id=token_id, **values)


LEDGER = [
    call("openai", 1, input_tokens=1000, output_tokens=2000, cost_usd=0.010, baseline_usd=0.010,
         latency_ms=100),
    call("cloudflare", 1, input_tokens=1000, output_tokens=2000, cost_usd=0.002,
         baseline_usd=0.010, latency_ms=300),
    call("openai", 2, outcome="rate_limited", http_status=429, latency_ms=50),
    call("openai", 2, cached=True, input_tokens=1000, output_tokens=2000, cache_saved_usd=0.010),
    call("gemini", 2, capability="image", input_tokens=20, images=1, cost_usd=0.067,
         baseline_usd=0.067, latency_ms=200),
    call("local", None, purpose="judge", latency_ms=1),
    call("openai", 1, cost_usd=5.0, baseline_usd=5.0, created_at=BEFORE),  # outside
]  # fmt: skip


async def store(engine: AsyncEngine) -> None:
    for token in (1, 2):
        await add_agent(engine, token)
    recorder = DbRecorder(engine)
    for record in LEDGER:
        await recorder.record(record)
    generations = [
        ("g1", 1, "succeeded", "cloudflare", 10, INSIDE),
        ("g2", 2, "succeeded", "gemini", 20, INSIDE),
        ("g3", 2, "failed", "openai", 0, INSIDE),
        ("g4", 1, "succeeded", "cloudflare", 5, BEFORE),
    ]
    async with engine.begin() as conn:
        for gid, token, status, provider, credits, at in generations:
            await conn.execute(
                insert(Generation).values(
                    id=gid,
                    token_id=token,
                    kind="text",
                    prompt="p",
                    source="api",
                    status=status,
                    provider=provider,
                    credits_used=credits,
                    created_at=at,
                )
            )


def money(
    calls: int, failures: int, hits: int, cost: float, cache: float, routed: float, credits: int
) -> dict[str, Any]:
    return {
        "calls": calls,
        "failures": failures,
        "cacheHits": hits,
        "costUsd": cost,
        "cacheSavedUsd": cache,
        "routingSavedUsd": routed,
        "credits": credits,
    }


async def test_spend_by_provider_and_agent_matches_the_hand_totals(engine: AsyncEngine) -> None:
    await store(engine)
    async with engine.connect() as conn:
        spend = await provider_spend(conn, WINDOW)
    assert (spend["from"], spend["to"]) == (
        "2026-05-01T00:00:00+00:00",
        "2026-05-02T00:00:00+00:00",
    )
    assert spend["totals"] == money(6, 1, 1, 0.079, 0.010, 0.008, 30)
    tokens = [
        (p["provider"], p["inputTokens"], p["outputTokens"], p["images"], p["meanLatencyMs"])
        for p in spend["providers"]
    ]
    assert tokens == [  # dearest first
        ("gemini", 20, 0, 1, 200.0),
        ("openai", 2000, 4000, 0, 100.0),  # latency of answered, uncached calls only
        ("cloudflare", 1000, 2000, 0, 300.0),
        ("local", 0, 0, 0, 1.0),
    ]
    by_provider = {p["provider"]: p for p in spend["providers"]}
    keys = money(0, 0, 0, 0, 0, 0, 0)
    figures = {name: {k: row[k] for k in keys} for name, row in by_provider.items()}
    assert figures == {
        "gemini": money(1, 0, 0, 0.067, 0.0, 0.0, 20),
        "openai": money(3, 1, 1, 0.010, 0.010, 0.0, 0),
        "cloudflare": money(1, 0, 0, 0.002, 0.0, 0.008, 10),
        "local": money(1, 0, 0, 0.0, 0.0, 0.0, 0),
    }
    assert spend["agents"] == [
        {"packageTokenId": 2, **money(3, 1, 1, 0.067, 0.010, 0.0, 20)},
        {"packageTokenId": 1, **money(2, 0, 0, 0.012, 0.0, 0.008, 10)},
    ]
    assert spend["agentsTotal"] == 2


async def test_a_window_with_nothing_in_it_is_all_zero(engine: AsyncEngine) -> None:
    await store(engine)
    empty = Window(START + timedelta(days=5), START + timedelta(days=6))
    async with engine.connect() as conn:
        spend = await provider_spend(conn, empty)
    assert spend["totals"] == money(0, 0, 0, 0.0, 0.0, 0.0, 0)
    assert (spend["providers"], spend["agents"], spend["agentsTotal"]) == ([], [], 0)


async def test_the_router_writes_the_ledger_the_figures_come_from(engine: AsyncEngine) -> None:
    async with served("openai", "cloudflare") as fakes:
        recorder = DbRecorder(engine)
        router, _, _ = make_router(with_local(fakes), routing(cache=True), recorder)
        ask = Ask(package_type=0, generation_id="gen-9", token_id=3)
        request = TextRequest("a lighthouse keeper's log at dawn", max_tokens=32)
        paid = await router.text(ask.but(provider_hint="openai"), request)
        fakes["openai"].script.fail_next(Fault.status(500))
        other = TextRequest("the keeper's second log", max_tokens=32)
        fell_back = await router.text(ask.but(provider_hint="openai"), other)
        hit = await router.text(ask.but(provider_hint="openai"), request)
    assert (fell_back.answer.provider, hit.cached) == ("cloudflare", True)
    now = datetime.now(UTC)
    async with engine.connect() as conn:
        spend = await provider_spend(conn, Window(now - timedelta(hours=1), now))
    openai_cost = paid.answer.usage.cost_usd
    cloudflare = fell_back.answer.usage
    would_be = OPENAI.text_price("gpt-5.4-mini").cost(
        cloudflare.input_tokens, cloudflare.output_tokens
    )
    assert spend["totals"]["calls"] == 4
    assert spend["totals"]["failures"] == 1
    assert spend["totals"]["cacheHits"] == 1
    assert spend["totals"]["costUsd"] == pytest.approx(openai_cost + cloudflare.cost_usd, abs=1e-6)
    assert spend["totals"]["cacheSavedUsd"] == pytest.approx(openai_cost, abs=1e-6)
    assert spend["totals"]["routingSavedUsd"] == pytest.approx(
        would_be - cloudflare.cost_usd, abs=1e-6
    )
    assert [a["packageTokenId"] for a in spend["agents"]] == [3]


async def test_a_recorder_that_cannot_write_logs_and_carries_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = create_async(sqlite_url(tmp_path / "unmigrated.db"))  # no provider_calls table
    try:
        with caplog.at_level(logging.ERROR):
            await DbRecorder(engine).record(call("openai", 1))
    finally:
        await engine.dispose()
    assert "recording a openai call failed" in caplog.text
