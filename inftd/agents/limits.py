"""Usage limits of a package type: what a generation costs and how much an agent may do.

The daemon's config holds one ``UsageLimits`` per package type; the domain checks them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

KINDS = ("text", "image")
QUALITIES = ("standard", "high")


def _default_prices() -> dict[str, dict[str, int]]:
    return {"text": {"standard": 1, "high": 3}, "image": {"standard": 5, "high": 10}}


class UsageLimits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # credits one generation costs, by kind and quality
    credits: dict[str, dict[str, int]] = Field(default_factory=_default_prices)
    max_concurrent_jobs: int = Field(2, gt=0)  # queued or running generations at once
    daily_credit_cap: int = Field(200, gt=0)  # credits reserved or spent per UTC day
    max_prompt_chars: int = Field(2000, gt=0)
    priority: int = Field(0, ge=0)  # higher tiers are served first by the daemon
