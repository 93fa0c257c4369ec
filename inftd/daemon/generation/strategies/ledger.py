"""What the strategies share: the requests a job makes, the running total of what its calls
spent, and the ``Output`` built from them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from inftd.daemon.config import RoutingSettings
from inftd.daemon.generation.routing.router import Routed
from inftd.daemon.generation.types import GenerationFailed, Job, Output, Progress
from inftd.daemon.providers.base import ImageRequest, ImageResult, TextRequest, TextResult, Usage

TEXT_TYPE = "text/plain; charset=utf-8"
DEFAULT_SIZE = "1024x1024"


class Ledger:
    """Every routed call a job made: summed usage, and the attempts in order."""

    def __init__(self) -> None:
        self.calls: list[Usage] = []
        self.route: list[Mapping[str, Any]] = []

    def add(self, routed: Routed[Any]) -> None:
        self.calls.append(routed.usage)
        self.route.extend(routed.attempts)

    def add_failed(self, failure: GenerationFailed) -> None:
        """A call that failed everywhere: its attempts (they cost nothing)."""
        self.route.extend(failure.route)

    @property
    def cost(self) -> float:
        return sum(u.cost_usd for u in self.calls)

    def usage(self) -> Usage:
        return Usage(
            input_tokens=sum(u.input_tokens for u in self.calls),
            output_tokens=sum(u.output_tokens for u in self.calls),
            images=sum(u.images for u in self.calls),
            cost_usd=self.cost,
            estimated=any(u.estimated for u in self.calls),
        )


def text_request(job: Job, settings: RoutingSettings, prompt: str | None = None) -> TextRequest:
    tokens = settings.max_tokens_high if job.quality == "high" else settings.max_tokens
    try:
        return TextRequest(prompt or job.prompt, job.system, max_tokens=tokens)
    except ValueError as exc:
        raise GenerationFailed(False, f"bad request: {exc}") from None


def image_request(job: Job, prompt: str | None = None) -> ImageRequest:
    try:
        return ImageRequest(
            prompt or job.prompt, size=job.size or DEFAULT_SIZE, quality=job.quality
        )
    except ValueError as exc:
        raise GenerationFailed(False, f"bad request: {exc}") from None


def detail(
    strategy: str,
    ledger: Ledger,
    *,
    cached: bool,
    rounds: Sequence[Mapping[str, Any]] = (),
    parts: Sequence[Mapping[str, Any]] = (),
    **extra: Any,
) -> dict[str, Any]:
    return {
        "strategy": strategy,
        "rounds": list(rounds),
        "parts": list(parts),
        "route": list(ledger.route),
        "cached": cached,
        **extra,
    }


def text_output(answer: TextResult, ledger: Ledger, about: Mapping[str, Any]) -> Output:
    return Output(
        "text",
        answer.text.encode(),
        TEXT_TYPE,
        answer.provider,
        answer.model,
        ledger.usage(),
        about,
    )


def image_output(answer: ImageResult, ledger: Ledger, about: Mapping[str, Any]) -> Output:
    return Output(
        "image",
        answer.data,
        answer.content_type,
        answer.provider,
        answer.model,
        ledger.usage(),
        about,
    )


def tagged(progress: Progress, **tags: Any) -> Progress:
    """``progress`` with ``tags`` added to everything it is told (e.g. a part's index)."""

    async def told(stage: str, data: Mapping[str, Any]) -> None:
        await progress(stage, {**data, **tags})

    return told
