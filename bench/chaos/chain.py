"""What the canonical chain says, read straight from Anvil (never through the proxy): the
facts the invariants compare the database with, and the transactions the workload sends."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from web3 import Web3
from web3.exceptions import ContractLogicError, TimeExhausted

from bench.chaos.gate import MiningGate
from inftd.daemon.config import DEFAULT_PACKAGES
from inftd.indexer.abi import load_artifact
from inftd.indexer.deployment import Deployment

RECEIPT_BOUND = 10.0  # seconds: a transaction a reorg swallowed never gets a receipt


class TxLost(Exception):
    """A transaction got no receipt (a reorg dropped it) or reverted."""


class TxRefused(TxLost):
    """The node refused it: it would revert (a token that changed hands meanwhile, say)."""


@dataclass(frozen=True)
class Purchase:
    token_id: int
    buyer: str
    package_type: int
    credits: int


@dataclass
class ChainFacts:
    head: int
    purchases: dict[int, Purchase] = field(default_factory=dict)
    topups: Counter[int] = field(default_factory=Counter)  # token -> credits added
    owners: dict[int, str] = field(default_factory=dict)  # token -> ownerOf now
    minted: Counter[str] = field(default_factory=Counter)  # requestKey -> GenerationMinted
    minted_nft: dict[str, int] = field(default_factory=dict)  # requestKey -> NFT token id
    requests: set[int] = field(default_factory=set)  # GenerationRequested request ids
    stale_logs: int = 0  # logs the node returned from blocks no longer on the chain
    hashes: dict[int, bytes] = field(default_factory=dict)  # block number -> canonical hash

    def credits(self, token_id: int) -> int:
        """What the events grant the token: its purchase plus its top-ups."""
        return self.purchases[token_id].credits + self.topups[token_id]


class Chain:
    """The contracts over web3, as the workload's users and the checker see them."""

    def __init__(self, url: str, deployment: Deployment, gate: MiningGate | None = None) -> None:
        self.gate = gate or MiningGate()  # the checker sends nothing: its own, never closed
        self.w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 30}))
        self.deployment = deployment
        self.package = self.w3.eth.contract(
            Web3.to_checksum_address(deployment.package_address),
            abi=load_artifact("INFTPackage").abi,
        )
        self.generation = self.w3.eth.contract(
            Web3.to_checksum_address(deployment.generation_address),
            abi=load_artifact("GenerationNFT").abi,
        )

    # -- the workload's transactions (Anvil's unlocked accounts) ----------------------------

    def _send(self, fn: Any, sender: str, value: int = 0) -> Any:
        try:
            with self.gate.sending():
                tx = fn.transact({"from": sender, "value": value})
        except ContractLogicError as exc:
            raise TxRefused(str(exc)) from None
        try:
            receipt = self.w3.eth.wait_for_transaction_receipt(tx, RECEIPT_BOUND, 0.05)
        except TimeExhausted:
            raise TxLost(tx.hex()) from None
        if receipt["status"] != 1:
            raise TxLost(tx.hex())
        return receipt

    def buy(self, buyer: str, package_type: int) -> None:
        price = DEFAULT_PACKAGES[package_type].price_wei
        self._send(self.package.functions.purchasePackage(package_type), buyer, price)

    def top_up(self, token_id: int, credits: int, payer: str) -> None:
        self._send(self.package.functions.addCredits(token_id), payer, credits * 10**14)

    def transfer(self, token_id: int, to: str) -> str:
        owner = str(self.package.functions.ownerOf(token_id).call())
        self._send(self.package.functions.transferFrom(owner, to, token_id), owner)
        return owner

    def request(self, token_id: int, kind: int, prompt: str) -> None:
        owner = self.package.functions.ownerOf(token_id).call()
        self._send(self.package.functions.requestGeneration(token_id, kind, prompt), owner)

    def owner_of(self, token_id: int) -> str | None:
        try:
            return str(self.package.functions.ownerOf(token_id).call())
        except Exception:  # a token a reorg took away
            return None

    def last_token(self) -> int:
        return int(self.package.functions.lastTokenId().call())

    # -- the facts --------------------------------------------------------------------------

    def _canonical(self, logs: Any, found: ChainFacts) -> list[Any]:
        """The logs whose block is on the chain: a node may answer a range with logs of a
        block a reorg removed (seen with Anvil after evm_revert); those are counted."""
        kept = []
        for log in logs:
            number = log["blockNumber"]
            if number not in found.hashes:
                found.hashes[number] = bytes(self.w3.eth.get_block(number)["hash"])
            if bytes(log["blockHash"]) == found.hashes[number]:
                kept.append(log)
            else:
                found.stale_logs += 1
        return kept

    def facts(self) -> ChainFacts:
        head = int(self.w3.eth.block_number)
        span = {"from_block": self.deployment.deploy_block, "to_block": head}
        found = ChainFacts(head)
        events = self.package.events
        for log in self._canonical(events.PackagePurchased.get_logs(**span), found):
            a = log["args"]
            found.purchases[a["tokenId"]] = Purchase(
                a["tokenId"], a["buyer"], a["packageType"], a["credits"]
            )
        for log in self._canonical(events.CreditsAdded.get_logs(**span), found):
            found.topups[log["args"]["tokenId"]] += log["args"]["credits"]
        for log in self._canonical(events.GenerationRequested.get_logs(**span), found):
            found.requests.add(log["args"]["requestId"])
        minted = self.generation.events.GenerationMinted.get_logs(**span)
        for log in self._canonical(minted, found):
            key = "0x" + bytes(log["args"]["requestKey"]).hex()
            found.minted[key] += 1
            found.minted_nft[key] = log["args"]["tokenId"]
        for token_id in found.purchases:
            found.owners[token_id] = str(self.package.functions.ownerOf(token_id).call())
        return found
