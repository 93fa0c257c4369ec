"""Generated content, stored content-addressed and served at ``GET /v1/content/{sha256}``.

A piece of content is a file named by the sha256 of its bytes, fanned out by the first
two hex digits (``<content dir>/ab/cdef...``), so a directory never holds more than a few
thousand files. A file is written to a temporary name in its directory, flushed to disk
and renamed into place, so a reader (or a crash) never sees half of one, and the directory
is synced after the rename, so the name survives a power loss too; the same bytes
twice are one file. Files are never changed or deleted here: a hash names its bytes for
good, which is what lets the route mark them immutable.

What a file is (its type) is recorded in the ``contents`` table in the transaction that
marks its generation succeeded, so the route (``inftd.daemon.server.api.generations``) serves
only finished work, with its type: a file a failed or lost run left behind is not served.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from inftd.store.models import Content, table_of
from inftd.store.sql import insert_ignore

PATH = "/v1/content/{sha256}"
SHA256 = re.compile(r"[0-9a-f]{64}")
TEXT_TYPE = "text/plain; charset=utf-8"  # what every text generation is stored as


@dataclass(frozen=True, slots=True)
class Stored:
    sha256: str  # hex, 64 characters
    size: int
    content_type: str

    @property
    def content_hash(self) -> str:
        """As stored in ``generations.content_hash`` (and minted): ``0x`` + hex."""
        return "0x" + self.sha256

    def uri(self, public_url: str | None) -> str:
        """Where clients fetch it: on this API (``public_url``), or the path alone."""
        return (public_url or "") + PATH.format(sha256=self.sha256)


def address(data: bytes, content_type: str) -> Stored:
    """Where ``data`` goes, before it is written."""
    return Stored(hashlib.sha256(data).hexdigest(), len(data), content_type)


class ContentStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, sha256: str) -> Path:
        if not SHA256.fullmatch(sha256):
            raise ValueError(f"not a sha256 in lowercase hex: {sha256[:80]!r}")
        return self.root / sha256[:2] / sha256[2:]

    async def put(self, data: bytes, content_type: str) -> Stored:
        """Store ``data`` (once) and return its address; the disk work runs in a thread."""
        stored = address(data, content_type)
        await self.write(stored, data)
        return stored

    async def write(self, stored: Stored, data: bytes) -> None:
        """Store ``data``, whose address is ``stored``, on disk (in a thread)."""
        await asyncio.to_thread(self._write, self.path_of(stored.sha256), data)

    def _write(self, path: Path, data: bytes) -> None:
        if path.exists():
            return  # the same hash is the same bytes
        made = not path.parent.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)  # atomic: the name appears with all its bytes
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        # The name is the directory's: until the directory is on disk too, a power loss
        # can lose a file that a committed row already points at.
        fsync_directory(path.parent)
        if made:
            fsync_directory(path.parent.parent)

    async def read(self, sha256: str) -> bytes | None:
        path = self.path_of(sha256)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None


def fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


async def register(conn: AsyncConnection, stored: Stored) -> None:
    """Record stored content as served, in the caller's transaction (once per hash)."""
    row = {"sha256": stored.sha256, "content_type": stored.content_type, "size": stored.size}
    await conn.execute(insert_ignore(conn, table_of(Content)), row)


async def content_type_of(conn: AsyncConnection, sha256: str) -> str | None:
    """The type of registered content; None if no finished generation made it."""
    found: str | None = await conn.scalar(
        select(Content.content_type).where(Content.sha256 == sha256)
    )
    return found
