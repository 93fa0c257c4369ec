"""The contract between the queue's worker and the strategies (``strategies.run_job``).

The worker builds a ``Job`` (the prompt already built by ``inftd.agents.prompts``), hands
it to ``run_job(job, router, progress)`` with a ``Progress`` callback, and gets one
``Output``, or a ``GenerationFailed`` saying whether trying again later can help.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from inftd.daemon.errors import DaemonError
from inftd.daemon.providers.base import Usage

Kind = Literal["text", "image"]
Quality = Literal["standard", "high"]
Strategy = Literal["single", "evaluate", "orchestrate"]


@dataclass(frozen=True)
class Job:
    generation_id: str
    token_id: int
    package_type: int
    kind: Kind
    prompt: str  # already built by agents.prompts.build_prompt
    system: str | None
    quality: Quality
    size: str | None
    strategy: Strategy
    provider_hint: str | None
    # Learned weights from the agent: provider names and model names → weight (higher:
    # preferred; negative: rated badly), from agents.learning's providers/models dimensions.
    hints: Mapping[str, float]


class Progress(Protocol):
    """Told what a strategy does as it goes: ("chunk", {"text"}), ("round", {...}),
    ("part", {...}), ("attempt", {"provider"})."""

    async def __call__(self, stage: str, data: Mapping[str, Any]) -> None: ...


@dataclass(frozen=True)
class Output:
    kind: str
    data: bytes
    content_type: str
    provider: str
    model: str
    usage: Usage  # summed over every call the strategy made
    # {"strategy", "rounds": [...], "parts": [...], "route": [...attempts...], "cached": bool}
    detail: Mapping[str, Any]
    # Orchestrate: every part's (content type, bytes), in the order of detail["parts"]
    # (whose entries carry each part's sha256); the main content is ``data``. Empty otherwise.
    parts: tuple[tuple[str, bytes], ...] = ()


class GenerationFailed(DaemonError):
    """A job could not be done; ``transient``: trying again later may succeed.
    ``retry_after`` (if known): seconds until the first provider that was cooling down is
    back. ``route``: the attempts of the call that failed, as ``Output.detail["route"]``."""

    def __init__(
        self,
        transient: bool,
        message: str,
        *,
        retry_after: float | None = None,
        route: tuple[Mapping[str, Any], ...] = (),
    ) -> None:
        self.transient = transient
        self.message = message
        self.retry_after = retry_after
        self.route = route
        super().__init__(message)
