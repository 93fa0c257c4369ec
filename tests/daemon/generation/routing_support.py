"""What the router and strategy tests share: providers served by the local fakes (the real
clients over HTTP), a clock the tests move by hand, and a progress callback that keeps
what it is told."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from inftd.daemon.config import RoutingSettings
from inftd.daemon.generation.routing.recorder import MemoryRecorder, Recorder
from inftd.daemon.generation.routing.router import Router
from inftd.daemon.generation.types import Job
from inftd.daemon.providers.base import Provider
from inftd.daemon.providers.cloudflare import CloudflareProvider
from inftd.daemon.providers.gemini import GeminiProvider
from inftd.daemon.providers.local import LocalProvider
from inftd.daemon.providers.openai import OpenAIProvider
from tests.support.fakes import cloudflare, gemini, openai
from tests.support.fakes.generation import Script, script_of
from tests.support.fakes.server import Fake, serve

KEYS = {
    "openai": "sk-test-openai-router-SECRET",
    "gemini": "AIza-test-gemini-router-SECRET",
    "cloudflare": "cf-test-token-router-SECRET",
}
ACCOUNT = "acct-1"
IDLE = 1.0  # seconds a fake may stall before its client calls it a timeout


class ManualClock:
    """A monotonic clock that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Served:
    """A fake provider API on a local port, and our real client of it."""

    fake: Fake
    script: Script
    provider: Provider


def _client(name: str, url: str, key: str) -> Provider:
    if name == "openai":
        return OpenAIProvider(key, base_url=f"{url}/v1", timeout=IDLE, image_timeout=IDLE)
    if name == "gemini":
        return GeminiProvider(key, base_url=f"{url}/", timeout=IDLE, image_timeout=IDLE)
    return CloudflareProvider(key, ACCOUNT, base_url=url, timeout=IDLE, image_timeout=IDLE)


def _app(name: str, fake: Fake) -> web.Application:
    if name == "openai":
        return openai.create_app(fake)
    if name == "gemini":
        return gemini.create_app(fake)
    return cloudflare.create_app(fake)


@asynccontextmanager
async def served(*names: str, key: str | None = None) -> AsyncIterator[dict[str, Served]]:
    """The named fakes served, each with its client (``key``: give a wrong one)."""
    async with AsyncExitStack() as stack:
        found: dict[str, Served] = {}
        for name in names:
            fake = Fake(key=KEYS[name], account=ACCOUNT)
            app = _app(name, fake)
            url = await stack.enter_async_context(serve(app))
            client = _client(name, url, key or KEYS[name])
            stack.push_async_callback(client.close)
            found[name] = Served(fake, script_of(app), client)
        yield found


def routing(**changes: Any) -> RoutingSettings:
    """Routing settings for tests: no cache unless asked, cooldowns as configured."""
    return RoutingSettings(**{"cache": False, **changes})


def make_router(
    providers: Mapping[str, Provider],
    settings: RoutingSettings | None = None,
    recorder: Recorder | None = None,
    clock: ManualClock | None = None,
) -> tuple[Router, MemoryRecorder, ManualClock]:
    memory = MemoryRecorder()
    moment = clock or ManualClock()
    router = Router(providers, settings or routing(), recorder or memory, clock=moment)
    return router, memory, moment


def with_local(served_ones: Mapping[str, Served]) -> dict[str, Provider]:
    return {"local": LocalProvider(), **{n: s.provider for n, s in served_ones.items()}}


def job(**changes: Any) -> Job:
    fields: dict[str, Any] = {
        "generation_id": "gen-1",
        "token_id": 7,
        "package_type": 0,
        "kind": "text",
        "prompt": "a lighthouse keeper's log at dawn",
        "system": None,
        "quality": "standard",
        "size": None,
        "strategy": "single",
        "provider_hint": None,
        "hints": {},
    }
    return Job(**{**fields, **changes})


@dataclass
class Told:
    """A Progress that keeps every (stage, data) it is told."""

    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def __call__(self, stage: str, data: Mapping[str, Any]) -> None:
        self.events.append((stage, dict(data)))

    def of(self, stage: str) -> list[dict[str, Any]]:
        return [data for s, data in self.events if s == stage]

    def text(self) -> str:
        """The streamed text since the last attempt began (earlier chunks are void)."""
        text = ""
        for stage, data in self.events:
            if stage == "attempt":
                text = ""
            elif stage == "chunk":
                text += data["text"]
        return text
