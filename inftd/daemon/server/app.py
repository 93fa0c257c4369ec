"""The aiohttp API: the app built over a Runtime, and started on its port."""

from __future__ import annotations

import errno
import logging
from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import Any

from aiohttp import web

from inftd.daemon.errors import DaemonError
from inftd.daemon.runtime import Runtime
from inftd.daemon.server import asyncapi, metrics, openapi
from inftd.daemon.server.api import (
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
from inftd.daemon.server.api.dev import DemoAccount
from inftd.daemon.server.cors import cors_middleware
from inftd.daemon.server.http import RUNTIME, error_middleware, request_id_middleware
from inftd.daemon.server.metrics import METRICS, HttpMetrics, metrics_middleware
from inftd.daemon.server.ratelimits import RATE_LIMITER, RateLimiter, rate_limit_middleware

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 5.0  # seconds open requests get when the server stops
MAX_BODY_BYTES = 1 << 20  # larger request bodies get 413


def create_app(runtime: Runtime, demo: Sequence[tuple[str, DemoAccount]] = ()) -> web.Application:
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
    add_api_routes(app, demo)
    return app


def add_api_routes(app: web.Application, demo: Sequence[tuple[str, DemoAccount]] = ()) -> None:
    """Every route of the API (the document is built from them)."""
    metrics.add_routes(app)
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
    dev.add_routes(app, demo)
    asyncapi.add_routes(app)
    openapi.add_routes(app, MAX_BODY_BYTES)


async def start_api(
    runtime: Runtime, stack: AsyncExitStack, demo: Sequence[tuple[str, DemoAccount]]
) -> str:
    """Serve the app on the API's host and port until ``stack`` closes; its URL."""
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


def api_document() -> dict[str, Any]:
    """The OpenAPI document of the API, built without a runtime (for tests and tools)."""
    app = web.Application()
    add_api_routes(app)
    return openapi.document(app, MAX_BODY_BYTES)
