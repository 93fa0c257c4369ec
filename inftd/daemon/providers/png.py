"""A PNG writer for 8-bit RGB images, in pure Python (zlib and struct).

Rows go in as raw RGB bytes; each gets filter type 0 (none), which keeps writing a
1024x1024 image to one join and one ``zlib.compress``.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Mapping

SIGNATURE = b"\x89PNG\r\n\x1a\n"
COMPRESSION = 6  # zlib level: flat colour runs compress well already at the default
RGB = 2  # PNG colour type: truecolour, 3 bytes a pixel


def chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def encode(
    width: int, height: int, rows: Iterable[bytes], text: Mapping[str, str] | None = None
) -> bytes:
    """The PNG file of ``height`` rows of ``width * 3`` RGB bytes; ``text`` goes in
    tEXt chunks (Latin-1 keywords and values, as PNG requires)."""
    raw = bytearray()
    count = 0
    for row in rows:
        if len(row) != width * 3:
            raise ValueError(f"row {count} has {len(row)} bytes, expected {width * 3}")
        raw += b"\x00"
        raw += row
        count += 1
    if count != height:
        raise ValueError(f"got {count} rows, expected {height}")
    header = struct.pack(">IIBBBBB", width, height, 8, RGB, 0, 0, 0)
    texts = b"".join(
        chunk(b"tEXt", key.encode("latin-1") + b"\x00" + value.encode("latin-1", "replace"))
        for key, value in (text or {}).items()
    )
    idat = chunk(b"IDAT", zlib.compress(bytes(raw), COMPRESSION))
    return SIGNATURE + chunk(b"IHDR", header) + texts + idat + chunk(b"IEND", b"")
