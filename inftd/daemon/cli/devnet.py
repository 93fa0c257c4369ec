"""A local Anvil chain as a managed child process (for ``inftd dev`` and the tests).

Anvil runs in its own session so a terminal's Ctrl-C reaches only inftd, which then stops
it cleanly (Anvil writes its state file on SIGTERM); on Linux the kernel also sends it
SIGTERM if inftd itself dies, so no orphan is ever left behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inftd.daemon.errors import DevnetError

PROJECT_ROOT = Path(__file__).resolve().parents[3]
ANVIL_START_TIMEOUT = 30.0  # seconds to wait for Anvil's RPC to answer
ANVIL_STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL
TX_KEEPER = 1_000_000  # blocks of transactions Anvil keeps in its state file
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class DevAccount:
    """One of Anvil's well-known test accounts (public keys, never use them elsewhere)."""

    address: str
    key: str


# Accounts 0-3 of Anvil's default mnemonic "test test ... junk".
DEPLOYER = DevAccount(
    "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
)
BUYER = DevAccount(
    "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
)
FRIEND = DevAccount(
    "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
)
MINTER = DevAccount(
    "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
)


def foundry_binary(name: str) -> Path:
    """The anvil/forge/cast binary that `npm ci` put under node_modules, else one on PATH."""
    machine = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
    arch = machine.get(platform.machine().lower(), platform.machine().lower())
    system = {"linux": "linux", "darwin": "darwin"}.get(sys.platform, sys.platform)
    candidate = PROJECT_ROOT / "node_modules" / "@foundry-rs" / f"{name}-{system}-{arch}" / "bin"
    if (candidate / name).is_file():
        return candidate / name
    found = shutil.which(name)
    if found:
        return Path(found)
    raise DevnetError(f"{name} not found: run `npm ci` in {PROJECT_ROOT}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def die_with_parent() -> None:
    """For `preexec_fn`: the child gets SIGTERM when the process that started it dies."""
    if sys.platform == "linux":
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def rpc_call(url: str, method: str, params: list[Any] | None = None, timeout: float = 5.0) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
    request = urllib.request.Request(
        url, body.encode(), {"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        reply = json.loads(response.read())
    if "error" in reply:
        raise DevnetError(f"{method} failed: {reply['error']}")
    return reply["result"]


class Anvil:
    """``with Anvil(...) as chain:`` starts Anvil on a free port and stops it on exit."""

    def __init__(
        self,
        *,
        state_file: Path | None = None,
        chain_id: int = 31337,
        log_file: Path | None = None,
        states_in_memory: int | None = None,
    ) -> None:
        """``states_in_memory``: keep the last N block states in memory and none on disk
        (``--prune-history N``). Needed where ``anvil_reorg`` runs on a chain past about a
        thousand blocks: Anvil 1.7.1 then rolls back to an empty state (no contract code,
        no balances) when the target state has moved to its disk cache. Older states are
        gone (calls at old blocks fail); blocks, receipts and logs stay."""
        self.state_file = state_file
        self.chain_id = chain_id
        self.log_file = log_file
        self.states_in_memory = states_in_memory
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def _command(self) -> list[str]:
        command = [
            str(foundry_binary("anvil")),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--chain-id", str(self.chain_id),
        ]  # fmt: skip
        if self.state_file:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            command += ["--state", str(self.state_file)]
            command += ["--transaction-block-keeper", str(TX_KEEPER)]
        if self.states_in_memory is not None:
            command += ["--prune-history", str(self.states_in_memory)]
        return command

    def start(self) -> None:
        for _ in range(3):  # a free port can be taken between probing and binding
            self.port = free_port()
            with contextlib.ExitStack() as stack:
                log = (
                    stack.enter_context(open(self.log_file, "ab"))
                    if self.log_file
                    else subprocess.DEVNULL
                )
                self._process = subprocess.Popen(
                    self._command(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    preexec_fn=die_with_parent,
                )
            if self._wait_ready():
                return
            self.stop()
        raise DevnetError(f"Anvil did not start; see {self.log_file or 'its output'}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + ANVIL_START_TIMEOUT
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                return False
            with contextlib.suppress(OSError, urllib.error.URLError, DevnetError):
                rpc_call(self.url, "eth_chainId", timeout=1.0)
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(ANVIL_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> Anvil:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
