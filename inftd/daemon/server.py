"""The aiohttp API: an app factory over a Runtime, and ``serve`` to run the daemon."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web

from inftd.daemon import openapi
from inftd.daemon.api import (
    agents,
    analytics,
    auth,
    console,
    credits,
    generations,
    learning,
    memories,
    mints,
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
from inftd.daemon.generation.scheduler import run_generation
from inftd.daemon.http import RUNTIME, error_middleware, request_id_middleware
from inftd.daemon.limits import RATE_LIMITER, RateLimiter, rate_limit_middleware
from inftd.daemon.metrics import METRICS, HttpMetrics, metrics_endpoint, metrics_middleware
from inftd.daemon.push import PushDispatcher
from inftd.daemon.relayer.relayer import run_relayer
from inftd.daemon.runtime import Runtime, open_runtime
from inftd.indexer.deployment import Deployment

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 5.0  # seconds open requests get when the server stops
MAX_BODY_BYTES = 1 << 20  # larger request bodies get 413


def create_app(runtime: Runtime) -> web.Application:
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
    return app


async def _run_indexer(runtime: Runtime, stop: asyncio.Event) -> None:
    try:
        await runtime.indexer.run(stop)
    except Exception:
        # The API stays up so operators can read /v1/status, which says why.
        log.exception("the indexer stopped")


async def serve(
    settings: Settings,
    deployment: Deployment,
    stop: asyncio.Event,
    on_ready: Callable[[str], None] = lambda url: None,
) -> None:
    """Run the daemon (indexer, API, generation worker) until ``stop`` is set; then the
    generation worker gives its running jobs ``generation.shutdown_grace`` to finish."""
    async with open_runtime(settings, deployment) as runtime, run_generation(runtime):
        runner = web.AppRunner(create_app(runtime), shutdown_timeout=SHUTDOWN_GRACE)
        await runner.setup()
        indexer = asyncio.create_task(_run_indexer(runtime, stop), name="indexer")
        hub = asyncio.create_task(runtime.hub.run(stop), name="hub")
        pusher = asyncio.create_task(
            PushDispatcher(runtime.engine, settings.push).run(stop), name="push"
        )
        relayer = asyncio.create_task(run_relayer(runtime, stop), name="relayer")
        try:
            site = web.TCPSite(runner, settings.api.host, settings.api.port)
            await site.start()
            host, port = runner.addresses[0][:2]
            url = f"http://{host}:{port}"
            log.info("API listening on %s", url)
            on_ready(url)
            await stop.wait()
            log.info("stopping")
        finally:
            for task in (indexer, hub, pusher, relayer):
                task.cancel()  # their writes are transactions: cancelling one loses nothing
            await asyncio.gather(indexer, hub, pusher, relayer, return_exceptions=True)
            await runner.cleanup()
