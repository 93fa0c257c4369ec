"""Content storage: named by sha256, fanned out by its first two digits, written whole or
not at all, once per hash; registered content is what the route serves (the route itself
is tested in tests/daemon/server/api/test_generations.py)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.daemon.generation.content import (
    TEXT_TYPE,
    ContentStore,
    content_type_of,
    register,
)


async def test_content_is_stored_under_its_sha256(tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "content")
    data = b"a lighthouse at dawn"
    stored = await store.put(data, TEXT_TYPE)
    sha = hashlib.sha256(data).hexdigest()
    assert (stored.sha256, stored.size, stored.content_type) == (sha, len(data), TEXT_TYPE)
    assert stored.content_hash == "0x" + sha
    path = tmp_path / "content" / sha[:2] / sha[2:]
    assert path.read_bytes() == data
    assert await store.read(sha) == data
    assert stored.uri(None) == f"/v1/content/{sha}"
    assert stored.uri("https://inft.example") == f"https://inft.example/v1/content/{sha}"


async def test_the_same_bytes_are_one_file_written_once(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    data = os.urandom(4096)
    first = await store.put(data, "image/png")
    path = store.path_of(first.sha256)
    written = path.stat().st_mtime_ns
    results = await asyncio.gather(*(store.put(data, "image/png") for _ in range(8)))
    assert {r.sha256 for r in results} == {first.sha256}
    assert path.stat().st_mtime_ns == written  # not rewritten
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary left


async def test_a_write_that_fails_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ContentStore(tmp_path)

    def no_space(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    data = b"half of something"
    with pytest.raises(OSError, match="No space"):
        await store.put(data, TEXT_TYPE)
    sha = hashlib.sha256(data).hexdigest()
    assert await store.read(sha) is None
    assert list(store.path_of(sha).parent.iterdir()) == []  # the temporary is gone too


async def test_the_names_are_synced_to_disk_after_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rename lives in its directory: the file's folder is synced after it (and the
    content root after a new folder), or a power loss can lose a file a row points at."""
    store = ContentStore(tmp_path)
    steps: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        kind = "directory" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        steps.append(("fsync", kind if kind == "file" else os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(source: str, target: Path) -> None:
        steps.append(("replace", str(target)))
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    stored = await store.put(b"kept through a power loss", TEXT_TYPE)
    path = store.path_of(stored.sha256)
    assert steps == [
        ("fsync", "file"),
        ("replace", str(path)),
        ("fsync", str(path.parent)),
        ("fsync", str(tmp_path)),  # the folder was new: its name too
    ]


async def test_unknown_and_malformed_addresses(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    assert await store.read("ab" * 32) is None
    for bad in ("AB" * 32, "ab" * 31, "../" + "a" * 61, ""):
        with pytest.raises(ValueError, match="sha256"):
            store.path_of(bad)


async def test_registered_content_has_its_type_once(engine: AsyncEngine, tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    stored = await store.put(b"\x89PNG...", "image/png")
    async with engine.begin() as conn:
        assert await content_type_of(conn, stored.sha256) is None
        await register(conn, stored)
        await register(conn, stored)  # the same content twice: one row
        assert await content_type_of(conn, stored.sha256) == "image/png"
