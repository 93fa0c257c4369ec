"""Rate limits: token buckets per client IP and per signed-in address, in this process.

Every request takes a token from its client IP's bucket (``api.rate_per_ip`` per second,
holding twice that); a request with a valid sign-in token also takes one from its
address's bucket (``api.rate_per_address``). An empty bucket answers 429 with
``Retry-After``. The operator key, ``/health`` and ``/metrics`` are never limited.

The buckets live in memory: with several API processes each enforces its own share.
The client IP is the connection's peer (no proxy headers are trusted), and IPv6 clients
are counted per /64, since one host usually holds a whole /64.
"""

from __future__ import annotations

import ipaddress
import math
import time
from dataclasses import dataclass

from aiohttp import web

from inftd.daemon.config import ApiSettings
from inftd.daemon.server.access import principal_of
from inftd.daemon.server.http import ApiError, Handler, error_response

BURST_FACTOR = 2.0  # a bucket holds this many seconds' worth of requests
SWEEP_INTERVAL = 60.0  # seconds between evictions of idle buckets
MAX_BUCKETS = 100_000  # more buckets than this start an eviction at once
EXEMPT_PATHS = frozenset({"/health", "/metrics"})
IPV6_PREFIX = 64  # IPv6 clients share a bucket per /64


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """Buckets of one rate, by key; idle buckets (full again) are evicted."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, burst)
        self._buckets: dict[str, _Bucket] = {}
        self._swept = -math.inf

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str, now: float) -> float:
        """0 if the request may go now, else the seconds until the bucket has a token."""
        self._maybe_sweep(now)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.capacity, now)
        elapsed = max(0.0, now - bucket.updated)
        bucket.tokens = min(self.capacity, bucket.tokens + elapsed * self.rate)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate

    def _maybe_sweep(self, now: float) -> None:
        if now - self._swept < SWEEP_INTERVAL and len(self._buckets) < MAX_BUCKETS:
            return
        self._swept = now
        refill = self.capacity / self.rate  # seconds after which a bucket is full again
        idle = [k for k, b in self._buckets.items() if now - b.updated >= refill]
        for key in idle:
            del self._buckets[key]


def client_key(request: web.Request) -> str:
    """The client's IP (its /64 for IPv6) as the peer of the connection."""
    remote = request.remote or "unknown"
    if ":" not in remote:  # an IPv4 peer as the socket gives it: already canonical
        return remote
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return remote
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/{IPV6_PREFIX}", strict=False))
    return str(address)


class RateLimiter:
    def __init__(self, api: ApiSettings) -> None:
        self.per_ip = TokenBuckets(api.rate_per_ip, api.rate_per_ip * BURST_FACTOR)
        self.per_address = TokenBuckets(api.rate_per_address, api.rate_per_address * BURST_FACTOR)

    def wait(self, request: web.Request, now: float) -> float:
        """Seconds the request must wait (0 if it may go now)."""
        if request.path in EXEMPT_PATHS:
            return 0.0
        try:
            principal = principal_of(request)
        except ApiError:  # a bad token: the handler refuses it, the IP bucket counts it
            principal = None
        if principal is not None and principal.operator:
            return 0.0
        wait = self.per_ip.take(client_key(request), now)
        if wait or principal is None or principal.address is None:
            return wait
        return self.per_address.take(principal.address, now)


RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)


def retry_after(wait: float) -> int:
    return max(1, math.ceil(wait))


@web.middleware
async def rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    wait = request.app[RATE_LIMITER].wait(request, time.monotonic())
    if not wait:
        return await handler(request)
    seconds = retry_after(wait)
    response = error_response(429, "rate_limited", f"too many requests; retry in {seconds} s")
    response.headers["Retry-After"] = str(seconds)
    return response
