"""``devnet.Anvil`` with ``states_in_memory``: what the chaos run's node needs to reorganise a
long chain. With its default disk cache, Anvil 1.7.1's ``anvil_reorg`` on a chain past
about a thousand blocks rolled back to an empty state (no contract code, no balances),
and the chaos run's checker found the contracts gone."""

from __future__ import annotations

from inftd.daemon.cli.devnet import Anvil, rpc_call

RETURNS_42 = "0x600a600c600039600a6000f3602a60005260206000f3"  # init code of a tiny contract
LONG_CHAIN = 1200  # blocks: past where Anvil's default keeps states in memory


def test_a_reorg_of_a_long_chain_keeps_the_state() -> None:
    with Anvil(states_in_memory=512) as anvil:
        deployer = rpc_call(anvil.url, "eth_accounts")[0]
        tx = rpc_call(anvil.url, "eth_sendTransaction", [{"from": deployer, "data": RETURNS_42}])
        receipt = None
        while receipt is None:  # Anvil answers the send before its block is readable
            receipt = rpc_call(anvil.url, "eth_getTransactionReceipt", [tx])
        contract = receipt["contractAddress"]
        code = rpc_call(anvil.url, "eth_getCode", [contract, "latest"])
        assert len(code) > 2
        rpc_call(anvil.url, "anvil_mine", [hex(LONG_CHAIN)])
        rpc_call(anvil.url, "anvil_reorg", [40, []])

        assert rpc_call(anvil.url, "eth_getCode", [contract, "latest"]) == code
        assert int(rpc_call(anvil.url, "eth_getBalance", [deployer, "latest"]), 16) > 0
