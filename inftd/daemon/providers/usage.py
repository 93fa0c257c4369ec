"""What a provider call used and cost, and the quality it was asked for: the words the
interface (``base``) and the price tables (``prices``) share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Quality = Literal["standard", "high"]


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    images: int = 0
    cost_usd: float = 0.0
    estimated: bool = False  # the provider reported no token counts: they are estimates
