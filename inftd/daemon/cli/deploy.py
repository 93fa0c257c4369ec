"""Deploy INFTPackage and GenerationNFT, configure them, and describe them in a Deployment.

The deployer key is passed in by the caller (read from the environment by the CLI); it
is never printed, and errors about it never include it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.types import TxReceipt

from inftd.daemon.config import PackageTypeSettings
from inftd.daemon.errors import DeployError
from inftd.indexer.abi import abi_version, load_artifact
from inftd.indexer.deployment import Deployment

log = logging.getLogger(__name__)

RECEIPT_TIMEOUT = 300  # seconds to wait for each deployment transaction

Progress = Callable[[str], None]


def account_from_key(key: str, env_name: str) -> LocalAccount:
    try:
        account: LocalAccount = Account.from_key(key)
    except Exception:
        raise DeployError(f"{env_name} is not a valid private key") from None
    return account


class _Sender:
    """Signs locally and waits for each receipt, so any RPC node will do."""

    def __init__(self, w3: Web3, account: LocalAccount, progress: Progress) -> None:
        self.w3 = w3
        self.account = account
        self.progress = progress
        self.chain_id = w3.eth.chain_id

    def send(self, label: str, tx: dict[str, Any]) -> TxReceipt:
        tx = dict(tx)
        tx.setdefault("from", self.account.address)
        tx["nonce"] = self.w3.eth.get_transaction_count(self.account.address, "pending")
        tx["chainId"] = self.chain_id
        signed = self.account.sign_transaction(tx)
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT)
        if receipt["status"] != 1:
            raise DeployError(f"{label} reverted (tx {tx_hash.to_0x_hex()})")
        self.progress(f"{label}: ok (block {receipt['blockNumber']})")
        return receipt

    def deploy(self, name: str, *args: Any) -> tuple[Contract, TxReceipt]:
        artifact = load_artifact(name)
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        tx = factory.constructor(*args).build_transaction({"from": self.account.address})
        receipt = self.send(f"deploy {name}", tx)
        address = receipt["contractAddress"]
        assert address is not None
        return self.w3.eth.contract(address=address, abi=artifact.abi), receipt

    def call(self, label: str, fn: Any) -> None:
        self.send(label, fn.build_transaction({"from": self.account.address}))


def deploy_contracts(
    rpc_url: str,
    deployer: LocalAccount,
    *,
    minter: str,
    operator: str,
    packages: Sequence[PackageTypeSettings],
    credit_price_wei: int,
    progress: Progress = log.info,
) -> Deployment:
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
    try:
        w3.eth.chain_id  # noqa: B018 - fail early and clearly if the RPC is unreachable
    except Exception as exc:
        raise DeployError(f"cannot reach the chain at {rpc_url}: {exc}") from None
    sender = _Sender(w3, deployer, progress)
    package, receipt = sender.deploy("INFTPackage", deployer.address)
    generation, _ = sender.deploy("GenerationNFT", deployer.address, package.address)
    for p in packages:
        sender.call(
            f"package type {p.id} ({p.name})",
            package.functions.setPackageType(p.id, p.price_wei, p.credits, p.active),
        )
    sender.call("credit price", package.functions.setCreditPrice(credit_price_wei))
    operator_role = package.functions.OPERATOR_ROLE().call()
    sender.call("operator role", package.functions.grantRole(operator_role, operator))
    minter_role = generation.functions.MINTER_ROLE().call()
    sender.call("minter role", generation.functions.grantRole(minter_role, minter))
    return Deployment(
        chain_id=sender.chain_id,
        package_address=package.address,
        generation_address=generation.address,
        deploy_block=receipt["blockNumber"],
        deploy_block_hash=receipt["blockHash"].to_0x_hex(),
        abi_version=abi_version(),
        deployer=deployer.address,
        minter=Web3.to_checksum_address(minter),
        operator=Web3.to_checksum_address(operator),
    )
