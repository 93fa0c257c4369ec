"""The router against the real provider clients and the local fakes of their APIs: ranking,
fallback, cooldowns, refusals, streaming, the cache, and what every call records."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from inftd.daemon.config import Settings, TierRouting
from inftd.daemon.errors import ConfigError
from inftd.daemon.generation.routing.router import Ask
from inftd.daemon.generation.types import GenerationFailed
from inftd.daemon.providers.base import (
    Capability,
    ImageRequest,
    TextRequest,
    TextResult,
    Usage,
    estimate_tokens,
)
from inftd.daemon.providers.local import LocalProvider
from inftd.daemon.providers.prices import OPENAI
from tests.daemon.generation.routing_support import (
    ManualClock,
    Served,
    Told,
    make_router,
    routing,
    served,
    with_local,
)
from tests.support.fakes.generation import Fault, count_tokens, reply

PROMPT = "a lighthouse keeper's log at dawn"
ASK = Ask(package_type=0, generation_id="gen-1", token_id=7)
OPENAI_FIRST = ASK.but(provider_hint="openai")
REQUEST = TextRequest(PROMPT, max_tokens=64)


@pytest.fixture
async def fakes() -> AsyncIterator[dict[str, Served]]:
    async with served("openai", "cloudflare", "gemini") as found:
        yield found


def seen(fake: Served) -> int:
    return len(fake.fake.seen)


async def test_the_best_candidate_answers_and_its_text_streams(
    fakes: dict[str, Served],
) -> None:
    router, recorder, _ = make_router(with_local(fakes))
    told = Told()
    routed = await router.text(ASK, REQUEST, told, stream=True)
    # Tier 0 weighs price most: Workers AI's Llama 3.1 8B is the cheapest text model here.
    assert routed.answer.provider == "cloudflare"
    chunks, _ = reply(PROMPT, 64)
    assert [c["text"] for c in told.of("chunk")] == chunks
    assert told.of("attempt") == [
        {
            "provider": "cloudflare",
            "model": "@cf/meta/llama-3.1-8b-instruct",
            "purpose": "generate",
            "attempt": 1,
        }
    ]
    (call,) = recorder.calls
    usage = routed.answer.usage
    assert (call.provider, call.model, call.capability, call.outcome) == (
        "cloudflare",
        "@cf/meta/llama-3.1-8b-instruct",
        "text",
        "ok",
    )
    assert (call.generation_id, call.token_id, call.cached) == ("gen-1", 7, False)
    assert (call.input_tokens, call.output_tokens) == (count_tokens(PROMPT), len(chunks))
    assert (
        call.cost_usd
        == usage.cost_usd
        == pytest.approx((usage.input_tokens * 0.282 + usage.output_tokens * 0.827) / 1e6)
    )
    # The dearest capable candidate for this work is OpenAI's gpt-5.4-mini.
    baseline = OPENAI.text_price("gpt-5.4-mini").cost(usage.input_tokens, usage.output_tokens)
    assert call.baseline_usd == pytest.approx(baseline)
    assert call.baseline_usd > call.cost_usd
    assert routed.attempts[0]["outcome"] == "ok"


async def test_a_429_with_retry_after_cools_the_provider_for_that_long(
    fakes: dict[str, Served],
) -> None:
    router, recorder, clock = make_router(with_local(fakes))
    openai = fakes["openai"]
    openai.script.fail_next(Fault.status(429, retry_after=30))
    routed = await router.text(OPENAI_FIRST, REQUEST)
    assert routed.answer.provider == "cloudflare"  # the next in line
    failed, answered = recorder.calls
    assert (failed.provider, failed.outcome, failed.http_status) == ("openai", "rate_limited", 429)
    assert (failed.cost_usd, answered.provider) == (0.0, "cloudflare")
    assert router.health.cooling_for("openai") == pytest.approx(30)

    asked = seen(openai)
    clock.advance(29)
    routed = await router.text(OPENAI_FIRST, REQUEST)
    assert seen(openai) == asked  # still cooling: not asked at all
    assert routed.attempts[0]["outcome"] == "cooling"
    assert routed.answer.provider == "cloudflare"

    clock.advance(2)  # Retry-After is over: the provider is back, first as hinted
    routed = await router.text(OPENAI_FIRST, REQUEST)
    assert routed.answer.provider == "openai"
    assert seen(openai) == asked + 1


async def test_server_errors_fall_back_and_cool_down_longer_each_time(
    fakes: dict[str, Served],
) -> None:
    router, recorder, clock = make_router(with_local(fakes), routing(cooldown_base=5))
    openai = fakes["openai"]
    openai.script.fail_next(Fault.status(500))
    assert (await router.text(OPENAI_FIRST, REQUEST)).answer.provider == "cloudflare"
    assert router.health.cooling_for("openai") == pytest.approx(5)
    clock.advance(5)
    openai.script.fail_next(Fault.status(503))
    assert (await router.text(OPENAI_FIRST, REQUEST)).answer.provider == "cloudflare"
    assert router.health.cooling_for("openai") == pytest.approx(10)  # doubled
    clock.advance(10)
    assert (await router.text(OPENAI_FIRST, REQUEST)).answer.provider == "openai"
    clock.advance(1)  # a success resets the doubling
    openai.script.fail_next(Fault.status(500))
    await router.text(OPENAI_FIRST, REQUEST)
    assert router.health.cooling_for("openai") == pytest.approx(5)
    outcomes = [(c.provider, c.outcome) for c in recorder.calls if c.provider == "openai"]
    assert outcomes == [
        ("openai", "unavailable"),
        ("openai", "unavailable"),
        ("openai", "ok"),
        ("openai", "unavailable"),
    ]


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        pytest.param(Fault.stall(3), "timeout", id="stall"),
        pytest.param(Fault.malformed(), "bad_response", id="malformed"),
        pytest.param(Fault.truncated(), "bad_response", id="truncated"),
    ],
)
async def test_a_broken_answer_falls_back(
    fakes: dict[str, Served], fault: Fault, kind: str
) -> None:
    router, recorder, _ = make_router(with_local(fakes))
    fakes["openai"].script.fail_next(fault)
    routed = await router.text(OPENAI_FIRST, REQUEST)
    assert routed.answer.provider == "cloudflare"
    assert [(c.provider, c.outcome) for c in recorder.calls] == [
        ("openai", kind),
        ("cloudflare", "ok"),
    ]
    assert [a["outcome"] for a in routed.attempts] == [kind, "ok"]


async def test_a_stream_that_breaks_midway_is_replaced_by_the_next_provider(
    fakes: dict[str, Served],
) -> None:
    router, _, _ = make_router(with_local(fakes))
    fakes["openai"].script.fail_next(Fault.stall(3, after=3))
    told = Told()
    routed = await router.text(OPENAI_FIRST, REQUEST, told, stream=True)
    assert [a["provider"] for a in told.of("attempt")] == ["openai", "cloudflare"]
    first_attempt = told.events.index(("attempt", told.of("attempt")[1]))
    assert any(stage == "chunk" for stage, _ in told.events[:first_attempt])  # some came
    assert told.text() == routed.answer.text  # what follows the last attempt is the answer


async def test_every_provider_down_is_a_transient_failure(
    fakes: dict[str, Served],
) -> None:
    remote = {name: fakes[name].provider for name in ("openai", "cloudflare")}
    router, recorder, _ = make_router(remote, routing(cooldown_base=7))
    fakes["openai"].script.fail_next(Fault.status(500))
    fakes["cloudflare"].script.fail_next(Fault.status(503))
    with pytest.raises(GenerationFailed) as caught:
        await router.text(ASK, REQUEST)
    assert caught.value.transient
    assert caught.value.retry_after == pytest.approx(7)
    assert sorted((c.provider, c.outcome) for c in recorder.calls) == [
        ("cloudflare", "unavailable"),
        ("openai", "unavailable"),
    ]
    # Both now cool down: the next job fails at once, asking nobody, and says when to retry.
    asked = {name: seen(fakes[name]) for name in remote}
    with pytest.raises(GenerationFailed) as again:
        await router.text(ASK, REQUEST)
    assert again.value.transient
    assert again.value.retry_after == pytest.approx(7)
    assert {name: seen(fakes[name]) for name in remote} == asked
    assert len(recorder.calls) == 2


async def test_an_image_falls_back_too(fakes: dict[str, Served]) -> None:
    router, recorder, _ = make_router(with_local(fakes))
    fakes["openai"].script.fail_next(Fault.status(502))
    routed = await router.image(OPENAI_FIRST, ImageRequest(PROMPT))
    assert routed.answer.content_type == "image/png"
    assert routed.answer.provider != "openai"
    assert [c.outcome for c in recorder.calls] == ["unavailable", "ok"]
    assert recorder.calls[1].capability == "image"
    assert recorder.calls[1].images == 1


async def test_a_refusal_gets_one_second_opinion_and_no_more(
    fakes: dict[str, Served],
) -> None:
    router, recorder, _ = make_router(with_local(fakes))
    fakes["openai"].script.fail_next(Fault.status(400))
    routed = await router.text(OPENAI_FIRST, REQUEST)
    assert routed.answer.provider == "cloudflare"  # the second opinion answered
    assert router.health.cooling_for("openai") == 0  # a refusal cools nothing down

    fakes["openai"].script.fail_next(Fault.status(400))
    fakes["cloudflare"].script.fail_next(Fault.status(400))
    with pytest.raises(GenerationFailed) as caught:
        await router.text(OPENAI_FIRST, REQUEST)
    assert not caught.value.transient
    assert "declined" in caught.value.message
    # Gemini and the local provider, next in line, never saw the declined prompt.
    assert [(c.provider, c.outcome) for c in recorder.calls[2:]] == [
        ("openai", "refused"),
        ("cloudflare", "refused"),
    ]


async def test_a_bad_key_parks_the_provider_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with served("openai", key="sk-wrong-key-SECRET") as wrong:
        router, recorder, clock = make_router(with_local(wrong), routing(park_seconds=600))
        with caplog.at_level(logging.WARNING):
            for _ in range(3):
                routed = await router.text(OPENAI_FIRST, REQUEST)
                assert routed.answer.provider == "local"
        assert seen(wrong["openai"]) == 1  # parked after the first refusal of the key
        assert router.health.cooling_for("openai") == pytest.approx(600)
        parked = [r for r in caplog.records if "parked" in r.getMessage()]
        assert len(parked) == 1
        assert "sk-wrong-key" not in caplog.text
        assert recorder.calls[0].outcome == "auth"
        clock.advance(600)
        await router.text(OPENAI_FIRST, REQUEST)
        assert seen(wrong["openai"]) == 2  # tried again once the park is over


async def test_low_tiers_prefer_the_cheap_provider_and_hints_move_the_choice(
    fakes: dict[str, Served],
) -> None:
    router, _, _ = make_router(with_local(fakes))

    def order(ask: Ask) -> list[str]:
        return [c.name for c in router.rank(ask, REQUEST)]

    assert order(ASK) == ["cloudflare", "gemini", "openai", "local"]
    # A learned liking for OpenAI (at full weight) outweighs its price at tier 0.
    assert order(ASK.but(hints={"openai": 5.0}))[0] == "openai"
    # A weak one does not.
    assert order(ASK.but(hints={"openai": 0.5}))[0] == "cloudflare"
    # Hints name models too, in any case, as learning stores them (case-folded).
    assert order(ASK.but(hints={"GEMINI-3.1-flash-lite": 5.0}))[0] == "gemini"
    # A dislike pushes a provider down.
    assert order(ASK.but(hints={"cloudflare": -5.0}))[0] == "gemini"
    # The explicit hint goes first, even the local provider.
    assert order(ASK.but(provider_hint="local"))[0] == "local"
    assert order(ASK.but(provider_hint="openai"))[0] == "openai"


async def test_higher_tiers_weigh_price_less_and_use_their_models(
    fakes: dict[str, Served],
) -> None:
    tiers = {
        0: TierRouting(cost_weight=1.0),
        2: TierRouting(cost_weight=0.1, models={"openai.text": "gpt-5.4"}),
    }
    router, _, _ = make_router(with_local(fakes), routing(tiers=tiers))
    studio = Ask(package_type=2)
    ranked = {c.name: c for c in router.rank(studio, REQUEST)}
    assert ranked["openai"].model == "gpt-5.4"
    assert ranked["gemini"].model == "gemini-3.1-flash-lite"
    tokens = estimate_tokens(PROMPT)
    assert ranked["openai"].cost == pytest.approx(OPENAI.text_price("gpt-5.4").cost(tokens, 64))
    # Package type 3 has no row: it is routed as the nearest lower tier, 2.
    assert router.tier(3) == tiers[2]
    # At tier 2 a modest liking is enough to pick the premium model, not at tier 0.
    liked = {"openai": 1.0}
    assert router.rank(studio.but(hints=liked), REQUEST)[0].name == "openai"
    assert router.rank(ASK.but(hints=liked), REQUEST)[0].name == "cloudflare"


class Timed(LocalProvider):
    """The local provider under another name, taking ``seconds`` of the manual clock."""

    def __init__(self, name: str, clock: ManualClock, seconds: float) -> None:
        super().__init__()
        self.name = name
        self._clock = clock
        self._seconds = seconds

    async def stream_text(self, request: TextRequest) -> AsyncIterator[str | TextResult]:
        async for item in super().stream_text(request):
            if isinstance(item, TextResult):
                self._clock.advance(self._seconds)
                item = TextResult(item.text, self.name, item.model, item.usage)
            yield item


async def test_latency_and_errors_move_a_provider_down() -> None:
    clock = ManualClock()
    slow, quick = Timed("slow", clock, 4.0), Timed("quick", clock, 1.0)
    router, recorder, _ = make_router(
        {"slow": slow, "quick": quick}, routing(latency_alpha=0.5), clock=clock
    )
    assert [c.name for c in router.rank(ASK, REQUEST)] == ["quick", "slow"]  # by name, unknown
    await router.text(ASK.but(provider_hint="slow"), REQUEST)
    await router.text(ASK.but(provider_hint="slow"), REQUEST)
    await router.text(ASK.but(provider_hint="quick"), REQUEST)
    assert router.health.latency("slow", "text") == pytest.approx(4.0)
    assert router.health.latency("quick", "text") == pytest.approx(1.0)
    assert [c.name for c in router.rank(ASK, REQUEST)] == ["quick", "slow"]
    assert [c.latency_ms for c in recorder.calls] == [4000.0, 4000.0, 1000.0]
    # The moving average follows a change at the rate alpha gives it.
    quick._seconds = 9.0
    await router.text(ASK.but(provider_hint="quick"), REQUEST)
    assert router.health.latency("quick", "text") == pytest.approx(5.0)
    assert [c.name for c in router.rank(ASK, REQUEST)] == ["slow", "quick"]


async def test_the_cache_answers_repeats_for_nothing_and_records_the_saving(
    fakes: dict[str, Served],
) -> None:
    router, recorder, clock = make_router(with_local(fakes), routing(cache=True, cache_ttl=60))
    openai = fakes["openai"]
    first = await router.text(OPENAI_FIRST, REQUEST)
    paid = first.answer.usage.cost_usd
    assert paid > 0
    told = Told()
    spaced = TextRequest(f"  {PROMPT.replace(' ', '  ')}  \n", max_tokens=64)
    again = await router.text(OPENAI_FIRST, spaced, told, stream=True)
    assert again.cached
    assert again.answer.text == first.answer.text
    assert again.usage == Usage(
        first.answer.usage.input_tokens, first.answer.usage.output_tokens, 0, 0.0, False
    )
    assert [c["text"] for c in told.of("chunk")] == [first.answer.text]
    assert seen(openai) == 1
    hit = recorder.calls[-1]
    assert (hit.provider, hit.cached, hit.cost_usd) == ("openai", True, 0.0)
    assert hit.cache_saved_usd == pytest.approx(paid)
    assert hit.baseline_usd == 0.0
    # Other parameters are another request.
    await router.text(OPENAI_FIRST, TextRequest(PROMPT, max_tokens=32))
    assert seen(openai) == 2
    # A stored answer lives cache_ttl seconds.
    clock.advance(61)
    assert not (await router.text(OPENAI_FIRST, REQUEST)).cached
    assert seen(openai) == 3


async def test_free_answers_are_not_cached() -> None:
    router, recorder, _ = make_router({"local": LocalProvider()}, routing(cache=True))
    await router.text(ASK, REQUEST)
    assert not (await router.text(ASK, REQUEST)).cached
    assert [c.cached for c in recorder.calls] == [False, False]
    assert len(router.cache) == 0


async def test_the_cache_keeps_its_bounds(fakes: dict[str, Served]) -> None:
    router, _, _ = make_router(with_local(fakes), routing(cache=True, cache_max_entries=2))
    for word in ("one", "two", "three"):
        await router.text(OPENAI_FIRST, TextRequest(f"{PROMPT} {word}", max_tokens=16))
    assert len(router.cache) == 2
    oldest = await router.text(OPENAI_FIRST, TextRequest(f"{PROMPT} one", max_tokens=16))
    assert not oldest.cached  # the least recently used went first
    newest = await router.text(OPENAI_FIRST, TextRequest(f"{PROMPT} three", max_tokens=16))
    assert newest.cached


async def test_no_provider_for_a_capability_is_a_lasting_failure() -> None:
    class TextOnly(LocalProvider):
        capabilities: frozenset[Capability] = frozenset({"text", "streaming"})

    router, _, _ = make_router({"local": TextOnly()})
    with pytest.raises(GenerationFailed) as caught:
        await router.image(ASK, ImageRequest(PROMPT))
    assert not caught.value.transient


def test_routing_settings_are_checked_and_read_from_config_shapes() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.load(routing={"cooldown_base": 60, "cooldown_max": 30})
    assert caught.value.key == "routing"
    with pytest.raises(ConfigError) as caught:
        Settings.load(routing={"tiers": {"0": {"cost_weight": -1}}})
    assert caught.value.key.startswith("routing.tiers")
    # TOML and environment give tier keys as strings.
    settings = Settings.load(routing={"tiers": {"1": {"models": {"openai.text": "gpt-5.4"}}}})
    assert settings.routing.tiers == {1: TierRouting(models={"openai.text": "gpt-5.4"})}
