"""EIP-1559 fees from an eth_feeHistory answer, the cap, and the bump of a replacement."""

from __future__ import annotations

from typing import Any

from inftd.daemon.config import RelayerSettings
from inftd.daemon.relayer.fees import GWEI, FeePolicy, Fees


def history(next_base: int, tips: list[int]) -> dict[str, Any]:
    return {
        "baseFeePerGas": [hex(next_base // 2), hex(next_base)],
        "reward": [[hex(t)] for t in tips],
    }


def policy(**settings: Any) -> FeePolicy:
    return FeePolicy(RelayerSettings(**settings))


def test_the_fee_is_twice_the_next_base_fee_plus_the_median_tip() -> None:
    fees = policy().from_history(history(10 * GWEI, [1 * GWEI, 3 * GWEI, 2 * GWEI]))
    assert fees == Fees(22 * GWEI, 2 * GWEI)
    assert policy().history_params() == ["0xa", "latest", [50.0]]


def test_the_tip_has_a_floor_and_the_fee_a_cap() -> None:
    floor = policy(min_priority_fee_gwei=1).from_history(history(GWEI, []))
    assert floor == Fees(3 * GWEI, GWEI)
    capped = policy(max_fee_gwei=5).from_history(history(100 * GWEI, [50 * GWEI]))
    assert capped == Fees(5 * GWEI, 5 * GWEI)  # the tip never exceeds the fee


def test_a_bump_raises_both_fees_by_the_percentage_or_to_the_market() -> None:
    bumps = policy(fee_bump_percent=20, max_fee_gwei=1000)
    old = Fees(10 * GWEI, GWEI)
    assert bumps.bump(old, Fees(GWEI, GWEI // 10)) == Fees(12 * GWEI, 12 * GWEI // 10)
    assert bumps.bump(old, Fees(50 * GWEI, 2 * GWEI)) == Fees(50 * GWEI, 2 * GWEI)


def test_no_bump_beyond_the_cap() -> None:
    capped = policy(fee_bump_percent=20, max_fee_gwei=11)
    assert capped.bump(Fees(10 * GWEI, GWEI), Fees(GWEI, GWEI)) is None  # 12 > 11: wait
    assert capped.bump(Fees(9 * GWEI, GWEI), Fees(GWEI, GWEI)) == Fees(
        108 * GWEI // 10, 12 * GWEI // 10
    )
