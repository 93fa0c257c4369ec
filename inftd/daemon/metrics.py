"""Prometheus metrics of the API, in a registry per app so several apps can share a process."""

from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

from inftd.daemon.http import Handler


class HttpMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "inftd_http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "inftd_http_request_seconds",
            "Time to answer an HTTP request",
            ["method", "route"],
            registry=self.registry,
        )


METRICS = web.AppKey("metrics", HttpMetrics)


def _route_name(request: web.Request) -> str:
    """The route pattern, never the raw path: paths carry ids and would explode the labels."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    metrics = request.app[METRICS]
    started = time.perf_counter()
    response = await handler(request)
    route = _route_name(request)
    metrics.latency.labels(request.method, route).observe(time.perf_counter() - started)
    metrics.requests.labels(request.method, route, str(response.status)).inc()
    return response


async def metrics_endpoint(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
