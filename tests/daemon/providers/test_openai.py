"""The OpenAI provider: the real ``openai`` SDK against the local fake of the API."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from inftd.daemon.providers.base import ImageRequest, ProviderError, TextRequest
from inftd.daemon.providers.openai import OpenAIProvider
from tests.daemon.providers.support import (
    assert_clean,
    assert_kind,
    assert_png,
    collect,
    drain,
    make,
)
from tests.support.fakes import openai
from tests.support.fakes.generation import Fault, Script, count_tokens, reply, script_of
from tests.support.fakes.openai_generate import SNAPSHOT
from tests.support.fakes.server import Fake, serve

KEY = "sk-test-openai-0123456789-SECRET"
PROMPT = "a lighthouse keeper's log at dawn"
SYSTEM = "You are Miso, a patient storyteller."


@asynccontextmanager
async def provider(
    key: str = KEY, idle: float = 5.0
) -> AsyncIterator[tuple[Fake, Script, OpenAIProvider]]:
    fake = Fake(key=KEY)
    app = openai.create_app(fake)
    async with serve(app) as url:
        client = OpenAIProvider(key, base_url=f"{url}/v1", timeout=idle, image_timeout=idle)
        try:
            yield fake, script_of(app), client
        finally:
            await client.close()


async def test_text_streams_in_chunks_and_prices_the_usage() -> None:
    async with provider() as (_, _, client):
        chunks, result = await collect(client.stream_text(TextRequest(PROMPT, SYSTEM)))
    expected, _ = reply(PROMPT)
    assert chunks == expected  # one event, one chunk, in order
    assert result.text == "".join(expected)
    assert (result.provider, result.model) == ("openai", f"gpt-5.4-mini-{SNAPSHOT}")
    assert result.finish_reason == "stop"
    usage = result.usage
    assert (usage.input_tokens, usage.output_tokens) == (count_tokens(SYSTEM, PROMPT), len(chunks))
    # gpt-5.4-mini: $0.75 per 1M input tokens, $4.50 per 1M output tokens; the snapshot
    # the API names is priced as its model.
    cost = (usage.input_tokens * 0.75 + usage.output_tokens * 4.50) / 1e6
    assert usage.cost_usd == pytest.approx(cost)
    assert usage.cost_usd > 0
    assert not usage.estimated


async def test_the_request_has_the_wire_shape_the_api_takes() -> None:
    async with provider() as (fake, _, client):
        request = TextRequest(PROMPT, SYSTEM, model="gpt-5.4-nano", max_tokens=50, temperature=1)
        await collect(client.stream_text(request))
    seen = fake.seen[-1]
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["Authorization"] == f"Bearer {KEY}"
    assert seen.body["model"] == "gpt-5.4-nano"
    assert seen.body["messages"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": PROMPT},
    ]
    assert seen.body["stream"] is True
    assert seen.body["stream_options"] == {"include_usage": True}
    assert seen.body["max_completion_tokens"] == 50
    assert seen.body["temperature"] == 1
    assert len(fake.seen) == 1  # the SDK made one attempt: retries are the router's


async def test_an_answer_cut_at_max_tokens_says_so() -> None:
    async with provider() as (_, _, client):
        chunks, result = await collect(client.stream_text(TextRequest(PROMPT, max_tokens=3)))
    assert len(chunks) == 3
    assert result.finish_reason == "length"
    assert result.usage.output_tokens == 3


@pytest.mark.parametrize(
    ("size", "sent"),
    [("1024x1024", "1024x1024"), ("512x512", "1024x1024"), ("1600x900", "1536x1024")],
)
async def test_an_image_is_a_whole_png_of_the_nearest_size(size: str, sent: str) -> None:
    async with provider() as (fake, _, client):
        result = await client.image(ImageRequest(PROMPT, size=size))
    width, height = (int(x) for x in sent.split("x"))
    assert_png(result.data, width, height)
    assert (result.content_type, result.provider, result.model) == (
        "image/png",
        "openai",
        "gpt-image-1-mini",
    )
    body = fake.seen[-1].body
    assert (fake.seen[-1].path, body["size"], body["quality"], body["n"]) == (
        "/v1/images/generations",
        sent,
        "medium",
        1,
    )
    # gpt-image-1-mini medium: $0.011 square, $0.015 portrait or landscape; prompt text
    # tokens at $2.00 per 1M.
    per_image = 0.011 if width == height else 0.015
    tokens = count_tokens(PROMPT)
    assert result.usage.input_tokens == tokens
    assert result.usage.images == 1
    assert result.usage.cost_usd == pytest.approx(per_image + tokens * 2.00 / 1e6)


async def test_a_high_quality_image_costs_the_high_price() -> None:
    async with provider() as (fake, _, client):
        result = await client.image(ImageRequest(PROMPT, quality="high"))
    assert fake.seen[-1].body["quality"] == "high"
    expected = 0.036 + count_tokens(PROMPT) * 2.00 / 1e6
    assert result.usage.cost_usd == pytest.approx(expected)


FAULTS = [
    pytest.param(Fault.status(429, retry_after=7), "rate_limited", True, 7.0, id="429"),
    pytest.param(Fault.status(500), "unavailable", True, None, id="500"),
    pytest.param(Fault.status(503, retry_after=2), "unavailable", True, 2.0, id="503"),
    pytest.param(Fault.status(401), "auth", False, None, id="401"),
    pytest.param(Fault.status(400), "refused", False, None, id="400"),
    pytest.param(Fault.stall(3), "timeout", True, None, id="stall"),
    pytest.param(Fault.malformed(), "bad_response", True, None, id="malformed"),
    pytest.param(Fault.truncated(), "bad_response", True, None, id="truncated"),
]


@pytest.mark.parametrize(("fault", "kind", "transient", "retry_after"), FAULTS)
@pytest.mark.parametrize("call", ["text", "image"])
async def test_each_fault_is_one_provider_error(
    caplog: pytest.LogCaptureFixture,
    call: str,
    fault: Fault,
    kind: str,
    transient: bool,
    retry_after: float | None,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with provider(idle=0.5) as (_, script, client):
        script.fail_next(fault)
        with pytest.raises(ProviderError) as caught:
            await make(client, call)
        assert_kind(caught, kind, transient, retry_after)
        assert caught.value.provider == "openai"
        assert_clean(caught.value, KEY, caplog.text)
        # The client is still good for the next call.
        _, result = await collect(client.stream_text(TextRequest(PROMPT)))
        assert result.text


async def test_a_stall_in_mid_stream_is_a_timeout() -> None:
    async with provider(idle=0.5) as (_, script, client):
        script.fail_next(Fault.stall(3, after=3))
        chunks: list[str] = []
        with pytest.raises(ProviderError) as caught:
            await drain(client.stream_text(TextRequest(PROMPT)), chunks)
    assert_kind(caught, "timeout", True)
    assert 0 < len(chunks) < len(reply(PROMPT)[0])  # some text came before the stall


async def test_a_wrong_key_is_an_auth_error_that_never_shows_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "sk-wrong-9876543210-SECRET"  # the fake's 401 message quotes it, as OpenAI does
    async with provider(key=wrong) as (_, _, client):
        with pytest.raises(ProviderError) as caught:
            await collect(client.stream_text(TextRequest(PROMPT)))
    assert_kind(caught, "auth", False)
    assert caught.value.status == 401
    assert_clean(caught.value, wrong, caplog.text)
    assert "SECRET" not in caplog.text


async def test_out_of_quota_is_a_rate_limit_not_worth_retrying() -> None:
    async with provider() as (_, script, client):
        script.fail_next(Fault.status(429, reason="insufficient_quota"))
        with pytest.raises(ProviderError) as caught:
            await client.image(ImageRequest(PROMPT))
    assert_kind(caught, "rate_limited", False)


async def test_a_content_policy_refusal_is_not_worth_retrying() -> None:
    async with provider() as (_, script, client):
        script.fail_next(Fault.status(400, reason="moderation_blocked"))
        with pytest.raises(ProviderError) as caught:
            await client.image(ImageRequest(PROMPT))
    assert_kind(caught, "refused", False)
    assert "content policy" in str(caught.value)


async def test_an_unreachable_api_is_unavailable() -> None:
    client = OpenAIProvider(KEY, base_url="http://127.0.0.1:9/v1", timeout=2)
    try:
        with pytest.raises(ProviderError) as caught:
            await collect(client.stream_text(TextRequest(PROMPT)))
    finally:
        await client.close()
    assert_kind(caught, "unavailable", True)
    assert caught.value.status is None


async def test_the_fakes_shared_failures_and_latency_apply_to_generation() -> None:
    async with provider(idle=0.3) as (fake, script, client):
        fake.fail_next(503)  # the queue the embedding routes use too
        with pytest.raises(ProviderError) as failed:
            await make(client, "text")
        assert_kind(failed, "unavailable", True)
        script.latency = 1.0  # longer than the client waits
        with pytest.raises(ProviderError) as slow:
            await make(client, "image")
        assert_kind(slow, "timeout", True)
        script.latency = 0.0
        await make(client, "text")
    assert len(fake.seen) == 3
