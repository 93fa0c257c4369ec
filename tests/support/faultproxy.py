"""A real HTTP JSON-RPC proxy in front of Anvil that injects faults on demand.

    async with FaultProxy(anvil.url) as proxy:
        proxy.fail_next(2, "500")
        rpc = ChainRpc([proxy.url])

Fault kinds: "413" (payload too large), "429" (opts: retry_after seconds), "500", "502",
"stall" (opts: seconds, and answer=False to never answer), "truncate" (half the upstream
body), "garbage" (200 with a non-JSON body), "reset" (the connection closed without an
answer), "rpc_error" (opts: code, message). Queued faults apply to the next requests that
pass ``only_methods`` and ``fault_filter``; with ``fault_rate`` set, other requests fail at
random among ``chaos_kinds`` (seeded by ``seed``). ``hold``, if given, maps a request to an
async context manager the proxy holds while it answers (or None): the chaos run's gate
between transactions and reorgs.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web

KINDS = ("413", "429", "500", "502", "stall", "truncate", "garbage", "reset", "rpc_error")
CHAOS_KINDS = ("429", "500", "502", "stall", "truncate", "garbage", "reset")
CHAOS_STALL_MAX = 0.1  # seconds: random stalls reorder concurrent answers yet stay short
SHUTDOWN_TIMEOUT = 1.0  # seconds the server waits for handlers still running at exit
RANGE_ERROR_CODE = -32005  # what geth answers an eth_getLogs with too many results

Request = dict[str, Any]
Hold = Callable[[Request], AbstractAsyncContextManager[None] | None]


@dataclass
class Fault:
    kind: str
    opts: dict[str, Any] = field(default_factory=dict)


class FaultProxy:
    """``async with FaultProxy(upstream) as proxy``: serves on ``proxy.url`` until exit."""

    def __init__(
        self,
        upstream_url: str,
        *,
        fault_rate: float = 0.0,
        seed: int | None = None,
        chaos_kinds: Sequence[str] = CHAOS_KINDS,
        hold: Hold | None = None,
    ) -> None:
        self.upstream_url = upstream_url
        self.hold = hold
        self.fault_rate = fault_rate
        self.chaos_kinds = tuple(chaos_kinds)
        self.max_log_range: int | None = None
        self.only_methods: set[str] | None = None
        self.fault_filter: Callable[[Request], bool] | None = None
        self.requests = 0
        self.by_method: Counter[str] = Counter()
        self.faults_injected: Counter[str] = Counter()
        self.ranges_refused = 0  # eth_getLogs answered with the max_log_range error
        self.in_flight = 0
        self.max_in_flight = 0  # most requests handled at the same time
        self.url = ""
        self._queue: deque[Fault] = deque()
        self._random = random.Random(seed)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    def fail_next(self, n: int, kind: str, **opts: Any) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(KINDS)}")
        self._queue.extend(Fault(kind, dict(opts)) for _ in range(n))

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def __aenter__(self) -> FaultProxy:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        # handler_cancellation: a client that gave up on a stalled answer ends its handler.
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=SHUTDOWN_TIMEOUT
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def _applies(self, request: Request) -> bool:
        if self.only_methods is not None and request.get("method") not in self.only_methods:
            return False
        return self.fault_filter is None or self.fault_filter(request)

    def _take_fault(self, request: Request | None) -> Fault | None:
        if request is None or not self._applies(request):
            return None
        if self._queue:
            return self._queue.popleft()
        if self.fault_rate and self._random.random() < self.fault_rate:
            kind = self._random.choice(self.chaos_kinds)
            return Fault(
                kind, {"retry_after": 0, "seconds": self._random.uniform(0, CHAOS_STALL_MAX)}
            )
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None
        single = parsed if isinstance(parsed, dict) else None  # batches are only forwarded
        if single is not None:
            self.by_method[str(single.get("method"))] += 1
        held = self.hold(single) if self.hold is not None and single is not None else None
        if held is None:
            return await self._reply(request, body, single)
        async with held:
            return await self._reply(request, body, single)

    async def _reply(
        self, request: web.Request, body: bytes, single: Request | None
    ) -> web.StreamResponse:
        fault = self._take_fault(single)
        if fault is not None:
            self.faults_injected[fault.kind] += 1
            return await INJECTORS[fault.kind](self, request, body, fault.opts)
        refusal = self._refuse_range(single)
        if refusal is not None:
            return refusal
        return await self.forward(body)

    async def upstream(self, body: bytes) -> tuple[int, bytes]:
        assert self._session is not None
        async with self._session.post(
            self.upstream_url, data=body, headers={"Content-Type": "application/json"}
        ) as response:
            return response.status, await response.read()

    async def forward(self, body: bytes) -> web.Response:
        status, data = await self.upstream(body)
        return web.Response(body=data, status=status, content_type="application/json")

    def _refuse_range(self, request: Request | None) -> web.Response | None:
        """geth's answer to an eth_getLogs over more than ``max_log_range`` blocks."""
        if self.max_log_range is None or request is None or request.get("method") != "eth_getLogs":
            return None
        bounds = _hex_bounds(request)
        if bounds is None or bounds[1] - bounds[0] + 1 <= self.max_log_range:
            return None
        first = bounds[0]
        message = (
            "query returned more than 10000 results. "
            f"Try with this block range [{hex(first)}, {hex(first + self.max_log_range - 1)}]."
        )
        self.ranges_refused += 1
        return rpc_error_response(request, RANGE_ERROR_CODE, message)


def _hex_bounds(request: Request) -> tuple[int, int] | None:
    try:
        query = request["params"][0]
        return int(query["fromBlock"], 16), int(query["toBlock"], 16)
    except (KeyError, IndexError, TypeError, ValueError):
        return None  # a blockHash filter, or tags such as "latest"


def rpc_error_response(request: Request, code: int, message: str) -> web.Response:
    reply = {"jsonrpc": "2.0", "id": request.get("id"), "error": {"code": code, "message": message}}
    return web.Response(body=orjson.dumps(reply), content_type="application/json")


Injector = Callable[[FaultProxy, web.Request, bytes, dict[str, Any]], Awaitable[web.StreamResponse]]


async def _too_large(
    proxy: FaultProxy, request: web.Request, body: bytes, opts: dict[str, Any]
) -> web.StreamResponse:
    return web.Response(status=413, text="request entity too large")


async def _too_many(
    proxy: FaultProxy, request: web.Request, body: bytes, opts: dict[str, Any]
) -> web.StreamResponse:
    headers = {"Retry-After": str(opts.get("retry_after", 1))}
    return web.Response(status=429, text="rate limited", headers=headers)


async def _server_error(
    proxy: FaultProxy, request: web.Request, body: bytes, opts: dict[str, Any]
) -> web.StreamResponse:
    return web.Response(status=500, text="internal server error")


async def _bad_gateway(
    proxy: FaultProxy, request: web.Request, body: bytes, opts: dict[str, Any]
) -> web.StreamResponse:
    return web.Response(status=502, text="<html><body>502 Bad Gateway</body></html>")


async def _stall(
    proxy: FaultProxy, request: web.Request, body: bytes, opts: dict[str, Any]
) -> web.StreamResponse:
    if not opts.get("answer", True):
        await asyncio.Event().wait()  # until the client gives up and the handler is cancelled
    await asyncio.sleep(float(opts.get("seconds", 1.0)))
    return await proxy.forward(body)


async def _truncate(
    proxy: FaultProxy, request: web.Request, body: bytes, opts: dict[str, Any]
) -> web.StreamResponse:
    status, data = await proxy.upstream(body)
    return web.Response(body=data[: len(data) // 2], status=status, content_type="application/json")


async def _garbage(
    proxy: FaultProxy, request: web.Request, body: bytes, opts: dict[str, Any]
) -> web.StreamResponse:
    return web.Response(body=b"\x00<html>not json}", content_type="application/json")


async def _reset(
    proxy: FaultProxy, request: web.Request, body: bytes, opts: dict[str, Any]
) -> web.StreamResponse:
    assert request.transport is not None
    request.transport.close()
    # The connection is gone: the handler ends without anything aiohttp could still send.
    raise asyncio.CancelledError


async def _rpc_error(
    proxy: FaultProxy, request: web.Request, body: bytes, opts: dict[str, Any]
) -> web.StreamResponse:
    parsed = orjson.loads(body)
    code = int(opts.get("code", -32603))
    return rpc_error_response(parsed, code, str(opts.get("message", "internal error")))


INJECTORS: dict[str, Injector] = {
    "413": _too_large,
    "429": _too_many,
    "500": _server_error,
    "502": _bad_gateway,
    "stall": _stall,
    "truncate": _truncate,
    "garbage": _garbage,
    "reset": _reset,
    "rpc_error": _rpc_error,
}
