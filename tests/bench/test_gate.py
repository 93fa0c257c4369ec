"""The chaos run's gate between transactions and reorgs (bench/chaos/gate.py): a reorg waits
for the senders already in, keeps new ones out, and with it Anvil keeps every block number
while transactions and reorgs come from several threads at once."""

from __future__ import annotations

import random
import threading
import time

from bench.chaos.faults import Strikes, reorg_once
from bench.chaos.gate import MiningGate, holes
from bench.chaos.world import NODE_STATES
from inftd.daemon.cli.devnet import Anvil, rpc_call

SECONDS = 6.0  # of senders and reorgs; without the gate, Anvil lost blocks within seconds


def test_a_reorg_waits_for_senders_in_and_keeps_new_ones_out() -> None:
    gate = MiningGate()
    events: list[str] = []
    inside = threading.Event()
    release = threading.Event()

    def sender(name: str, hold: threading.Event | None) -> None:
        with gate.sending():
            events.append(f"{name} in")
            if hold is not None:
                inside.set()
                hold.wait(5)
            events.append(f"{name} out")

    def reorg() -> None:
        with gate.closed():
            events.append("reorg")
            time.sleep(0.1)
            events.append("reorg done")

    first = threading.Thread(target=sender, args=("first", release))
    first.start()
    inside.wait(5)
    closer = threading.Thread(target=reorg)
    closer.start()
    time.sleep(0.05)
    late = threading.Thread(target=sender, args=("late", None))
    late.start()
    time.sleep(0.05)
    assert events == ["first in"]  # the reorg waits for first; late waits behind the reorg
    release.set()
    for thread in (first, closer, late):
        thread.join(5)
    assert events == ["first in", "first out", "reorg", "reorg done", "late in", "late out"]


def test_anvil_keeps_every_block_when_reorgs_go_through_the_gate() -> None:
    gate = MiningGate()
    strikes = Strikes()
    with Anvil(states_in_memory=NODE_STATES) as anvil:
        accounts = rpc_call(anvil.url, "eth_accounts")
        stop = time.monotonic() + SECONDS

        def send(account: str) -> None:
            while time.monotonic() < stop:
                with gate.sending():
                    tx = {"from": account, "to": accounts[9], "value": "0x1"}
                    rpc_call(anvil.url, "eth_sendTransaction", [tx])

        def reorgs() -> None:
            rng = random.Random(1)
            while time.monotonic() < stop:
                time.sleep(rng.uniform(0.05, 0.2))
                reorg_once(anvil.url, gate, 0, rng.randint(1, 8), strikes)

        threads = [threading.Thread(target=send, args=(a,)) for a in accounts[:4]]
        threads.append(threading.Thread(target=reorgs))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert strikes.reorgs >= 10, strikes
        assert strikes.node_holes == 0
        assert holes(anvil.url, 0) == []
