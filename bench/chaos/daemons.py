"""``inftd run`` as OS processes that a test or the chaos run can kill and restart.

A ``DaemonProcess`` is one ``inftd run`` command (extra arguments and environment of its
own, its stderr appended to ``<data_dir>/stderr.log`` across restarts); a ``DaemonSet`` is
several of them over one database, any one of which can be SIGKILLed and started again.
Today every process runs every role; when ``inftd run --role ...`` exists, a set is made of
one process per role by giving each its ``args``.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

START_BOUND = 60.0  # seconds for the API line to appear: a failure bound, not a speed
STOP_BOUND = 30.0  # seconds a SIGTERMed daemon gets before it is killed
SUPERVISOR_ATTEMPTS = 10  # starts in a row before a supervisor gives up
SUPERVISOR_PAUSE = 1.0  # seconds between them
READY = re.compile(r"inftd API on (http://\S+)")
ROOT = Path(__file__).resolve().parents[2]


class DaemonError(Exception):
    """A daemon process did not start or did not stop as it should."""


@dataclass
class DaemonProcess:
    name: str
    data_dir: Path
    env: dict[str, str]
    args: Sequence[str] = ()
    url: str = ""
    starts: int = 0
    kills: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def log(self) -> Path:
        return self.data_dir / "stderr.log"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self) -> list[str]:
        return [sys.executable, "-m", "inftd.daemon.cli.main", "run", "--api-port", "0", *self.args]

    def start(self) -> str:
        """Start it and wait for its API line; the API's URL."""
        if self.alive:
            raise DaemonError(f"{self.name} is already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        clean = {k: v for k, v in os.environ.items() if not k.startswith("INFTD_")}
        with self.log.open("ab") as stderr:
            self.process = subprocess.Popen(
                self.command(),
                cwd=ROOT,
                env={**clean, "INFTD_DATA_DIR": str(self.data_dir), **self.env},
                stdout=subprocess.PIPE,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
            )
        self.starts += 1
        self.url = self._ready_url()
        return self.url

    def _ready_url(self) -> str:
        assert self.process is not None
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(START_BOUND):
                self.kill()
                raise DaemonError(f"{self.name} said nothing within {START_BOUND} s: {self.tail()}")
        line = self.process.stdout.readline().decode()
        match = READY.match(line)
        if match is None:
            self.kill()
            raise DaemonError(f"{self.name} did not start: {line!r} {self.tail()}")
        return match[1]

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind runs."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
            self.kills += 1
        self._close()

    def stop(self) -> int:
        """SIGTERM and wait; its exit code (killed after STOP_BOUND)."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_BOUND)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._close()
        return int(self.process.returncode)

    def _close(self) -> None:
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class DaemonSet:
    """N daemons over one database; ``kill``/``restart`` any one by index."""

    daemons: list[DaemonProcess]

    def start(self) -> None:
        for daemon in self.daemons:  # one by one: the first binds the database to the chain
            daemon.start()

    def stop(self) -> list[int]:
        return [daemon.stop() for daemon in self.daemons]

    def kill(self, index: int) -> None:
        self.daemons[index].kill()

    def restart(self, index: int) -> str:
        self.daemons[index].kill()
        return self.daemons[index].start()

    def urls(self) -> list[str]:
        """The API URLs of the daemons running now."""
        return [d.url for d in self.daemons if d.alive and d.url]

    @property
    def kills(self) -> int:
        return sum(d.kills for d in self.daemons)

    def revive(self, index: int, attempts: int = SUPERVISOR_ATTEMPTS) -> int:
        """Start a stopped daemon as a supervisor would: again after a failed start (one
        that met a faulty RPC, say); the failed starts. Raises after ``attempts``."""
        failed = 0
        while True:
            try:
                self.daemons[index].start()
                return failed
            except DaemonError:
                failed += 1
                if failed >= attempts:
                    raise
                time.sleep(SUPERVISOR_PAUSE)

    def __enter__(self) -> DaemonSet:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for daemon in self.daemons:
            daemon.stop()
