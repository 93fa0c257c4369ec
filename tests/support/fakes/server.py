"""What the fake providers share: their state, and serving an app on a free local port."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from inftd.agents.embeddings import hash_embedding


@dataclass(frozen=True)
class Seen:
    """One request a fake received."""

    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    body: Any


@dataclass
class Fake:
    key: str  # the API key (or token) the fake accepts
    dimensions: int = 32  # of the vectors it answers, unless the request asks for others
    account: str = "acct-1"  # Cloudflare's account id
    seen: list[Seen] = field(default_factory=list)
    failures: deque[int] = field(default_factory=deque)

    def fail_next(self, *statuses: int) -> None:
        """Answer the next requests with these HTTP statuses, in the provider's error shape."""
        self.failures.extend(statuses)

    def next_failure(self) -> int | None:
        return self.failures.popleft() if self.failures else None

    def vector(self, text: str, dimensions: int | None = None) -> list[float]:
        """The fake's embedding of ``text``: the local hashing one, so relevance is real."""
        return [float(x) for x in hash_embedding(text, dimensions or self.dimensions)]

    async def record(self, request: web.Request) -> Any:
        """Note the request; its JSON body (None if it has none or it is not JSON)."""
        try:
            body = await request.json() if request.can_read_body else None
        except ValueError:
            body = None
        self.seen.append(
            Seen(request.method, request.path, dict(request.headers), dict(request.query), body)
        )
        return body


FAKE = web.AppKey("fake", Fake)


def app_of(fake: Fake) -> web.Application:
    app = web.Application()
    app[FAKE] = fake
    return app


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 at a free port; yields its base URL (no trailing slash)."""
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()
