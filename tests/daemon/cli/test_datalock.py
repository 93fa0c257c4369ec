"""One data folder, one owner: the lock refuses a second holder where they would clash,
names who holds it, and goes with its process however it ends."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from inftd.daemon.cli.datalock import DataDirInUse, data_dir_held, holders

HOLD = """
import sys, time
from pathlib import Path
from inftd.daemon.cli.datalock import data_dir_held
with data_dir_held(Path(sys.argv[1]), alone=sys.argv[2] == "alone"):
    print("held", flush=True)
    time.sleep(60)
"""


def holding(data_dir: Path, alone: bool) -> subprocess.Popen[str]:
    """Another process holding the folder, until killed."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(data_dir), "alone" if alone else "shared"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "held"
    return process


@pytest.mark.parametrize(
    ("first", "second", "clash"),
    [(True, True, True), (True, False, True), (False, True, True), (False, False, False)],
)
def test_a_holder_alone_clashes_with_any_other(
    tmp_path: Path, first: bool, second: bool, clash: bool
) -> None:
    other = holding(tmp_path, alone=first)
    try:
        if clash:
            with pytest.raises(DataDirInUse) as refused, data_dir_held(tmp_path, alone=second):
                pass
            assert f"pid {other.pid}" in str(refused.value)
            assert str(tmp_path) in str(refused.value)
        else:
            with data_dir_held(tmp_path, alone=second):
                assert {h["pid"] for h in holders(tmp_path)} == {other.pid, os.getpid()}
    finally:
        stop(other)


def stop(process: subprocess.Popen[str]) -> None:
    process.kill()
    process.wait()
    assert process.stdout is not None
    process.stdout.close()


def test_a_killed_holder_leaves_no_lock_behind(tmp_path: Path) -> None:
    stop(holding(tmp_path, alone=True))
    with data_dir_held(tmp_path, alone=True):
        assert [h["pid"] for h in holders(tmp_path)] == [os.getpid()]  # the dead one is gone
    assert holders(tmp_path) == []
