"""EIP-1559 fees from ``eth_feeHistory``, under a configured cap, and the fee bump of a
replacement.

maxFeePerGas is twice the next block's base fee plus the tip: room for six full blocks of
base-fee growth (12.5% each) before the transaction waits. The tip is the configured
percentile of recent blocks' tips, at least the configured floor.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from inftd.daemon.config import RelayerSettings

GWEI = 10**9
BASE_FEE_HEADROOM = 2  # maxFee = headroom x next base fee + tip


@dataclass(frozen=True)
class Fees:
    max_fee: int  # maxFeePerGas, wei
    priority: int  # maxPriorityFeePerGas, wei


def _ceil_percent(value: int, percent: int) -> int:
    return -(-value * percent // 100)


class FeePolicy:
    def __init__(self, settings: RelayerSettings) -> None:
        self.cap = int(settings.max_fee_gwei * GWEI)
        self.min_tip = int(settings.min_priority_fee_gwei * GWEI)
        self.bump_percent = settings.fee_bump_percent
        self.blocks = settings.fee_history_blocks
        self.percentile = settings.fee_percentile

    def history_params(self) -> list[Any]:
        """The parameters of the ``eth_feeHistory`` call ``from_history`` reads."""
        return [hex(self.blocks), "latest", [self.percentile]]

    def from_history(self, history: dict[str, Any]) -> Fees:
        """Fees for the next block from an ``eth_feeHistory`` answer."""
        next_base = int(history["baseFeePerGas"][-1], 16)  # the last entry is the next block's
        tips = [int(row[0], 16) for row in history.get("reward") or [] if row]
        tip = max(int(statistics.median(tips)) if tips else 0, self.min_tip)
        return self.capped(Fees(BASE_FEE_HEADROOM * next_base + tip, tip))

    def capped(self, fees: Fees) -> Fees:
        max_fee = min(fees.max_fee, self.cap)
        return Fees(max_fee, min(fees.priority, max_fee))

    def bump(self, old: Fees, fresh: Fees) -> Fees | None:
        """Fees for a replacement of a transaction sent with ``old``: both raised by the bump
        percentage at least (nodes refuse less), and no lower than ``fresh``; None when the
        cap leaves no room for that."""
        factor = 100 + self.bump_percent
        wanted = Fees(_ceil_percent(old.max_fee, factor), _ceil_percent(old.priority, factor))
        bumped = self.capped(
            Fees(max(wanted.max_fee, fresh.max_fee), max(wanted.priority, fresh.priority))
        )
        if bumped.max_fee < wanted.max_fee or bumped.priority < wanted.priority:
            return None
        return bumped
