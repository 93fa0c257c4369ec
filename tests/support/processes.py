"""``inftd run`` as a real OS process, for the tests whose point is processes: its stderr
goes to a log file in its data folder, and it is ready once it says which roles it runs."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

BOUND = 60.0  # seconds: only a failure bound, never a speed requirement


def clean_env() -> dict[str, str]:
    """The test's environment without its ``INFTD_*`` variables: a child gets only ours."""
    return {k: v for k, v in os.environ.items() if not k.startswith("INFTD_")}


class InftdProcess:
    """``inftd run [--role ROLES]``; ``url`` is its API when it has the api role."""

    def __init__(self, data_dir: Path, env: dict[str, str], role: str | None = None) -> None:
        self.data_dir = data_dir
        self.env = env
        self.role = role
        self.url = ""
        self.process: asyncio.subprocess.Process | None = None

    @property
    def log(self) -> Path:
        return self.data_dir / "stderr.log"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def command(self) -> list[str]:
        args = [sys.executable, "-m", "inftd.daemon.cli.main", "run", "--api-port", "0"]
        return args + (["--role", self.role] if self.role else [])

    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as stderr:
            self.process = await asyncio.create_subprocess_exec(
                *self.command(),
                env={**clean_env(), "INFTD_DATA_DIR": str(self.data_dir), **self.env},
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        assert self.process.stdout is not None
        while True:
            line = (await asyncio.wait_for(self.process.stdout.readline(), BOUND)).decode()
            assert line, f"inftd run ended before it was ready:\n{self.log.read_text()}"
            if match := re.match(r"inftd API on (http://\S+)", line):
                self.url = match[1]
            if line.startswith("inftd running "):
                return

    async def stop(self) -> None:
        """SIGTERM, and it must end cleanly (nothing to do if it is gone already)."""
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.process.wait(), BOUND)
        finally:
            if self.process.returncode is None:
                self.process.kill()
                await self.process.wait()
        assert code == 0, self.log.read_text()

    async def kill(self) -> None:
        """SIGKILL: the process dies at once, as on a lost host."""
        assert self.process is not None
        self.process.kill()
        await self.process.wait()


@asynccontextmanager
async def running(*processes: InftdProcess) -> AsyncIterator[None]:
    """Start them one by one (the first binds the database to the chain, and the first of
    a role that elects a leader leads); stop them all on exit."""
    async with AsyncExitStack() as stack:
        for process in processes:
            stack.push_async_callback(process.stop)
            await process.start()
        yield


@asynccontextmanager
async def running_together(*processes: InftdProcess) -> AsyncIterator[None]:
    """Start them all at once, as a host's service manager does (for processes that elect
    nothing among themselves); stop them all at once on exit."""
    async with AsyncExitStack() as stack:
        stack.push_async_callback(_stop_together, processes)
        async with asyncio.TaskGroup() as group:  # a failed start cancels the others
            for process in processes:
                group.create_task(process.start())
        yield


async def _stop_together(processes: tuple[InftdProcess, ...]) -> None:
    """Stop them all at once; each must end, and the first failure is raised after."""
    outcomes = await asyncio.gather(*(p.stop() for p in processes), return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``check`` until true; a bound on failure, not a speed requirement."""
    try:
        async with asyncio.timeout(BOUND):
            while not await check():  # noqa: ASYNC110 - the database has no event to await
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"not within {BOUND} s: {what}") from None


def env_of(**settings: object) -> dict[str, str]:
    """``INFTD_*`` variables from keyword settings (``chain__poll_interval=0.2``)."""
    return {f"INFTD_{key.upper()}": str(value) for key, value in settings.items()}


def inftd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The ``inftd`` command run to its end, with no ``INFTD_*`` of the test's environment."""
    return subprocess.run(
        [sys.executable, "-m", "inftd.daemon.cli.main", *args],
        env={**clean_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


FAST = env_of(  # short intervals for role processes, so a test takes seconds
    chain__poll_interval=0.1,
    daemon__leader_retry=0.2,
    daemon__heartbeat_interval=0.3,
    relayer__poll_interval=0.05,
    relayer__gap_grace=0.2,
    relayer__max_fee_gwei=100_000,
    generation__probe_interval=0,
    api__hub_poll_interval=0.2,
)
