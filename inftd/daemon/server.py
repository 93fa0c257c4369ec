"""The aiohttp API: an app factory over a Runtime, and ``serve`` to run it until stopped."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from sqlalchemy import text

import inftd
from inftd.daemon.config import Settings
from inftd.daemon.http import error_middleware, json_response, request_id_middleware
from inftd.daemon.metrics import METRICS, HttpMetrics, metrics_endpoint, metrics_middleware
from inftd.daemon.runtime import Runtime, open_runtime
from inftd.indexer.deployment import Deployment
from inftd.indexer.rpc import RpcError
from inftd.store.db import is_sqlite
from inftd.store.migrate import head_revision, revision_of

log = logging.getLogger(__name__)

RUNTIME = web.AppKey("runtime", Runtime)
SHUTDOWN_GRACE = 5.0  # seconds open requests get when the server stops
MAX_BODY_BYTES = 1 << 20  # larger request bodies get 413


async def health(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    try:
        async with runtime.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        log.warning("health check: database unavailable: %s", exc)
        return json_response({"status": "unavailable", "database": "unavailable"}, 503)
    return json_response({"status": "ok", "database": "ok"})


async def _chain_status(runtime: Runtime) -> dict[str, Any]:
    try:
        head = await runtime.rpc.head_number()
    except RpcError as exc:
        log.warning("status: chain unavailable: %s", exc)
        return {"chainId": runtime.deployment.chain_id, "ok": False, "headBlock": None}
    return {"chainId": runtime.deployment.chain_id, "ok": True, "headBlock": head}


async def status(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    deployment = runtime.deployment
    revision = await revision_of(runtime.engine)
    return json_response(
        {
            "version": inftd.__version__,
            "uptimeSeconds": round(time.monotonic() - runtime.started_at, 3),
            "chain": await _chain_status(runtime),
            "deployment": deployment.model_dump(by_alias=True),
            "database": {
                "backend": "sqlite" if is_sqlite(runtime.settings.database) else "postgresql",
                "revision": revision,
                "headRevision": head_revision(),
            },
        }
    )


def create_app(runtime: Runtime) -> web.Application:
    app = web.Application(
        middlewares=[request_id_middleware, metrics_middleware, error_middleware],
        client_max_size=MAX_BODY_BYTES,
    )
    app[RUNTIME] = runtime
    app[METRICS] = HttpMetrics()
    app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_get("/health", health)
    app.router.add_get("/v1/status", status)
    return app


async def serve(
    settings: Settings,
    deployment: Deployment,
    stop: asyncio.Event,
    on_ready: Callable[[str], None] = lambda url: None,
) -> None:
    """Run the daemon until ``stop`` is set."""
    async with open_runtime(settings, deployment) as runtime:
        runner = web.AppRunner(create_app(runtime), shutdown_timeout=SHUTDOWN_GRACE)
        await runner.setup()
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
            await runner.cleanup()
