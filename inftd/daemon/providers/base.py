"""The provider interface: what a generation asks of an AI provider, and what comes back.

A ``Provider`` streams text (chunks, then one final ``TextResult``) and draws images
(one ``ImageResult``); each result names its provider and model and carries its ``Usage``
with the USD cost from the provider's price table. Every fault is one ``ProviderError``
whose ``kind`` tells the router what happened and whether trying again can help:

ProviderError (DaemonError)
    kind="auth"          the key was refused (401/403)                   never transient
    kind="refused"       the request was declined (4xx, content policy)  never transient
    kind="rate_limited"  429; ``retry_after`` when the provider said     transient (unless quota)
    kind="unavailable"   5xx, no connection, the stream broke off        transient
    kind="timeout"       no progress within the provider's timeout       transient
    kind="bad_response"  a body that is not what the API promises        transient

Messages are written here from the kind and the HTTP status only, never from the
provider's text (it can quote the key), and the SDK's exception is not chained.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal, Protocol, TypeVar

from inftd.daemon.errors import DaemonError
from inftd.daemon.providers.prices import PriceTable
from inftd.daemon.providers.usage import Quality as Quality  # re-exported: the interface's words
from inftd.daemon.providers.usage import Usage as Usage

Capability = Literal["text", "image", "embeddings", "streaming"]
ErrorKind = Literal["auth", "refused", "rate_limited", "unavailable", "timeout", "bad_response"]
FinishReason = Literal["stop", "length"]

TRANSIENT: frozenset[ErrorKind] = frozenset(
    {"rate_limited", "unavailable", "timeout", "bad_response"}
)
MIN_SIDE = 64  # pixels: the smallest image side a request may ask for
MAX_SIDE = 4096  # pixels: the largest (Gemini's 4K)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the IEND chunk: length, type, CRC
CHARS_PER_TOKEN = 4  # rough English average, for estimates when a provider reports no usage

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class TextRequest:
    prompt: str
    system: str | None = None  # instructions (the agent's persona, preferences)
    model: str | None = None  # None: the provider's default text model
    max_tokens: int = 1024  # output tokens at most
    temperature: float | None = None  # None: the model's default

    def __post_init__(self) -> None:
        if not self.prompt.strip():
            raise ValueError("prompt is empty")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1 (got {self.max_tokens})")


@dataclass(frozen=True, slots=True)
class ImageRequest:
    prompt: str
    model: str | None = None  # None: the provider's default image model
    size: str = "1024x1024"  # "WIDTHxHEIGHT"; providers take the nearest size they offer
    quality: Quality = "standard"

    def __post_init__(self) -> None:
        if not self.prompt.strip():
            raise ValueError("prompt is empty")
        parse_size(self.size)
        if self.quality not in ("standard", "high"):
            raise ValueError(f"quality must be 'standard' or 'high' (got {self.quality!r})")

    @property
    def dimensions(self) -> tuple[int, int]:
        return parse_size(self.size)


@dataclass(frozen=True, slots=True)
class TextResult:
    text: str
    provider: str
    model: str
    usage: Usage
    finish_reason: FinishReason = "stop"  # "length": cut at max_tokens


@dataclass(frozen=True, slots=True)
class ImageResult:
    data: bytes
    content_type: str  # image/png, image/jpeg or image/webp, read from the bytes
    provider: str
    model: str
    usage: Usage


class Provider(Protocol):
    """One AI provider. ``timeout`` is the seconds a call may go without progress: to
    connect, for the answer to start, and between streamed chunks. An image comes in one
    piece when it is done, so an image call may take ``image_timeout`` seconds."""

    name: str
    capabilities: frozenset[Capability]
    prices: PriceTable
    timeout: float
    image_timeout: float
    text_model: str | None  # the default model of each capability (None: not offered)
    image_model: str | None

    def stream_text(self, request: TextRequest) -> AsyncIterator[str | TextResult]:
        """Text chunks as they come, then one ``TextResult`` with the whole text."""
        ...

    async def image(self, request: ImageRequest) -> ImageResult: ...

    async def close(self) -> None: ...


class ProviderError(DaemonError):
    def __init__(
        self,
        provider: str,
        kind: ErrorKind,
        problem: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        transient: bool | None = None,
    ) -> None:
        self.provider = provider
        self.kind = kind
        self.problem = problem
        self.status = status  # the HTTP status, if an answer came
        self.retry_after = retry_after  # seconds the provider asked us to wait
        self.transient = kind in TRANSIENT if transient is None else transient
        where = f" (HTTP {status})" if status is not None else ""
        wait = f"; retry after {retry_after:g}s" if retry_after is not None else ""
        super().__init__(f"{provider}: {kind}{where}: {problem}{wait}")


def status_error(provider: str, status: int, retry_after: float | None = None) -> ProviderError:
    """The error for an HTTP error status, in words that never quote the provider."""
    if status in (401, 403):
        return ProviderError(provider, "auth", "the credentials were refused", status=status)
    if status == 429:
        return ProviderError(
            provider, "rate_limited", "rate limited", status=status, retry_after=retry_after
        )
    if status == 408:
        return ProviderError(provider, "timeout", "the provider timed out", status=status)
    if status >= 500:
        return ProviderError(
            provider, "unavailable", "the provider failed", status=status, retry_after=retry_after
        )
    return ProviderError(provider, "refused", "the provider refused the request", status=status)


def parse_size(size: str) -> tuple[int, int]:
    """``"1024x768"`` → ``(1024, 768)``; ``ValueError`` for anything else or out of range."""
    width, sep, height = size.lower().partition("x")
    if not (sep and width.isdigit() and height.isdigit()):
        raise ValueError(f"size must be WIDTHxHEIGHT, e.g. 1024x1024 (got {size!r})")
    w, h = int(width), int(height)
    if not (MIN_SIDE <= w <= MAX_SIDE and MIN_SIDE <= h <= MAX_SIDE):
        raise ValueError(f"size sides must be {MIN_SIDE} to {MAX_SIDE} pixels (got {size!r})")
    return w, h


def retry_after_of(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP date)."""
    lowered = {k.lower(): v.strip() for k, v in headers.items()}
    if "retry-after-ms" in lowered:
        seconds = _number(lowered["retry-after-ms"])
        return None if seconds is None else seconds / 1000
    value = lowered.get("retry-after")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return seconds
    try:
        moment = parsedate_to_datetime(value)
    except (ValueError, TypeError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max((moment - datetime.now(UTC)).total_seconds(), 0.0)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def estimate_tokens(*texts: str | None) -> int:
    """A token count for texts whose real count the provider did not report."""
    chars = sum(len(t) for t in texts if t)
    return max(math.ceil(chars / CHARS_PER_TOKEN), 1) if chars else 0


def image_type(data: bytes) -> str | None:
    """The content type of whole image bytes, by their signature and their end marker;
    None if they are not a complete PNG, JPEG or WebP (a cut-off body is not an image)."""
    if data.startswith(PNG_SIGNATURE) and data.endswith(PNG_END):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff") and data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        return "image/jpeg"
    riff_size = int.from_bytes(data[4:8], "little")
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and riff_size + 8 == len(data):
        return "image/webp"
    return None


def b64decoded(text: str) -> bytes | None:
    """The bytes of strict base64 text; None if it is not base64."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


async def next_within(iterator: AsyncIterator[T], seconds: float) -> T:
    """The iterator's next item, or ``TimeoutError`` if it takes longer than ``seconds``.

    For clients whose own timeout covers a whole call rather than each read."""
    async with asyncio.timeout(seconds):
        return await anext(iterator)


async def complete_text(provider: Provider, request: TextRequest) -> TextResult:
    """The final result of ``stream_text``, for callers that need no chunks (judges,
    planners). The stream is read to its end, so the provider's connection is released."""
    result: TextResult | None = None
    async for item in provider.stream_text(request):
        if isinstance(item, TextResult):
            result = item
    if result is None:
        raise ProviderError(provider.name, "bad_response", "the stream ended without a result")
    return result
