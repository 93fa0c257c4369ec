"""The randomized workload of a chaos run: users buy packages, top them up, pass them on,
ask their agents for generations by the API and on chain, rate the results, and have their
agents message each other. Chain transactions go straight to Anvil; API calls go to any
daemon that is up, and a call a killed daemon never answered is counted, not retried.

``Tally`` keeps what happened, including every generation id the API accepted (202), which
invariant 7 later looks for.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from web3.exceptions import Web3Exception

from bench.chaos.chain import Chain, TxLost, TxRefused
from bench.chaos.world import World
from inftd.daemon.cli.devnet import DevAccount
from tests.support.api import sign

PROMPTS = (
    "a lighthouse at dusk", "a fox in the snow", "a city of glass", "rain on a tin roof",
    "an old map of the sea", "a robot tending a garden", "a storm over wheat fields",
)  # fmt: skip
STYLES = ("noir", "watercolor", "pixel art", "baroque", "minimal")
API_BOUND = 15.0  # seconds one API call may take before it counts as unanswered


@dataclass
class Tally:
    ops: Counter[str] = field(default_factory=Counter)  # operations that did their work
    refused: Counter[str] = field(default_factory=Counter)  # "op status": answered 4xx/5xx
    failed: Counter[str] = field(default_factory=Counter)  # "op reason": no answer, tx lost
    accepted: dict[str, int] = field(default_factory=dict)  # 202'd generation id -> token


class Users:
    """Who holds which key, and their sign-in tokens (valid across daemon restarts)."""

    def __init__(self, accounts: list[DevAccount]) -> None:
        self.by_address = {a.address.lower(): a for a in accounts}
        self.tokens: dict[str, str] = {}

    def account(self, address: str | None) -> DevAccount | None:
        return None if address is None else self.by_address.get(address.lower())


class NoDaemon(Exception):
    """No daemon is up right now."""


class Workload:
    def __init__(self, world: World, tally: Tally, http: aiohttp.ClientSession) -> None:
        self.world = world
        self.tally = tally
        self.http = http
        self.chain = Chain(world.chain.url, world.deployment, world.gate)
        self.users = Users(world.users)
        self.ops: dict[str, tuple[int, Callable[[random.Random], Awaitable[None]]]] = {
            "purchase": (3, self.purchase),
            "topup": (2, self.top_up),
            "transfer": (1, self.transfer),
            "generation_api": (5, self.generation_by_api),
            "generation_chain": (2, self.generation_by_chain),
            "feedback": (3, self.feedback),
            "message": (2, self.message),
        }

    async def run(self, stop: asyncio.Event, rng: random.Random) -> None:
        names = list(self.ops)
        weights = [self.ops[n][0] for n in names]
        while not stop.is_set():
            name = rng.choices(names, weights)[0]
            try:
                await self.ops[name][1](rng)
            except TxRefused:
                self.tally.refused[f"{name} reverted"] += 1
            except TxLost:
                self.tally.failed[f"{name} tx lost"] += 1
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.tally.failed[f"{name} {type(exc).__name__}"] += 1
            except Web3Exception:  # a read raced a reorg: "block out of range", say
                self.tally.failed[f"{name} chain error"] += 1
            except NoDaemon:
                self.tally.failed[f"{name} no daemon"] += 1
            await asyncio.sleep(rng.uniform(0.02, 0.15))

    # -- on chain ---------------------------------------------------------------------------

    async def purchase(self, rng: random.Random) -> None:
        buyer = rng.choice(self.world.users)
        await asyncio.to_thread(self.chain.buy, buyer.address, rng.choice((0, 0, 1)))
        self.tally.ops["purchase"] += 1

    async def _token(self, rng: random.Random) -> tuple[int, DevAccount] | None:
        last = await asyncio.to_thread(self.chain.last_token)
        if last == 0:
            return None
        token_id = rng.randint(1, last)
        owner = self.users.account(await asyncio.to_thread(self.chain.owner_of, token_id))
        return None if owner is None else (token_id, owner)

    async def top_up(self, rng: random.Random) -> None:
        if (found := await self._token(rng)) is not None:
            payer = rng.choice(self.world.users).address
            await asyncio.to_thread(self.chain.top_up, found[0], rng.randint(1, 50), payer)
            self.tally.ops["topup"] += 1

    async def transfer(self, rng: random.Random) -> None:
        if (found := await self._token(rng)) is not None:
            to = rng.choice([u for u in self.world.users if u != found[1]])
            await asyncio.to_thread(self.chain.transfer, found[0], to.address)
            self.tally.ops["transfer"] += 1

    async def generation_by_chain(self, rng: random.Random) -> None:
        if (found := await self._token(rng)) is not None:
            kind = rng.choice((0, 1))
            await asyncio.to_thread(self.chain.request, found[0], kind, rng.choice(PROMPTS))
            self.tally.ops["generation_chain"] += 1

    # -- through the API --------------------------------------------------------------------

    def _url(self, rng: random.Random) -> str:
        urls = self.world.daemons.urls()
        if not urls:
            raise NoDaemon
        return rng.choice(urls)

    async def _call(
        self, rng: random.Random, method: str, path: str, who: DevAccount | None, body: Any
    ) -> tuple[int, Any]:
        base = self._url(rng)
        headers = {}
        if who is not None:
            headers["Authorization"] = f"Bearer {await self._sign_in(base, who)}"
        timeout = aiohttp.ClientTimeout(total=API_BOUND)
        async with self.http.request(
            method, base + path, json=body, headers=headers, timeout=timeout
        ) as answer:
            data = await answer.json(content_type=None)
            if answer.status == 401 and who is not None:
                self.users.tokens.pop(who.address, None)
            return answer.status, data

    async def _sign_in(self, base: str, who: DevAccount) -> str:
        if (token := self.users.tokens.get(who.address)) is not None:
            return token
        timeout = aiohttp.ClientTimeout(total=API_BOUND)
        params = {"address": who.address}
        async with self.http.get(f"{base}/v1/auth/nonce", params=params, timeout=timeout) as a:
            message = (await a.json())["message"]
        login = {"message": message, "signature": sign(message, who.key)}
        async with self.http.post(f"{base}/v1/auth/login", json=login, timeout=timeout) as a:
            body = await a.json()
            if a.status != 200:
                raise aiohttp.ClientError(f"sign-in answered {a.status}")
        token = str(body["token"])
        self.users.tokens[who.address] = token
        return token

    def _answered(self, op: str, status: int, ok: tuple[int, ...]) -> bool:
        if status in ok:
            self.tally.ops[op] += 1
            return True
        self.tally.refused[f"{op} {status}"] += 1
        return False

    async def generation_by_api(self, rng: random.Random) -> None:
        if (found := await self._token(rng)) is None:
            return
        token_id, owner = found
        request: dict[str, Any] = {
            "kind": rng.choice(("text", "image")),
            "prompt": rng.choice(PROMPTS),
        }
        if rng.random() < 0.3:
            request["options"] = {"style": rng.choice(STYLES)}
        if rng.random() < 0.2:
            request.setdefault("options", {})["provider"] = rng.choice(("openai", "gemini"))
        path = f"/v1/agents/{token_id}/generations"
        status, body = await self._call(rng, "POST", path, owner, request)
        if self._answered("generation_api", status, (202,)):
            self.tally.accepted[str(body["id"])] = token_id

    async def feedback(self, rng: random.Random) -> None:
        if not self.tally.accepted:
            return
        generation_id, token_id = rng.choice(list(self.tally.accepted.items()))
        owner = self.users.account(await asyncio.to_thread(self.chain.owner_of, token_id))
        if owner is None:
            return
        body = {"rating": rng.randint(1, 5), "tags": [f"style:{rng.choice(STYLES)}"]}
        path = f"/v1/generations/{generation_id}/feedback"
        status, _ = await self._call(rng, "POST", path, owner, body)
        self._answered("feedback", status, (200, 201))

    async def message(self, rng: random.Random) -> None:
        found, other = await self._token(rng), await self._token(rng)
        if found is None or other is None or found[0] == other[0]:
            return
        body = {"to": other[0], "text": f"try {rng.choice(STYLES)} next"}
        path = f"/v1/agents/{found[0]}/messages"
        status, _ = await self._call(rng, "POST", path, found[1], body)
        self._answered("message", status, (200, 201))
