"""One data folder, one owner: a lock file that a second ``inftd`` on the folder runs into.

``inftd dev`` holds its folder alone (its Anvil state, its SQLite file), and so does any
command that writes a SQLite database in it. Processes on PostgreSQL may share a folder
(the role processes of one host share its content folder), so they hold it together: a
second ``inftd run`` on PostgreSQL may start beside the first, but not beside ``inftd
dev``. A refusal names who holds the folder and touches nothing. The kernel lets the lock
go when its process ends, however it ends, so a killed process never leaves a stale one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson

from inftd.daemon.errors import DaemonError

LOCK_FILE = "inftd.lock"  # held with flock, never written
HOLDERS_FILE = "inftd.lock.holders"  # a JSON line per holder: who to name in a refusal


class DataDirInUse(DaemonError):
    def __init__(self, data_dir: Path, holders: list[dict[str, object]]) -> None:
        self.data_dir = data_dir
        self.holders = holders
        named = ", ".join(f"pid {h.get('pid')} ({h.get('command')})" for h in holders)
        super().__init__(
            f"the data folder {data_dir} is in use by another inftd: "
            f"{named or 'a process that did not say who it is'}; stop it or use another "
            "--data-dir"
        )


@contextlib.contextmanager
def data_dir_held(data_dir: Path, *, alone: bool) -> Iterator[None]:
    """Hold ``data_dir`` alone (``alone``) or with other sharers; ``DataDirInUse`` if it
    is held otherwise."""
    data_dir.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, (fcntl.LOCK_EX if alone else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise DataDirInUse(data_dir, holders(data_dir)) from None
    me = {"pid": os.getpid(), "command": " ".join(["inftd", *sys.argv[1:2]])}
    _edit_holders(data_dir, add=me)
    try:
        yield
    finally:
        _edit_holders(data_dir, remove=os.getpid())
        os.close(descriptor)


def holders(data_dir: Path) -> list[dict[str, object]]:
    """The processes that said they hold the folder and are still alive."""
    path = data_dir / HOLDERS_FILE
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return []
    found = []
    for line in lines:
        with contextlib.suppress(orjson.JSONDecodeError):
            holder = orjson.loads(line)
            if isinstance(holder, dict) and _alive(holder.get("pid")):
                found.append(holder)
    return found


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    return True


def _edit_holders(
    data_dir: Path, add: dict[str, object] | None = None, remove: int | None = None
) -> None:
    """Rewrite the holders file, one editor at a time (its own flock), dead ones dropped."""
    path = data_dir / HOLDERS_FILE
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        kept = [h for h in holders(data_dir) if h.get("pid") not in (remove, os.getpid())]
        if add is not None:
            kept.append(add)
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, b"".join(orjson.dumps(h) + b"\n" for h in kept), 0)
    finally:
        os.close(descriptor)
