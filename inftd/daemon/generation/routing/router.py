"""The router: which provider makes a request, and what happens when it fails.

Candidates are the providers offering the capability (text or image), each with the model
its package tier names (``routing.tiers[...].models``, e.g. a premium text model for the
Studio tier) or else its default model. They are ranked by a score, lowest first:

    score = cost_weight * tier.cost_weight * cost / dearest cost      (estimated USD)
          + latency_weight * latency / slowest latency                (EMA per capability)
          + error_weight * recent error rate                          (last error_window)
          + load_weight * in_flight / (in_flight + 1)                 (spreads parallel parts)
          - hint_weight * learned weight / MAX_WEIGHT                 (Job.hints, by provider
                                                                       or model name)

then the explicit ``provider_hint`` goes first, and with ``local_last`` the offline provider
goes last (it is free, so price alone would always pick it). Ties go by name.

The fallback chain walks the ranking: a provider cooling down (see ``health``) is skipped,
any failure moves to the next. A refusal (``kind="refused"``: the prompt or request was
declined) gets one second opinion from the next candidate and no more: a prompt that two
providers decline is not shown to every provider we have; the job fails for good. When
every candidate failed or was cooling, ``GenerationFailed`` says whether trying later can
help (transient) and when the first cooled provider is back (``retry_after``).

Text streams through: each chunk goes to ``progress("chunk")`` as it comes, after a
``progress("attempt")`` naming the provider; a later ``attempt`` means the chunks before it
are void (that provider failed mid-stream). Every call is recorded (``recorder``), failed
ones and cache hits included; see ``cache`` for the response cache.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from inftd.agents.learning import MAX_WEIGHT
from inftd.daemon.config import RoutingSettings, TierRouting
from inftd.daemon.generation.routing.cache import ResponseCache, cache_key
from inftd.daemon.generation.routing.health import Clock, Health
from inftd.daemon.generation.routing.recorder import CallRecord, Recorder
from inftd.daemon.generation.types import GenerationFailed, Job, Progress
from inftd.daemon.providers.base import (
    ImageRequest,
    ImageResult,
    Provider,
    ProviderError,
    TextRequest,
    TextResult,
    Usage,
    estimate_tokens,
    next_within,
)

LOCAL = "local"
Capability = Literal["text", "image"]
Purpose = Literal["generate", "refine", "judge", "plan", "part"]
Answer = TypeVar("Answer", TextResult, ImageResult)
MAX_REFUSALS = 2  # a second provider declining the same request ends the chain
DEFAULT_TIER = TierRouting()


@dataclass(frozen=True)
class Ask:
    """Who asks and why: what calls are scored and recorded by."""

    package_type: int
    generation_id: str | None = None
    token_id: int | None = None
    provider_hint: str | None = None
    hints: Mapping[str, float] = field(default_factory=dict)
    purpose: Purpose = "generate"

    @classmethod
    def of(cls, job: Job, purpose: Purpose = "generate") -> Ask:
        return cls(
            job.package_type,
            job.generation_id,
            job.token_id,
            job.provider_hint,
            job.hints,
            purpose,
        )

    def but(self, **changes: Any) -> Ask:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class Candidate:
    provider: Provider
    model: str
    cost: float  # estimated USD of the request on this model
    score: float

    @property
    def name(self) -> str:
        return self.provider.name


@dataclass(frozen=True)
class Routed(Generic[Answer]):
    answer: Answer
    usage: Usage  # what this call spent: the answer's usage, at cost 0 if from the cache
    cached: bool
    attempts: tuple[dict[str, Any], ...]  # each candidate tried or skipped, in order


Request = TextRequest | ImageRequest
Call = Callable[[Candidate, Any], Awaitable[Answer]]


class Router:
    def __init__(
        self,
        providers: Mapping[str, Provider],
        settings: RoutingSettings,
        recorder: Recorder,
        *,
        clock: Clock = time.monotonic,
    ) -> None:
        self.providers = dict(providers)
        self.settings = settings
        self.recorder = recorder
        self.health = Health(settings, clock)
        self.cache = ResponseCache(settings, clock)
        self._clock = clock

    # --- ranking --------------------------------------------------------------------

    def tier(self, package_type: int) -> TierRouting:
        """The tier's routing: its own row, else the nearest lower one, else the defaults."""
        below = [t for t in self.settings.tiers if t <= package_type]
        return self.settings.tiers[max(below)] if below else DEFAULT_TIER

    def model_of(self, provider: Provider, capability: Capability, tier: TierRouting) -> str | None:
        if capability not in provider.capabilities:
            return None
        chosen = tier.models.get(f"{provider.name}.{capability}")
        return chosen or (provider.text_model if capability == "text" else provider.image_model)

    def rank(self, ask: Ask, request: Request) -> list[Candidate]:
        """Every provider that can make ``request``, best first."""
        capability = capability_of(request)
        tier = self.tier(ask.package_type)
        offers = [
            (p, m)
            for p in self.providers.values()
            if (m := self.model_of(p, capability, tier)) is not None
        ]
        costs = [estimate_cost(p, m, request) for p, m in offers]
        scores = self._scores(ask, tier, capability, offers, costs)
        ranked = [Candidate(p, m, c, s) for (p, m), c, s in zip(offers, costs, scores, strict=True)]
        count = len(ranked)  # (a list reads as empty while it is sorted)
        ranked.sort(key=lambda c: (self._band(c, ask, count), c.score, c.name))
        return ranked

    def _band(self, candidate: Candidate, ask: Ask, count: int) -> int:
        """0: the explicit hint; 1: everyone; 2: the local provider when it goes last."""
        if ask.provider_hint is not None and candidate.name == ask.provider_hint:
            return 0
        if self.settings.local_last and candidate.name == LOCAL and count > 1:
            return 2
        return 1

    def _scores(
        self,
        ask: Ask,
        tier: TierRouting,
        capability: Capability,
        offers: list[tuple[Provider, str]],
        costs: list[float],
    ) -> list[float]:
        settings = self.settings
        dearest = max(costs, default=0.0)
        latencies = [self.health.latency(p.name, capability) for p, _ in offers]
        known = [x for x in latencies if x is not None]
        slowest = max(known, default=0.0)
        typical = sum(known) / len(known) if known else 0.0
        hints = {k.casefold(): v for k, v in ask.hints.items()}
        scores = []
        for (provider, model), cost, latency in zip(offers, costs, latencies, strict=True):
            load = self.health.in_flight(provider.name)
            hint = hints.get(provider.name.casefold(), 0.0) + hints.get(model.casefold(), 0.0)
            score = (
                settings.cost_weight * tier.cost_weight * _share(cost, dearest)
                + settings.latency_weight * _share(typical if latency is None else latency, slowest)
                + settings.error_weight * self.health.error_rate(provider.name)
                + settings.load_weight * load / (load + 1)
                - settings.hint_weight * max(min(hint / MAX_WEIGHT, 1.0), -1.0)
            )
            scores.append(score)
        return scores

    def estimate(self, ask: Ask, request: Request) -> float:
        """The estimated USD of ``request`` on the candidate the router would try first."""
        for candidate in self.rank(ask, request):
            if self.health.cooling_for(candidate.name) == 0:
                return candidate.cost
        return 0.0

    # --- calls ----------------------------------------------------------------------

    async def text(
        self,
        ask: Ask,
        request: TextRequest,
        progress: Progress | None = None,
        *,
        stream: bool = False,
    ) -> Routed[TextResult]:
        """The text for ``request``; with ``stream``, its chunks go to ``progress``."""

        async def call(candidate: Candidate, asked: TextRequest) -> TextResult:
            chunks = progress if stream else None
            return await self._stream_text(candidate.provider, asked, chunks)

        routed = await self._route(ask, request, call, progress)
        if routed.cached and stream and progress is not None:
            await progress("chunk", {"text": routed.answer.text})
        return routed

    async def image(
        self, ask: Ask, request: ImageRequest, progress: Progress | None = None
    ) -> Routed[ImageResult]:
        async def call(candidate: Candidate, asked: ImageRequest) -> ImageResult:
            guard = candidate.provider.image_timeout + self.settings.timeout_grace
            try:
                return await asyncio.wait_for(candidate.provider.image(asked), guard)
            except TimeoutError:
                raise _timeout(candidate.name, guard) from None

        return await self._route(ask, request, call, progress)

    async def _stream_text(
        self, provider: Provider, request: TextRequest, progress: Progress | None
    ) -> TextResult:
        # The router's own guard, in case a client's timeout does not cover a stalled stream.
        guard = provider.timeout + self.settings.timeout_grace
        stream = provider.stream_text(request)
        result: TextResult | None = None
        try:
            while True:
                try:
                    item = await next_within(stream, guard)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    raise _timeout(provider.name, guard) from None
                if isinstance(item, TextResult):
                    result = item
                elif progress is not None:
                    await progress("chunk", {"text": item})
        finally:
            closer = getattr(stream, "aclose", None)
            if closer is not None:
                await closer()
        if result is None:
            raise ProviderError(provider.name, "bad_response", "the stream ended without a result")
        return result

    async def _route(
        self, ask: Ask, request: Request, call: Call[Answer], progress: Progress | None
    ) -> Routed[Answer]:
        ranked = self.rank(ask, request)
        if not ranked:
            capability = capability_of(request)
            raise GenerationFailed(False, f"no provider is configured for {capability}")
        hit = await self._from_cache(ask, request, ranked)
        if hit is not None:
            return hit
        return await self._fallback(ask, request, ranked, call, progress)

    async def _fallback(
        self,
        ask: Ask,
        request: Request,
        ranked: list[Candidate],
        call: Call[Answer],
        progress: Progress | None,
    ) -> Routed[Answer]:
        attempts: list[dict[str, Any]] = []
        errors: list[ProviderError] = []
        for candidate in ranked:
            wait = self.health.cooling_for(candidate.name)
            if wait > 0:
                attempts.append(_skipped(candidate, ask, wait))
                continue
            if progress is not None:
                number = sum(1 for a in attempts if a["outcome"] != "cooling") + 1
                await progress("attempt", _announce(candidate, ask, number))
            asked = dataclasses.replace(request, model=candidate.model)
            try:
                answer = await self._attempt(ask, candidate, asked, ranked, call, attempts)
            except ProviderError as error:
                errors.append(error)
                if sum(e.kind == "refused" for e in errors) >= MAX_REFUSALS:
                    break
                continue
            return Routed(answer, answer.usage, False, tuple(attempts))
        raise self._failure(errors, attempts)

    async def _attempt(
        self,
        ask: Ask,
        candidate: Candidate,
        request: Request,
        ranked: list[Candidate],
        call: Call[Answer],
        attempts: list[dict[str, Any]],
    ) -> Answer:
        started = self._clock()
        self.health.started(candidate.name)
        try:
            answer = await call(candidate, request)
        except ProviderError as error:
            seconds = self._clock() - started
            self.health.failed(error)
            attempts.append(_tried(candidate, ask, error.kind, seconds))
            await self.recorder.record(_failed_call(ask, candidate, request, error, seconds))
            raise
        finally:
            self.health.ended(candidate.name)
        seconds = self._clock() - started
        self.health.succeeded(candidate.name, capability_of(request), seconds)
        attempts.append(_tried(candidate, ask, "ok", seconds, answer.usage.cost_usd))
        baseline = max(_same_work_cost(c, answer, request) for c in ranked)
        await self.recorder.record(_answered_call(ask, request, answer, seconds, baseline))
        if self.cache.enabled:
            self.cache.put(cache_key(candidate.name, candidate.model, request), answer)
        return answer

    async def _from_cache(
        self, ask: Ask, request: Request, ranked: list[Candidate]
    ) -> Routed[Any] | None:
        if not self.cache.enabled:
            return None
        for candidate in ranked:
            asked = dataclasses.replace(request, model=candidate.model)
            answer = self.cache.get(cache_key(candidate.name, candidate.model, asked))
            if answer is None:
                continue
            usage = dataclasses.replace(answer.usage, cost_usd=0.0)
            await self.recorder.record(_cache_hit(ask, asked, answer))
            attempt = {**_tried(candidate, ask, "ok", 0.0, 0.0), "cached": True}
            return Routed(answer, usage, True, (attempt,))
        return None

    def _failure(
        self, errors: list[ProviderError], attempts: list[dict[str, Any]]
    ) -> GenerationFailed:
        cooling = [a["waitSeconds"] for a in attempts if a["outcome"] == "cooling"]
        transient = bool(cooling) or any(e.transient for e in errors)
        waits = cooling + [self.health.cooling_for(e.provider) for e in errors if e.transient]
        tried = ", ".join(f"{a['provider']} {a['outcome']}" for a in attempts)
        if any(e.kind == "refused" for e in errors) and not transient:
            message = f"the request was declined ({tried})"
        else:
            message = f"every provider failed ({tried})"
        retry_after = min((w for w in waits if w > 0), default=None)
        return GenerationFailed(transient, message, retry_after=retry_after, route=tuple(attempts))


# --- helpers ----------------------------------------------------------------------------


def capability_of(request: Request) -> Capability:
    return "text" if isinstance(request, TextRequest) else "image"


def _share(value: float, largest: float) -> float:
    return value / largest if largest > 0 else 0.0


def estimate_cost(provider: Provider, model: str, request: Request) -> float:
    """USD of ``request`` on ``model`` before it runs: prompt tokens estimated, output at
    ``max_tokens`` (the most it may cost), images at the size and quality asked."""
    if isinstance(request, TextRequest):
        tokens = estimate_tokens(request.system, request.prompt)
        return provider.prices.text_price(model).cost(tokens, request.max_tokens)
    width, height = request.dimensions
    price = provider.prices.image_price(model)
    return price.cost(width, height, request.quality, estimate_tokens(request.prompt))


def _same_work_cost(
    candidate: Candidate, answer: TextResult | ImageResult, request: Request
) -> float:
    """What ``answer``'s work (its tokens, or its image) would have cost on ``candidate``."""
    usage = answer.usage
    prices = candidate.provider.prices
    if isinstance(request, TextRequest):
        return prices.text_price(candidate.model).cost(usage.input_tokens, usage.output_tokens)
    width, height = request.dimensions
    price = prices.image_price(candidate.model)
    return price.cost(width, height, request.quality, usage.input_tokens) * max(usage.images, 1)


def _timeout(provider: str, seconds: float) -> ProviderError:
    return ProviderError(provider, "timeout", f"no progress within {seconds:g}s")


def _announce(candidate: Candidate, ask: Ask, number: int) -> dict[str, Any]:
    return {
        "provider": candidate.name,
        "model": candidate.model,
        "purpose": ask.purpose,
        "attempt": number,
    }


def _tried(
    candidate: Candidate, ask: Ask, outcome: str, seconds: float, cost: float = 0.0
) -> dict[str, Any]:
    return {
        "provider": candidate.name,
        "model": candidate.model,
        "purpose": ask.purpose,
        "outcome": outcome,
        "latencyMs": round(seconds * 1000, 1),
        "costUsd": cost,
        "cached": False,
    }


def _skipped(candidate: Candidate, ask: Ask, wait: float) -> dict[str, Any]:
    return {**_tried(candidate, ask, "cooling", 0.0), "waitSeconds": round(wait, 3)}


def _base_record(ask: Ask, provider: str, model: str, request: Request) -> dict[str, Any]:
    return {
        "provider": provider,
        "model": model,
        "capability": capability_of(request),
        "purpose": ask.purpose,
        "generation_id": ask.generation_id,
        "token_id": ask.token_id,
    }


def _usage_fields(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "images": usage.images,
        "estimated": usage.estimated,
    }


def _failed_call(
    ask: Ask, candidate: Candidate, request: Request, error: ProviderError, seconds: float
) -> CallRecord:
    return CallRecord(
        **_base_record(ask, candidate.name, candidate.model, request),
        outcome=error.kind,
        http_status=error.status,
        latency_ms=seconds * 1000,
    )


def _answered_call(
    ask: Ask, request: Request, answer: TextResult | ImageResult, seconds: float, baseline: float
) -> CallRecord:
    return CallRecord(
        **_base_record(ask, answer.provider, answer.model, request),
        outcome="ok",
        **_usage_fields(answer.usage),
        cost_usd=answer.usage.cost_usd,
        baseline_usd=max(baseline, answer.usage.cost_usd),
        latency_ms=seconds * 1000,
    )


def _cache_hit(ask: Ask, request: Request, answer: TextResult | ImageResult) -> CallRecord:
    return CallRecord(
        **_base_record(ask, answer.provider, answer.model, request),
        outcome="ok",
        cached=True,
        **_usage_fields(answer.usage),
        cache_saved_usd=answer.usage.cost_usd,
    )
