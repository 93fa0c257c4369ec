"""Drive the deployed contracts from tests, as buyers and owners would, with web3.py."""

from __future__ import annotations

from typing import Any

from web3 import Web3
from web3.types import TxReceipt

from inftd.daemon.cli.deploy import account_from_key, deploy_contracts
from inftd.daemon.cli.devnet import BUYER, DEPLOYER, FRIEND, MINTER, rpc_call
from inftd.daemon.config import DEFAULT_PACKAGES
from inftd.indexer.abi import load_artifact
from inftd.indexer.deployment import Deployment

CREDIT_PRICE_WEI = 10**14


def deploy_dev(url: str) -> Deployment:
    """The contracts on a local chain as the tests use them: Anvil's deployer deploys and
    operates, its minter account mints, the default packages, quietly."""
    return deploy_contracts(
        url,
        account_from_key(DEPLOYER.key, "deployer"),
        minter=MINTER.address,
        operator=DEPLOYER.address,
        packages=DEFAULT_PACKAGES,
        credit_price_wei=CREDIT_PRICE_WEI,
        progress=lambda line: None,
    )


class Contracts:
    def __init__(self, url: str, deployment: Deployment) -> None:
        self.url = url
        self.w3 = Web3(Web3.HTTPProvider(url))
        self.package = self.w3.eth.contract(
            deployment.package_address, abi=load_artifact("INFTPackage").abi
        )
        self.generation = self.w3.eth.contract(
            deployment.generation_address, abi=load_artifact("GenerationNFT").abi
        )

    def _send(self, fn: Any, sender: str, value: int = 0) -> TxReceipt:
        tx = fn.transact({"from": sender, "value": value})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx)
        assert receipt["status"] == 1
        return receipt

    def buy(self, package_type: int = 0, buyer: str = BUYER.address) -> int:
        price = DEFAULT_PACKAGES[package_type].price_wei
        self._send(self.package.functions.purchasePackage(package_type), buyer, price)
        return int(self.package.functions.lastTokenId().call())

    def top_up(self, token_id: int, credits: int, payer: str = FRIEND.address) -> None:
        self._send(self.package.functions.addCredits(token_id), payer, credits * CREDIT_PRICE_WEI)

    def transfer(self, token_id: int, to: str) -> None:
        owner = self.package.functions.ownerOf(token_id).call()
        self._send(self.package.functions.transferFrom(owner, to, token_id), owner)

    def request(self, token_id: int, prompt: str, kind: int = 0) -> int:
        owner = self.package.functions.ownerOf(token_id).call()
        self._send(self.package.functions.requestGeneration(token_id, kind, prompt), owner)
        return int(self.package.functions.lastRequestId().call())

    def mint_generation(self, token_id: int, request_key: bytes, uri: str) -> int:
        """Mint as the relayer would (Anvil's unlocked minter account); returns the NFT id."""
        owner = self.package.functions.ownerOf(token_id).call()
        mint = self.generation.functions.mintGeneration(
            owner, token_id, request_key, uri, b"\x11" * 32
        )
        self._send(mint, MINTER.address)
        return int(self.generation.functions.tokenIdOf(request_key).call())

    def raw_transaction(self, offset: int = 0) -> bytes:
        """The signed bytes of the only transaction in the block ``offset`` from the head."""
        block = self.w3.eth.get_block(self.head() + offset)
        (tx_hash,) = block["transactions"]
        return bytes(self.w3.eth.get_raw_transaction(tx_hash))

    def mine(self, blocks: int = 1) -> None:
        for _ in range(blocks):
            rpc_call(self.url, "evm_mine")

    def head(self) -> int:
        return int(self.w3.eth.block_number)

    def snapshot(self) -> str:
        return str(rpc_call(self.url, "evm_snapshot"))

    def revert(self, snapshot: str) -> None:
        assert rpc_call(self.url, "evm_revert", [snapshot]) is True
