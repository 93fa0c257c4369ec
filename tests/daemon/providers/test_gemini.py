"""The Gemini provider: the real ``google-genai`` SDK against the local fake of the API."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from inftd.daemon.providers.base import ImageRequest, ProviderError, TextRequest
from inftd.daemon.providers.gemini import GeminiProvider, image_shape
from tests.daemon.providers.support import (
    assert_clean,
    assert_kind,
    assert_png,
    collect,
    drain,
    make,
)
from tests.support.fakes import gemini
from tests.support.fakes.generation import (
    Fault,
    Script,
    count_tokens,
    events,
    reply,
    script_of,
    streamed,
)
from tests.support.fakes.server import Fake, serve

KEY = "AIza-test-gemini-0123456789-SECRET"
PROMPT = "a lighthouse keeper's log at dawn"
SYSTEM = "You are Miso, a patient storyteller."


@asynccontextmanager
async def provider(
    key: str = KEY, idle: float = 5.0
) -> AsyncIterator[tuple[Fake, Script, GeminiProvider]]:
    fake = Fake(key=KEY)
    app = gemini.create_app(fake)
    async with serve(app) as url:
        client = GeminiProvider(key, base_url=f"{url}/", timeout=idle, image_timeout=idle)
        try:
            yield fake, script_of(app), client
        finally:
            await client.close()


async def test_text_streams_in_chunks_and_prices_the_usage() -> None:
    async with provider() as (fake, _, client):
        chunks, result = await collect(client.stream_text(TextRequest(PROMPT, SYSTEM)))
    expected, _ = reply(PROMPT)
    assert chunks == expected
    assert result.text == "".join(expected)
    assert (result.provider, result.model) == ("gemini", "gemini-3.1-flash-lite")
    assert result.finish_reason == "stop"
    usage = result.usage
    assert (usage.input_tokens, usage.output_tokens) == (count_tokens(SYSTEM, PROMPT), len(chunks))
    # gemini-3.1-flash-lite: $0.25 per 1M input tokens, $1.50 per 1M output tokens.
    assert usage.cost_usd == pytest.approx((usage.input_tokens * 0.25 + len(chunks) * 1.50) / 1e6)
    assert not usage.estimated
    seen = fake.seen[-1]
    assert seen.path.endswith("/models/gemini-3.1-flash-lite:streamGenerateContent")
    assert seen.query.get("alt") == "sse"
    assert seen.headers["x-goog-api-key"] == KEY


async def test_the_request_has_the_wire_shape_the_api_takes() -> None:
    async with provider() as (fake, _, client):
        request = TextRequest(PROMPT, SYSTEM, model="gemini-2.5-flash", max_tokens=50)
        await collect(client.stream_text(request))
    body = fake.seen[-1].body
    assert fake.seen[-1].path.endswith("/models/gemini-2.5-flash:streamGenerateContent")
    assert body["contents"][-1]["parts"] == [{"text": PROMPT}]
    assert body["systemInstruction"]["parts"] == [{"text": SYSTEM}]
    assert body["generationConfig"]["maxOutputTokens"] == 50
    assert len(fake.seen) == 1  # one attempt: the SDK's retries are off


async def test_an_answer_cut_at_max_tokens_says_so() -> None:
    async with provider() as (_, _, client):
        chunks, result = await collect(client.stream_text(TextRequest(PROMPT, max_tokens=4)))
    assert len(chunks) == 4
    assert result.finish_reason == "length"
    assert result.usage.output_tokens == 4


@pytest.mark.parametrize(
    ("size", "ratio", "image_size", "pixels"),
    [
        ("1024x1024", "1:1", "1K", (1024, 1024)),
        ("1536x1024", "3:2", "2K", (2048, 1365)),  # the smallest class that holds it
        ("1080x1920", "9:16", "2K", (1152, 2048)),
    ],
)
async def test_an_image_is_a_whole_png_of_the_nearest_shape(
    size: str, ratio: str, image_size: str, pixels: tuple[int, int]
) -> None:
    async with provider() as (fake, _, client):
        result = await client.image(ImageRequest(PROMPT, size=size))
    assert_png(result.data, *pixels)
    assert (result.content_type, result.provider, result.model) == (
        "image/png",
        "gemini",
        "gemini-3.1-flash-image",
    )
    config = fake.seen[-1].body["generationConfig"]
    assert fake.seen[-1].path.endswith("/models/gemini-3.1-flash-image:generateContent")
    assert config["responseModalities"] == ["IMAGE"]
    assert config["imageConfig"] == {"aspectRatio": ratio, "imageSize": image_size}
    # gemini-3.1-flash-image: $0.067 a 1K image, $0.101 a 2K one; prompt at $0.50 per 1M.
    per_image = {"1K": 0.067, "2K": 0.101}[image_size]
    tokens = count_tokens(PROMPT)
    assert result.usage.images == 1
    assert result.usage.input_tokens == tokens
    assert result.usage.cost_usd == pytest.approx(per_image + tokens * 0.50 / 1e6)


def test_sizes_become_the_nearest_ratio_and_class() -> None:
    assert image_shape(512, 512) == ("1:1", "1K", 1024)
    assert image_shape(2000, 860) == ("21:9", "2K", 2048)
    assert image_shape(2560, 1080) == ("21:9", "4K", 4096)
    assert image_shape(3000, 4000) == ("3:4", "4K", 4096)


FAULTS = [
    pytest.param(Fault.status(429, retry_after=7), "rate_limited", True, 7.0, id="429"),
    pytest.param(Fault.status(500), "unavailable", True, None, id="500"),
    pytest.param(Fault.status(503), "unavailable", True, None, id="503"),
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
        assert caught.value.provider == "gemini"
        assert_clean(caught.value, KEY, caplog.text)
        _, result = await collect(client.stream_text(TextRequest(PROMPT)))
        assert result.text  # the client is still good for the next call


async def test_a_stall_in_mid_stream_is_a_timeout() -> None:
    async with provider(idle=0.5) as (_, script, client):
        script.fail_next(Fault.stall(3, after=3))
        chunks: list[str] = []
        with pytest.raises(ProviderError) as caught:
            await drain(client.stream_text(TextRequest(PROMPT)), chunks)
    assert_kind(caught, "timeout", True)
    assert 0 < len(chunks) < len(reply(PROMPT)[0])


async def test_a_wrong_key_is_an_auth_error_that_never_shows_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "AIza-wrong-9876543210-SECRET"  # Gemini's 400 API_KEY_INVALID message quotes it
    async with provider(key=wrong) as (_, _, client):
        with pytest.raises(ProviderError) as caught:
            await collect(client.stream_text(TextRequest(PROMPT)))
    assert_kind(caught, "auth", False)
    assert caught.value.status == 400
    assert_clean(caught.value, wrong, caplog.text)
    assert "SECRET" not in caplog.text


async def test_an_unreachable_api_is_unavailable() -> None:
    client = GeminiProvider(KEY, base_url="http://127.0.0.1:9/", timeout=2)
    try:
        with pytest.raises(ProviderError) as caught:
            await collect(client.stream_text(TextRequest(PROMPT)))
    finally:
        await client.close()
    assert_kind(caught, "unavailable", True)


@pytest.mark.parametrize(
    "answer",
    [
        {"promptFeedback": {"blockReason": "SAFETY"}},
        {"candidates": [{"content": {"parts": [], "role": "model"}, "finishReason": "SAFETY"}]},
    ],
    ids=["prompt-blocked", "answer-blocked"],
)
@pytest.mark.parametrize("call", ["text", "image"])
async def test_a_safety_block_is_a_refusal(call: str, answer: dict[str, Any]) -> None:
    async def blocked(request: web.Request, fake: Fake, body: Any) -> web.Response:
        if request.query.get("alt") == "sse":
            return streamed(events([f"data: {json.dumps(answer)}\r\n\r\n".encode()], None, None))
        return web.json_response(answer)

    fake = Fake(key=KEY)
    app = gemini.create_app(fake)
    gemini.add_method(app, "streamGenerateContent", blocked)
    gemini.add_method(app, "generateContent", blocked)
    async with serve(app) as url:
        client = GeminiProvider(KEY, base_url=f"{url}/")
        try:
            with pytest.raises(ProviderError) as caught:
                await make(client, call)
        finally:
            await client.close()
    assert_kind(caught, "refused", False)
