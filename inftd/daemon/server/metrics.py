"""Prometheus metrics of the API, in a registry per app so several apps can share a process;
served at ``GET /metrics``."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from inftd.daemon.server.api.status import META, IndexerStatus, status_document
from inftd.daemon.server.contract.routes import Answer, Routes
from inftd.daemon.server.http import RUNTIME, Handler

ROUTES = Routes("meta", META)
INDEXER_GAUGES = (  # (field of /v1/status's IndexerStatus, metric name, help)
    ("head_block", "chain_head_block", "Latest block of the chain"),
    ("indexed_block", "indexed_block", "Latest block the indexer has read"),
    ("confirmed_block", "confirmed_block", "Latest block whose events took effect"),
    ("lag_blocks", "indexer_lag_blocks", "Blocks between the head and the indexer"),
    ("reorgs", "indexer_reorgs", "Reorgs the indexer rolled back"),
    ("pending_events", "pending_events", "Events stored but not yet confirmed"),
    ("projection_problems", "projection_problems", "Events that could not be applied"),
)


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
        self.indexer = {
            key: Gauge(f"inftd_{name}", text, registry=self.registry)
            for key, name, text in INDEXER_GAUGES
        }
        self.events = Gauge(
            "inftd_chain_events", "Applied chain events by kind", ["kind"], registry=self.registry
        )
        self.webhook = Gauge(
            "inftd_webhook_logs", "Webhook logs by outcome", ["outcome"], registry=self.registry
        )

        # Children by label values: labels() takes a lock and builds a key each call.
        self._timers: dict[tuple[str, str], Any] = {}
        self._counters: dict[tuple[str, str, int], Any] = {}

    def observe(self, request: web.Request, status: int, seconds: float) -> None:
        route = _route_name(request)
        timer = self._timers.get((request.method, route))
        if timer is None:
            timer = self._timers[(request.method, route)] = self.latency.labels(
                request.method, route
            )
        timer.observe(seconds)
        counter = self._counters.get((request.method, route, status))
        if counter is None:
            counter = self._counters[(request.method, route, status)] = self.requests.labels(
                request.method, route, str(status)
            )
        counter.inc()

    def observe_status(self, indexer: IndexerStatus) -> None:
        for key, gauge in self.indexer.items():
            value = getattr(indexer, key)
            if value is not None:
                gauge.set(value)
        for kind, count in indexer.events_by_kind.items():
            self.events.labels(kind).set(count)
        for outcome, count in indexer.webhook.items():
            self.webhook.labels(outcome).set(count)


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
    metrics.observe(request, response.status, time.perf_counter() - started)
    return response


@ROUTES.get(
    "/metrics",
    "metrics",
    "Prometheus metrics: HTTP requests and latency by route, the indexer's figures",
    ok=Answer("Prometheus text exposition", str, media="text/plain"),
    limited=False,
)
async def metrics_endpoint(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    metrics.observe_status((await status_document(request.app[RUNTIME])).indexer)
    body = generate_latest(metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


add_routes = ROUTES.add_to
