"""The aiohttp API: an app factory over a Runtime, and ``serve`` to run the daemon."""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack

from aiohttp import web

from inftd.daemon import openapi
from inftd.daemon.api import (
    agents,
    analytics,
    auth,
    console,
    credits,
    dev,
    generations,
    learning,
    memories,
    mints,
    packages,
    push,
    social,
    spend,
    statesync,
    status,
    webhooks,
    ws,
)
from inftd.daemon.config import Settings
from inftd.daemon.cors import cors_middleware
from inftd.daemon.devnet import DevAccount
from inftd.daemon.errors import DaemonError
from inftd.daemon.generation.scheduler import run_generation
from inftd.daemon.heartbeat import Facts, Heartbeat
from inftd.daemon.http import RUNTIME, error_middleware, request_id_middleware
from inftd.daemon.leader import Work
from inftd.daemon.limits import RATE_LIMITER, RateLimiter, rate_limit_middleware
from inftd.daemon.metrics import METRICS, HttpMetrics, metrics_endpoint, metrics_middleware
from inftd.daemon.push import PushDispatcher
from inftd.daemon.roles import (
    HUB_ROLES,
    Elections,
    describe,
    indexer_role,
    relayer_role,
    roles_of,
)
from inftd.daemon.runtime import Runtime, open_runtime
from inftd.indexer.deployment import Deployment

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 5.0  # seconds open requests get when the server stops
MAX_BODY_BYTES = 1 << 20  # larger request bodies get 413


def create_app(runtime: Runtime, demo: Sequence[tuple[str, DevAccount]] = ()) -> web.Application:
    """The API; ``demo`` (``inftd dev`` only) adds the demo accounts' routes (api/dev.py)."""
    app = web.Application(
        middlewares=[
            request_id_middleware,
            metrics_middleware,
            cors_middleware,  # outside the limits, so a 429 can be read by the page
            rate_limit_middleware,
            error_middleware,
        ],
        client_max_size=MAX_BODY_BYTES,
    )
    app[RUNTIME] = runtime
    app[METRICS] = HttpMetrics()
    app[RATE_LIMITER] = RateLimiter(runtime.settings.api)
    app.router.add_get("/metrics", metrics_endpoint)
    status.add_routes(app)
    packages.add_routes(app)
    agents.add_routes(app)
    auth.add_routes(app)
    webhooks.add_routes(app)
    push.add_routes(app)
    ws.add_routes(app)
    social.add_routes(app)
    analytics.add_routes(app)
    learning.add_routes(app)
    console.add_routes(app)
    memories.add_routes(app)
    credits.add_routes(app)
    generations.add_routes(app)
    mints.add_routes(app)
    spend.add_routes(app)
    statesync.add_routes(app)
    openapi.add_routes(app, MAX_BODY_BYTES)
    dev.add_routes(app, demo)
    return app


async def _worker(runtime: Runtime, beat: Heartbeat, stack: AsyncExitStack) -> dict[str, Work]:
    """The worker role: the generation service (stopped with its grace when the stack
    closes) and the push dispatcher."""
    service = await stack.enter_async_context(run_generation(runtime))

    async def running() -> Facts:
        return {"jobsRunning": len(service.dispatcher.running) if service else None}

    beat.set("worker", generation=service is not None)
    beat.probes["worker"] = running
    return {"push": PushDispatcher(runtime.engine, runtime.settings.push).run}


async def _roles(
    runtime: Runtime, roles: Sequence[str], beat: Heartbeat, stack: AsyncExitStack
) -> dict[str, Work]:
    """What each role of this process runs, as tasks to start."""
    elections = Elections(runtime, beat)
    work: dict[str, Work] = {}
    if "indexer" in roles:
        work["indexer"] = await indexer_role(elections)
    if "worker" in roles:
        work |= await _worker(runtime, beat, stack)
    if "relayer" in roles and (relayer := await relayer_role(elections)) is not None:
        work["relayer"] = relayer
    if HUB_ROLES & set(roles):
        work["hub"] = runtime.hub.run
    return work


async def _start_api(
    runtime: Runtime, stack: AsyncExitStack, demo: Sequence[tuple[str, DevAccount]]
) -> str:
    runner = web.AppRunner(create_app(runtime, demo), shutdown_timeout=SHUTDOWN_GRACE)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    api = runtime.settings.api
    site = web.TCPSite(runner, api.host, api.port)
    try:
        await site.start()
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise DaemonError(
            f"the API's port {api.port} on {api.host} is taken: another program listens "
            "there (set --api-port, or INFTD_API__PORT)"
        ) from None
    host, port = runner.addresses[0][:2]
    log.info("API listening on http://%s:%s", host, port)
    return f"http://{host}:{port}"


async def _cancel(tasks: Sequence[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()  # their writes are transactions: cancelling one loses nothing
    await asyncio.gather(*tasks, return_exceptions=True)


async def serve(
    settings: Settings,
    deployment: Deployment,
    stop: asyncio.Event,
    on_ready: Callable[[str], None] = lambda url: None,
    on_started: Callable[[Sequence[str]], None] = lambda roles: None,
    demo: Sequence[tuple[str, DevAccount]] = (),
) -> None:
    """Run this process's roles (see roles.py) until ``stop`` is set; ``on_ready`` gets the
    API's URL when the process has the api role, ``on_started`` the roles once all run.
    On stop the generation worker gives its running jobs ``generation.shutdown_grace``."""
    roles = roles_of(settings)
    async with open_runtime(settings, deployment) as runtime, AsyncExitStack() as stack:
        beat = Heartbeat(
            runtime.engine, runtime.process_id, roles, settings.daemon.heartbeat_interval
        )
        await beat.forget_dead()
        stack.push_async_callback(beat.remove)  # last out: the process is gone
        work = await _roles(runtime, roles, beat, stack)
        tasks = [asyncio.create_task(w(stop), name=name) for name, w in work.items()]
        await beat.beat()
        tasks.append(asyncio.create_task(beat.run(), name="heartbeat"))
        stack.push_async_callback(_cancel, tasks)
        if "api" in roles:
            on_ready(await _start_api(runtime, stack, demo))
        log.info("running roles %s as %s", describe(roles), runtime.process_id)
        # What start-up made (modules, SDKs, settings: some 265,000 objects) lives as long
        # as the process: out of the collector's sight, a full collection stops the loop
        # for well under a millisecond instead of ~130 ms (a p99 of every answer).
        gc.freeze()
        on_started(roles)
        await stop.wait()
        log.info("stopping")
