"""`inftd dev` as a user runs it: a real process, its banner, the printed cast line, Ctrl-C."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest

from inftd.daemon.cli.devnet import BUYER, die_with_parent, rpc_call
from inftd.indexer.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature

BANNER_TIMEOUT = 90.0


class DevProcess:
    def __init__(self, data_dir: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("INFTD_")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "inftd.daemon.cli.main", "dev", "--data-dir", str(data_dir),
             "--api-port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            preexec_fn=die_with_parent,  # a killed test run leaves no daemon behind
        )  # fmt: skip
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_banner(self) -> dict[str, str]:
        deadline = time.monotonic() + BANNER_TIMEOUT
        while time.monotonic() < deadline:
            match = re.search(r"Buy a .*:\n\s+(.+)\n", self.output)
            request = re.search(r"Then ask its agent .*:\n\s+(.+)\n", self.output)
            if match and request:
                return {
                    "api": re.search(r"API\s+(http://\S+)", self.output)[1],
                    "rpc": re.search(r"Chain RPC\s+(http://\S+)", self.output)[1],
                    "package": re.search(r"INFTPackage\s+(0x\w+)", self.output)[1],
                    "nft": re.search(r"GenerationNFT\s+(0x\w+)", self.output)[1],
                    "operator": re.search(r"Operator key\s+(\w+)", self.output)[1],
                    "webhook": re.search(r"Webhook .* secret (\w+)", self.output)[1],
                    "cast": match[1],
                    "request": request[1],
                }
            assert self.process.poll() is None, f"inftd dev exited:\n{self.output}"
            time.sleep(0.1)
        raise AssertionError(f"no banner within {BANNER_TIMEOUT}s:\n{self.output}")

    def stop(self, sig: int = signal.SIGINT) -> int:
        self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            raise AssertionError(f"inftd dev did not stop within 30 s:\n{self.output}") from None
        self._reader.join(timeout=5)
        assert self.process.stdout is not None
        self.process.stdout.close()
        return code


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return orjson.loads(response.read())


def wait_for_agent(api: str, token_id: int, seconds: float = 20.0) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            return get_json(f"{api}/v1/agents/{token_id}")
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code != 404:
                raise
        time.sleep(0.1)
    raise AssertionError(f"agent {token_id} did not appear within {seconds}s")


def port_open(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, int(port))) == 0


def wait_closed(url: str, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not port_open(url):
            return True
        time.sleep(0.1)
    return False


def operator_get(urls: dict[str, str], path: str) -> dict:
    headers = {"Authorization": f"Bearer {urls['operator']}"}
    request = urllib.request.Request(urls["api"] + path, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return orjson.loads(response.read())


def the_whole_loop(urls: dict[str, str]) -> None:
    """The printed request line asks for a text on chain; the dev stack runs it and mints it
    on chain with its own minter; its webhook takes a signed log; nothing needs a key."""
    cast = subprocess.run(shlex.split(urls["request"]), capture_output=True, text=True, timeout=60)
    assert cast.returncode == 0, cast.stderr
    deadline = time.monotonic() + BANNER_TIMEOUT
    mint: dict = {}
    while time.monotonic() < deadline and mint.get("status") != "confirmed":
        made = operator_get(urls, "/v1/agents/1/generations")["generations"]
        if made and made[0]["status"] == "succeeded":
            mint = operator_get(urls, f"/v1/generations/{made[0]['id']}")["mint"] or {}
        time.sleep(0.2)
    assert mint.get("status") == "confirmed", mint
    receipt = rpc_call(urls["rpc"], "eth_getTransactionReceipt", [mint["txHash"]])
    assert receipt["status"] == "0x1"
    assert receipt["to"].lower() == urls["nft"].lower()
    owner = rpc_call(  # ownerOf(tokenId) of the minted generation NFT
        urls["rpc"],
        "eth_call",
        [{"to": urls["nft"], "data": "0x6352211e" + f"{mint['tokenId']:064x}"}, "latest"],
    )
    assert int(owner, 16) == int(BUYER.address, 16)

    logs = rpc_call(urls["rpc"], "eth_getLogs", [{"fromBlock": "0x0", "address": urls["package"]}])
    body = orjson.dumps({"logs": logs[-1:]})
    stamp = str(int(time.time()))
    headers = {
        SIGNATURE_HEADER: signature(urls["webhook"].encode(), stamp, body),
        TIMESTAMP_HEADER: stamp,
        "Content-Type": "application/json",
    }
    request = urllib.request.Request(urls["api"] + "/v1/webhooks/chain", body, headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        taken = orjson.loads(response.read())
    assert taken["rejected"] == 0
    assert taken["duplicate"] + taken["accepted"] == 1  # indexed already: known, not twice


@pytest.mark.timeout(300)
def test_dev_runs_resumes_and_never_mixes_chains(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    dev = DevProcess(data_dir)
    try:
        urls = dev.wait_for_banner()
        assert get_json(urls["api"] + "/health")["status"] == "ok"
        status = get_json(urls["api"] + "/v1/status")
        assert status["deployment"]["packageAddress"] == urls["package"]
        assert status["database"]["revision"] == status["database"]["headRevision"]
        assert BUYER.address in dev.output
        assert BUYER.key in urls["cast"]

        # The printed line, pasted into a shell, buys a package on the printed chain.
        cast = subprocess.run(shlex.split(urls["cast"]), capture_output=True, text=True, timeout=60)
        assert cast.returncode == 0, cast.stderr
        assert re.search(r"status\s+1 \(success\)", cast.stdout), cast.stdout
        bought = int(rpc_call(urls["rpc"], "eth_blockNumber"), 16)
        assert get_json(urls["api"] + "/v1/status")["chain"]["headBlock"] == bought
        agent = wait_for_agent(urls["api"], 1)  # the daemon indexed the purchase
        assert agent["owner"] == BUYER.address
        assert agent["totalCredits"] == 100
        the_whole_loop(urls)
        head = int(rpc_call(urls["rpc"], "eth_blockNumber"), 16)
    finally:
        code = dev.stop(signal.SIGINT)
    assert code == 0, dev.output
    assert wait_closed(urls["rpc"]), "Anvil still running after Ctrl-C"
    assert not port_open(urls["api"])

    # Again: the same chain (with the purchase) and the same database.
    dev = DevProcess(data_dir)
    try:
        again = dev.wait_for_banner()
        assert "resuming the chain" in dev.output
        assert again["package"] == urls["package"]
        # Resumed (state anchoring may have mined since, never fewer blocks)
        assert int(rpc_call(again["rpc"], "eth_blockNumber"), 16) >= head
        assert wait_for_agent(again["api"], 1)["totalCredits"] == 100
    finally:
        assert dev.stop(signal.SIGTERM) == 0, dev.output
    assert wait_closed(again["rpc"])

    # The chain is lost: a new deployment, and the old database is archived, not reused.
    (data_dir / "anvil" / "state.json").unlink()
    dev = DevProcess(data_dir)
    try:
        fresh = dev.wait_for_banner()
        assert "deploying the contracts" in dev.output
        assert "moved it to" in dev.output
        assert list((data_dir / "archive").glob("inftd-*.db"))
        assert int(rpc_call(fresh["rpc"], "eth_blockNumber"), 16) < head
        with pytest.raises(urllib.error.HTTPError) as missing:  # the old agent went with the chain
            get_json(fresh["api"] + "/v1/agents/1")
        assert missing.value.code == 404
        missing.value.close()
    finally:
        dev.stop()


@pytest.mark.timeout(180)
def test_anvil_dies_with_a_killed_dev(tmp_path: Path) -> None:
    dev = DevProcess(tmp_path / "data")
    urls = dev.wait_for_banner()
    assert port_open(urls["rpc"])
    assert dev.stop(signal.SIGKILL) == -signal.SIGKILL
    assert wait_closed(urls["rpc"]), "Anvil was orphaned by a SIGKILLed inftd dev"


def inftd_dev(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFTD_")}
    return subprocess.run(
        [sys.executable, "-m", "inftd.daemon.cli.main", "dev", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.mark.timeout(240)
def test_a_second_dev_on_the_folder_or_the_port_ends_in_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    dev = DevProcess(data_dir)
    try:
        urls = dev.wait_for_banner()
        files = sorted(p.name for p in data_dir.rglob("*"))
        again = inftd_dev(data_dir, "--api-port", "0")
        assert again.returncode == 1
        assert again.stdout == ""
        (line,) = again.stderr.splitlines()  # one line, no traceback
        assert line.startswith("inftd: error: the data folder")
        assert f"pid {dev.process.pid} (inftd dev)" in line
        assert sorted(p.name for p in data_dir.rglob("*")) == files  # it touched nothing
        assert get_json(urls["api"] + "/health")["status"] == "ok"  # nor the first

        port = urls["api"].rsplit(":", 1)[1]  # taken, by the first
        taken = inftd_dev(tmp_path / "other", "--api-port", port)
        assert taken.returncode == 1
        last = taken.stderr.strip().splitlines()[-1]
        assert last.startswith(f"inftd: error: the API's port {port} on 127.0.0.1 is taken")
        assert "Traceback" not in taken.stderr
    finally:
        assert dev.stop() == 0, dev.output
