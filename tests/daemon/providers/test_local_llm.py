"""A model server of your own: the real ``openai`` SDK against a fake that speaks Ollama's
OpenAI-compatible wire; built from the settings and routed like the others."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from inftd.daemon.config import Settings
from inftd.daemon.generation.routing.router import Ask
from inftd.daemon.providers.base import ImageRequest, ProviderError, TextRequest
from inftd.daemon.providers.factory import build_providers
from inftd.daemon.providers.local import LocalProvider
from inftd.daemon.providers.local_llm import LocalLlmProvider
from tests.daemon.generation.routing_support import make_router
from tests.daemon.providers.support import collect
from tests.support.fakes import ollama
from tests.support.fakes.generation import count_tokens, reply
from tests.support.fakes.server import Fake, serve

MODEL = "llama3.2"
PROMPT = "a lighthouse keeper's log at dawn"
SYSTEM = "You are Miso, a patient storyteller."


@asynccontextmanager
async def provider(model: str = MODEL) -> AsyncIterator[tuple[Fake, LocalLlmProvider]]:
    fake = Fake(key="")
    async with serve(ollama.create_app(fake, frozenset({MODEL}))) as url:
        client = LocalLlmProvider(f"{url}/v1", model, timeout=5.0)
        try:
            yield fake, client
        finally:
            await client.close()


async def test_text_streams_from_the_server_at_no_cost() -> None:
    async with provider() as (fake, client):
        request = TextRequest(PROMPT, SYSTEM, max_tokens=40, temperature=0)
        chunks, result = await collect(client.stream_text(request))
    expected, _ = reply(PROMPT, 40)
    assert chunks == expected
    assert (result.provider, result.model, result.finish_reason) == ("local_llm", MODEL, "stop")
    assert (result.usage.input_tokens, result.usage.output_tokens) == (
        count_tokens(SYSTEM, PROMPT),
        len(chunks),
    )
    assert result.usage.cost_usd == 0
    (seen,) = fake.seen
    assert seen.body["max_tokens"] == 40  # the field every such server reads
    assert "max_completion_tokens" not in seen.body
    assert seen.body["stream_options"] == {"include_usage": True}


async def test_a_model_the_server_lacks_is_an_error_that_says_so() -> None:
    async with provider(model="not-pulled") as (_, client):
        with pytest.raises(ProviderError) as failed:
            await collect(client.stream_text(TextRequest(PROMPT)))
    assert (failed.value.provider, failed.value.status) == ("local_llm", 404)


async def test_it_draws_no_images() -> None:
    async with provider() as (_, client):
        assert "image" not in client.capabilities
        with pytest.raises(ProviderError):
            await client.image(ImageRequest(PROMPT))


def test_the_settings_add_it_beside_the_template_provider() -> None:
    on = Settings.load(providers={"local_llm_base_url": "http://127.0.0.1:11434/v1",
                                  "local_llm_model": MODEL})  # fmt: skip
    assert set(build_providers(on)) == {"local", "local_llm"}
    half = Settings.load(providers={"local_llm_base_url": "http://127.0.0.1:11434/v1"})
    assert set(build_providers(half)) == {"local"}  # no model named: off, with a warning


async def test_the_router_takes_it_before_the_template_and_not_for_images() -> None:
    async with provider() as (_, client):
        router, _, _ = make_router({"local": LocalProvider(), "local_llm": client})
        routed = await router.text(Ask(package_type=0), TextRequest(PROMPT))
        assert routed.answer.provider == "local_llm"
        drawn = await router.image(Ask(package_type=0), ImageRequest(PROMPT))
        assert drawn.answer.provider == "local"  # the only one that draws
