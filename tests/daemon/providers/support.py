"""Checks the provider tests share: reading a stream, reading a PNG, finding a leaked key."""

from __future__ import annotations

import struct
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from inftd.daemon.providers.base import (
    ImageRequest,
    Provider,
    ProviderError,
    TextRequest,
    TextResult,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


async def collect(stream: AsyncIterator[str | TextResult]) -> tuple[list[str], TextResult]:
    """The text chunks of a stream and its final result, checking the result comes last
    and once."""
    chunks: list[str] = []
    results: list[TextResult] = []
    async for item in stream:
        assert not results, "nothing may follow the final result"
        if isinstance(item, TextResult):
            results.append(item)
        else:
            assert isinstance(item, str)
            chunks.append(item)
    assert len(results) == 1
    return chunks, results[0]


async def drain(stream: AsyncIterator[str | TextResult], chunks: list[str]) -> None:
    """Read a stream to its end (or its error), keeping its text chunks in ``chunks``."""
    async for item in stream:
        if isinstance(item, str):
            chunks.append(item)


async def make(provider: Provider, call: str, prompt: str = "a lighthouse at dawn") -> None:
    """One call of a provider: ``text`` (read to its end) or ``image``."""
    if call == "text":
        await collect(provider.stream_text(TextRequest(prompt)))
    else:
        await provider.image(ImageRequest(prompt))


@dataclass(frozen=True)
class Png:
    width: int
    height: int
    bit_depth: int
    color_type: int
    pixels: bytes  # the decompressed IDAT stream: one filter byte, then the row, per row


def read_png(data: bytes) -> Png:
    """Parse a PNG strictly: signature, every chunk's CRC, IHDR first, IEND last, IDAT
    inflating to exactly the bytes its size calls for."""
    assert data.startswith(PNG_SIGNATURE), "not a PNG signature"
    at, kinds, idat, header = len(PNG_SIGNATURE), [], b"", b""
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length : at + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        kinds.append(kind)
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        at += 12 + length
    assert kinds[0] == b"IHDR"
    assert kinds[-1] == b"IEND"
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert interlace == 0
    pixels = zlib.decompress(idat)
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color]
    assert len(pixels) == height * (1 + width * channels * depth // 8)
    return Png(width, height, depth, color, pixels)


def assert_png(data: bytes, width: int, height: int) -> Png:
    image = read_png(data)
    assert (image.width, image.height) == (width, height)
    return image


def assert_clean(error: ProviderError, secret: str, log_text: str) -> None:
    """The key is nowhere: not in the error, not in what it chains, not in the logs."""
    for text in (str(error), repr(error), log_text):
        assert secret not in text
    assert error.__cause__ is None  # no SDK error rides along (they can quote the key)
    assert error.__context__ is None


def assert_kind(
    error: pytest.ExceptionInfo[ProviderError],
    kind: str,
    transient: bool,
    retry_after: float | None = None,
) -> None:
    assert error.value.kind == kind
    assert error.value.transient is transient
    assert error.value.retry_after == (pytest.approx(retry_after) if retry_after else None)
