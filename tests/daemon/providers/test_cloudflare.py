"""The Workers AI provider: our aiohttp client against the local fake of the REST API."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from inftd.daemon.providers.base import (
    ImageRequest,
    ProviderError,
    Quality,
    TextRequest,
    estimate_tokens,
)
from inftd.daemon.providers.cloudflare import CloudflareProvider
from tests.daemon.providers.support import (
    assert_clean,
    assert_kind,
    assert_png,
    collect,
    drain,
    make,
)
from tests.support.fakes import cloudflare
from tests.support.fakes.cloudflare_generate import FLUX, SDXL
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

KEY = "cf-test-token-0123456789-SECRET"
ACCOUNT = "acct-1"
PROMPT = "a lighthouse keeper's log at dawn"
SYSTEM = "You are Miso, a patient storyteller."
TEXT_PATH = f"/client/v4/accounts/{ACCOUNT}/ai/run/@cf/meta/llama-3.1-8b-instruct"


@asynccontextmanager
async def provider(
    key: str = KEY, idle: float = 5.0, image_model: str | None = None
) -> AsyncIterator[tuple[Fake, Script, CloudflareProvider]]:
    fake = Fake(key=KEY, account=ACCOUNT)
    app = cloudflare.create_app(fake)
    async with serve(app) as url:
        client = CloudflareProvider(
            key, ACCOUNT, base_url=url, timeout=idle, image_timeout=idle, image_model=image_model
        )
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
    assert (result.provider, result.model) == ("cloudflare", "@cf/meta/llama-3.1-8b-instruct")
    assert result.finish_reason == "stop"
    usage = result.usage
    assert (usage.input_tokens, usage.output_tokens) == (count_tokens(SYSTEM, PROMPT), len(chunks))
    # llama-3.1-8b-instruct: $0.282 per 1M input tokens, $0.827 per 1M output tokens.
    assert usage.cost_usd == pytest.approx((usage.input_tokens * 0.282 + len(chunks) * 0.827) / 1e6)
    assert not usage.estimated
    seen = fake.seen[-1]
    assert seen.path == TEXT_PATH
    assert seen.headers["Authorization"] == f"Bearer {KEY}"
    assert seen.body == {
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": PROMPT},
        ],
        "stream": True,
        "max_tokens": 1024,
    }


async def test_an_answer_cut_at_max_tokens_says_so() -> None:
    async with provider() as (fake, _, client):
        chunks, result = await collect(client.stream_text(TextRequest(PROMPT, max_tokens=5)))
    assert fake.seen[-1].body["max_tokens"] == 5
    assert len(chunks) == 5
    assert result.finish_reason == "length"


@pytest.mark.parametrize(("quality", "steps"), [("standard", 4), ("high", 8)])
async def test_a_flux_image_is_decoded_and_priced_by_tiles_and_steps(
    quality: Quality, steps: int
) -> None:
    async with provider() as (fake, _, client):
        result = await client.image(ImageRequest(PROMPT, size="512x512", quality=quality))
    assert_png(result.data, 1024, 1024)  # FLUX.1 [schnell] draws 1024x1024 whatever is asked
    assert (result.content_type, result.provider, result.model) == ("image/png", "cloudflare", FLUX)
    assert fake.seen[-1].body == {"prompt": PROMPT, "steps": steps}  # its schema takes no more
    # $0.0000528 per 512x512 tile (4 of them) and $0.0001056 per step.
    assert result.usage.cost_usd == pytest.approx(4 * 0.0000528 + steps * 0.0001056)
    assert result.usage.images == 1


async def test_a_stable_diffusion_image_comes_as_raw_png_bytes() -> None:
    async with provider(image_model=SDXL) as (fake, _, client):
        result = await client.image(ImageRequest(PROMPT, size="768x512"))
    assert_png(result.data, 768, 512)
    assert fake.seen[-1].body == {"prompt": PROMPT, "width": 768, "height": 512}
    assert result.model == SDXL


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
        assert caught.value.provider == "cloudflare"
        assert_clean(caught.value, KEY, caplog.text)
        _, result = await collect(client.stream_text(TextRequest(PROMPT)))
        assert result.text  # the client is still good for the next call


@pytest.mark.parametrize("fault", [Fault.malformed(), Fault.truncated()])
async def test_a_cut_stable_diffusion_png_is_a_bad_response(fault: Fault) -> None:
    async with provider(image_model=SDXL) as (_, script, client):
        script.fail_next(fault)
        with pytest.raises(ProviderError) as caught:
            await client.image(ImageRequest(PROMPT))
    assert_kind(caught, "bad_response", True)


async def test_a_stall_in_mid_stream_is_a_timeout() -> None:
    async with provider(idle=0.5) as (_, script, client):
        script.fail_next(Fault.stall(3, after=3))
        chunks: list[str] = []
        with pytest.raises(ProviderError) as caught:
            await drain(client.stream_text(TextRequest(PROMPT)), chunks)
    assert_kind(caught, "timeout", True)
    assert 0 < len(chunks) < len(reply(PROMPT)[0])


async def test_a_wrong_token_is_an_auth_error_that_never_shows_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "cf-wrong-9876543210-SECRET"
    async with provider(key=wrong) as (_, _, client):
        with pytest.raises(ProviderError) as caught:
            await client.image(ImageRequest(PROMPT))
    assert_kind(caught, "auth", False)
    assert caught.value.status == 401
    assert_clean(caught.value, wrong, caplog.text)


async def test_an_unreachable_api_is_unavailable() -> None:
    client = CloudflareProvider(KEY, ACCOUNT, base_url="http://127.0.0.1:9", timeout=2)
    try:
        with pytest.raises(ProviderError) as caught:
            await collect(client.stream_text(TextRequest(PROMPT)))
    finally:
        await client.close()
    assert_kind(caught, "unavailable", True)


async def test_a_stream_without_usage_is_priced_on_estimated_tokens() -> None:
    async def no_usage(fake: Fake, body: Any) -> web.Response:
        items = [b'data: {"response": "Hello"}\n\n', b'data: {"response": " there"}\n\n']
        return streamed(events(items, None, b"data: [DONE]\n\n"))

    fake = Fake(key=KEY, account=ACCOUNT)
    app = cloudflare.create_app(fake)
    cloudflare.add_model(app, "@cf/meta/llama-3.1-8b-instruct", no_usage)
    async with serve(app) as url:
        client = CloudflareProvider(KEY, ACCOUNT, base_url=url)
        try:
            _, result = await collect(client.stream_text(TextRequest(PROMPT, SYSTEM)))
        finally:
            await client.close()
    assert result.text == "Hello there"
    usage = result.usage
    assert usage.estimated
    assert usage.input_tokens == estimate_tokens(SYSTEM, PROMPT)
    assert usage.output_tokens == estimate_tokens("Hello there")
    assert usage.cost_usd == pytest.approx(
        (usage.input_tokens * 0.282 + usage.output_tokens * 0.827) / 1e6
    )
