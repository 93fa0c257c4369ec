"""What the relayer's parts share: connections, the key, the policies, and test hooks."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from eth_account.signers.local import LocalAccount
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.daemon.config import RelayerSettings
from inftd.daemon.relayer.chain import MintChain
from inftd.daemon.relayer.fees import FeePolicy, Fees
from inftd.daemon.relayer.nonces import NonceAllocator
from inftd.daemon.relayer.store import Attempt, NewAttempt

TX_TYPE_1559 = 2


class Hooks:
    """Points where a test stops the relayer as a crash would (raise, or kill the process).
    The daemon runs with these no-ops."""

    async def after_sign(self, attempts: Sequence[NewAttempt]) -> None:
        """Signed, in the storing transaction, before it commits."""

    async def after_store(self, attempts: Sequence[NewAttempt]) -> None:
        """Stored (committed), not yet broadcast."""

    async def after_broadcast(self, tx_hashes: Sequence[str]) -> None:
        """Broadcast (the node took these), before the broadcast is noted."""

    async def after_receipt(self, attempt: Attempt, receipt: dict[str, Any]) -> None:
        """A receipt is in hand, before it is recorded."""


@dataclass
class Stall:
    """Since which head the key's nonce has stood still (kept in memory: after a restart
    the count starts again, which at worst delays a fee bump)."""

    nonce: int = -1
    since: int = 0

    def observe(self, nonce: int, head: int) -> int:
        """Note the key's nonce at ``head``; the head since which it has not moved."""
        if nonce != self.nonce:
            self.nonce, self.since = nonce, head
        return self.since


@dataclass
class Gaps:
    """Nonces the chain has passed with no receipt of ours, since when (in memory)."""

    grace: float
    seen: dict[int, float] = field(default_factory=dict)

    def confirmed(self, nonces: set[int]) -> set[int]:
        """Of the nonces seen as gaps now, those seen so for ``grace`` seconds; the others
        are forgotten (their receipt turned up, or they are no longer open)."""
        now = time.monotonic()
        self.seen = {n: self.seen.get(n, now) for n in nonces}
        return {n for n, since in self.seen.items() if now - since >= self.grace}


@dataclass
class Context:
    engine: AsyncEngine
    chain: MintChain
    account: LocalAccount
    settings: RelayerSettings
    chain_id: int
    confirmations: int  # blocks on top of a mint's block before it is confirmed
    hooks: Hooks = field(default_factory=Hooks)
    on_commit: Callable[[], None] = lambda: None  # events were written: wake the hub
    fees: FeePolicy = field(init=False)
    nonces: NonceAllocator = field(init=False)
    stall: Stall = field(default_factory=Stall)
    gaps: Gaps = field(init=False)
    # Cancel transaction hash -> the head this process first saw it pending at (in memory,
    # as ``stall``: after a restart the count starts again, at worst delaying a fee bump).
    cancels_seen: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.fees = FeePolicy(self.settings)
        self.nonces = NonceAllocator(self.account.address)
        self.gaps = Gaps(self.settings.gap_grace)

    @property
    def signer(self) -> str:
        return str(self.account.address)

    async def fresh_fees(self) -> Fees:
        return self.fees.from_history(await self.chain.fee_history(self.fees.history_params()))

    def sign(self, nonce: int, data: bytes, gas: int, fees: Fees) -> tuple[str, bytes]:
        """(hash, raw bytes) of the mint transaction; CPU-bound, so run in a thread."""
        tx: dict[str, Any] = {
            "type": TX_TYPE_1559,
            "chainId": self.chain_id,
            "nonce": nonce,
            "to": self.chain.generation,
            "value": 0,
            "gas": gas,
            "maxFeePerGas": fees.max_fee,
            "maxPriorityFeePerGas": fees.priority,
            "data": data,
        }
        signed = self.account.sign_transaction(tx)
        return signed.hash.to_0x_hex(), bytes(signed.raw_transaction)

    async def sign_all(
        self, jobs: Sequence[tuple[int, bytes, int, Fees]]
    ) -> list[tuple[str, bytes]]:
        return await asyncio.to_thread(lambda: [self.sign(*job) for job in jobs])

    def backoff(self, tries: int, now: datetime) -> datetime:
        """When a mint tried ``tries`` times may be tried again (full jitter)."""
        limit = min(self.settings.backoff_max, self.settings.backoff_base * 2 ** max(tries - 1, 0))
        return now + timedelta(seconds=random.uniform(limit / 2, limit))
