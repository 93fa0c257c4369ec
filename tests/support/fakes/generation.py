"""What the fakes' generation routes (chat, streamed text, images) share: a per-app
``Script`` of latency and faults, the fake answer to a prompt, and fake PNGs.

A test scripts a fake through ``script_of(app)``::

    script = script_of(app)
    script.latency = 0.1                                  # before every answer
    script.fail_next(Fault.status(429, retry_after=3))    # then the next answers' faults
    script.fail_next(Fault.stall(5), Fault.malformed(), Fault.truncated())

The shared ``Fake`` still counts and records every request (``fake.seen``), checks the
key, and answers ``fake.fail_next(500)`` statuses first, as it does for embeddings.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
import zlib
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

FaultKind = Literal["status", "stall", "malformed", "truncated"]
PREFIX = ["Fake", "answer", "to:"]  # the fake reply: these words, then the prompt's
REPLY_WORDS = 24  # of the prompt, at most


@dataclass(frozen=True)
class Fault:
    """One scripted fault of a generation route.

    - ``status``: an error in the provider's shape; ``retry_after`` seconds said in the
      provider's own way, ``reason`` as its error code (like ``insufficient_quota``).
    - ``stall``: wait ``seconds`` before the headers (``after=0``) or after ``after``
      streamed events.
    - ``malformed``: a body (or an event) that is not JSON; for images, a JSON answer
      whose image is not base64.
    - ``truncated``: a stream that stops halfway without its end marker, or a JSON body
      cut in half."""

    kind: FaultKind
    code: int = 500
    retry_after: float | None = None
    seconds: float = 0.0
    after: int = 0
    reason: str | None = None

    @classmethod
    def status(
        cls, code: int, retry_after: float | None = None, reason: str | None = None
    ) -> Fault:
        return cls("status", code=code, retry_after=retry_after, reason=reason)

    @classmethod
    def stall(cls, seconds: float, after: int = 0) -> Fault:
        return cls("stall", seconds=seconds, after=after)

    @classmethod
    def malformed(cls) -> Fault:
        return cls("malformed")

    @classmethod
    def truncated(cls) -> Fault:
        return cls("truncated")


@dataclass
class Script:
    latency: float = 0.0  # seconds before every answer of a generation route
    faults: deque[Fault] = field(default_factory=deque)

    def fail_next(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    def next_fault(self) -> Fault | None:
        return self.faults.popleft() if self.faults else None

    async def wait(self, fault: Fault | None) -> None:
        """The latency, plus a stall scripted before the headers."""
        await asyncio.sleep(self.latency)
        if fault is not None and fault.kind == "stall" and fault.after == 0:
            await asyncio.sleep(fault.seconds)


SCRIPT = web.AppKey("generation_script", Script)


def script_of(app: web.Application) -> Script:
    """The app's script, made on first use."""
    if SCRIPT not in app:
        app[SCRIPT] = Script()
    return app[SCRIPT]


def count_tokens(*texts: str | None) -> int:
    """The fakes' token count of texts: their words."""
    return sum(len(t.split()) for t in texts if t)


def reply(prompt: str, max_tokens: int | None = None) -> tuple[list[str], bool]:
    """The fake answer's chunks (one word each, spaced to join) and whether it was cut
    at ``max_tokens`` (one token a chunk)."""
    words = PREFIX + prompt.split()[:REPLY_WORDS]
    chunks = [w if i == 0 else " " + w for i, w in enumerate(words)]
    if max_tokens is not None and len(chunks) > max_tokens:
        return chunks[:max_tokens], True
    return chunks, False


async def events(
    items: list[bytes], fault: Fault | None, end: bytes | None
) -> AsyncIterator[bytes]:
    """A streamed body: the items, then ``end``; a fault stalls, corrupts or cuts it."""
    if fault is not None and fault.kind == "truncated":
        items, end = items[: max(len(items) // 2, 1)], None
    if fault is not None and fault.kind == "malformed":
        items = [*items[:1], b'data: {"not json\n\n', *items[1:]]
    for i, item in enumerate(items):
        if fault is not None and fault.kind == "stall" and 0 < fault.after == i:
            await asyncio.sleep(fault.seconds)
        yield item
    if end is not None:
        yield end


def streamed(body: AsyncIterator[bytes]) -> web.Response:
    """A chunked ``text/event-stream`` response that sends ``body`` as it is produced."""
    return web.Response(body=body, content_type="text/event-stream")


def png(width: int, height: int, seed: str = "") -> bytes:
    """A valid RGB PNG of one colour (from ``seed``), written here apart from the code
    under test so a test of that code's PNGs does not lean on it."""
    rgb = hashlib.sha256(seed.encode()).digest()[:3]
    rows = (b"\x00" + rgb * width for _ in range(height))
    return _png(width, height, rows)


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data)
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _png(width: int, height: int, rows: Iterable[bytes]) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"".join(rows))
    parts = (_chunk(b"IHDR", header), _chunk(b"IDAT", idat), _chunk(b"IEND", b""))
    return b"\x89PNG\r\n\x1a\n" + b"".join(parts)
