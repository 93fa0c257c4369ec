"""The providers' embedders against local fakes of their HTTP APIs (the real SDKs run)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from pydantic import SecretStr

from inftd.agents.embeddings import LocalEmbedder
from inftd.daemon.config import Settings
from inftd.daemon.errors import ConfigError, EmbeddingError
from inftd.daemon.providers.embedders import (
    BATCH,
    CloudflareEmbedder,
    GeminiEmbedder,
    OpenAIEmbedder,
    ProviderEmbedder,
    build_embedder,
    open_embedder,
)
from tests.support.fakes import cloudflare, gemini, openai
from tests.support.fakes.server import Fake, serve

KEY = "sk-test-0123456789abcdef-SECRET"
TEXTS = ["a lighthouse at dawn", "neon city at night", "the cat Miso"]

Make = Callable[[str, str, int], ProviderEmbedder]  # base URL, key, retries -> embedder


def make_openai(url: str, key: str, retries: int) -> ProviderEmbedder:
    return OpenAIEmbedder(key, f"{url}/v1", None, retries=retries)


def make_gemini(url: str, key: str, retries: int) -> ProviderEmbedder:
    return GeminiEmbedder(key, f"{url}/", None, retries=retries)


def make_cloudflare(url: str, key: str, retries: int) -> ProviderEmbedder:
    return CloudflareEmbedder(key, "acct-1", url, None, retries=retries, retry_base=0.01)


PROVIDERS: dict[str, tuple[Callable[[Fake], web.Application], Make]] = {
    "openai": (openai.create_app, make_openai),
    "gemini": (gemini.create_app, make_gemini),
    "cloudflare": (cloudflare.create_app, make_cloudflare),
}


@asynccontextmanager
async def provider(
    name: str, key: str = KEY, retries: int = 0
) -> AsyncIterator[tuple[Fake, ProviderEmbedder]]:
    create_app, make = PROVIDERS[name]
    fake = Fake(key=KEY)
    async with serve(create_app(fake)) as url:
        embedder = make(url, key, retries)
        try:
            yield fake, embedder
        finally:
            await embedder.aclose()


def auth_of(name: str, fake: Fake) -> str | None:
    headers = fake.seen[-1].headers
    if name == "gemini":
        return headers.get("x-goog-api-key")
    return headers.get("Authorization")


@pytest.mark.parametrize("name", PROVIDERS)
async def test_vectors_come_back_in_order_with_the_key_sent(name: str) -> None:
    async with provider(name) as (fake, embedder):
        vectors = await embedder.embed(TEXTS)
    expected = np.array([fake.vector(t) for t in TEXTS])
    assert np.array(vectors) == pytest.approx(expected, abs=1e-6)
    assert auth_of(name, fake) in (KEY, f"Bearer {KEY}")
    assert embedder.name.startswith(f"{name}/")


async def test_openai_answers_in_base64_by_default_and_the_sdk_decodes_it() -> None:
    async with provider("openai") as (fake, embedder):
        await embedder.embed(["hello"])
    assert fake.seen[-1].body["encoding_format"] == "base64"
    assert fake.seen[-1].body["model"] == "text-embedding-3-small"


async def test_gemini_and_cloudflare_requests_have_their_wire_shape() -> None:
    async with provider("gemini") as (fake, embedder):
        await embedder.embed(["hello"])
    seen = fake.seen[-1]
    assert seen.path.endswith("/models/gemini-embedding-001:batchEmbedContents")
    assert seen.body["requests"][0]["content"]["parts"] == [{"text": "hello"}]
    async with provider("cloudflare") as (fake, embedder):
        await embedder.embed(["hello"])
    seen = fake.seen[-1]
    assert seen.path == "/client/v4/accounts/acct-1/ai/run/@cf/baai/bge-base-en-v1.5"
    assert seen.body == {"text": ["hello"]}


@pytest.mark.parametrize("name", PROVIDERS)
async def test_many_texts_go_in_batches(name: str) -> None:
    texts = [f"text number {i}" for i in range(BATCH + 5)]
    async with provider(name) as (fake, embedder):
        vectors = await embedder.embed(texts)
    assert len(fake.seen) == 2
    assert vectors[-1] == pytest.approx(fake.vector(texts[-1]), abs=1e-6)


@pytest.mark.parametrize("name", PROVIDERS)
async def test_a_wrong_key_is_an_auth_error_that_does_not_name_it(name: str) -> None:
    wrong = "sk-wrong-key-9876543210-SECRET"
    async with provider(name, key=wrong) as (_, embedder):
        with pytest.raises(EmbeddingError) as caught:
            await embedder.embed(TEXTS)
    assert "credentials were refused" in str(caught.value)
    assert caught.value.provider == name
    assert_no_secret(caught.value)


@pytest.mark.parametrize("name", PROVIDERS)
@pytest.mark.parametrize(
    ("status", "problem"), [(429, "rate limited"), (500, "provider failed"), (503, "failed")]
)
async def test_provider_faults_become_embedding_errors(
    name: str, status: int, problem: str
) -> None:
    async with provider(name) as (fake, embedder):
        fake.fail_next(status)
        with pytest.raises(EmbeddingError) as caught:
            await embedder.embed(TEXTS)
    assert caught.value.status == status
    assert problem in str(caught.value)
    assert_no_secret(caught.value)


def assert_no_secret(error: BaseException) -> None:
    for part in (str(error), repr(error), repr(error.__cause__), repr(error.__context__)):
        assert "SECRET" not in part
    assert error.__cause__ is None  # a traceback shows no SDK error (they may quote the key)
    assert error.__context__ is None


@pytest.mark.parametrize("name", ["openai", "cloudflare"])
async def test_a_passing_fault_is_retried(name: str) -> None:
    async with provider(name, retries=1) as (fake, embedder):
        fake.fail_next(503)
        vectors = await embedder.embed(["retry me"])
    assert vectors[0] == pytest.approx(fake.vector("retry me"), abs=1e-6)
    assert len(fake.seen) == 2


async def test_an_unreachable_provider_is_an_error_without_a_status() -> None:
    embedder = CloudflareEmbedder(KEY, "acct-1", "http://127.0.0.1:9", None, retries=0)
    try:
        with pytest.raises(EmbeddingError) as caught:
            await embedder.embed(["x"])
    finally:
        await embedder.aclose()
    assert caught.value.status is None
    assert "could not be reached" in str(caught.value)


async def test_a_malformed_answer_is_an_error() -> None:
    async def short(fake: Fake, body: object) -> web.Response:
        return cloudflare.envelope({"shape": [1, 2], "data": [[0.1, 0.2]]})

    fake = Fake(key=KEY)
    app = cloudflare.create_app(fake)
    cloudflare.add_model(app, "@cf/short", short)
    async with serve(app) as url:
        embedder = CloudflareEmbedder(KEY, "acct-1", url, "@cf/short", retries=0)
        try:
            with pytest.raises(EmbeddingError, match="expected 2 vectors"):
                await embedder.embed(["one", "two"])
        finally:
            await embedder.aclose()


def settings(tmp_path: Path, embedder: str, **secrets: str) -> Settings:
    overrides: dict[str, Any] = {k: SecretStr(v) for k, v in secrets.items()}
    if embedder == "cloudflare":
        overrides["providers"] = {"cloudflare_account_id": "acct-1"}
    return Settings.load(data_dir=tmp_path, memory={"embedder": embedder}, **overrides)


def test_the_default_is_the_local_embedder(tmp_path: Path) -> None:
    built = build_embedder(Settings.load(data_dir=tmp_path, memory={"dimensions": 64}))
    assert isinstance(built, LocalEmbedder)
    assert built.dimensions == 64


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("openai", "openai_api_key"),
        ("gemini", "gemini_api_key"),
        ("cloudflare", "cloudflare_api_token"),
    ],
)
def test_a_provider_without_its_key_is_a_config_error(tmp_path: Path, name: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_embedder(settings(tmp_path, name))
    assert caught.value.key == key


def test_cloudflare_needs_an_account(tmp_path: Path) -> None:
    configured = Settings.load(
        data_dir=tmp_path,
        memory={"embedder": "cloudflare"},
        cloudflare_api_token=SecretStr(KEY),
    )
    with pytest.raises(ConfigError, match="cloudflare_account_id"):
        build_embedder(configured)


@pytest.mark.parametrize(
    ("name", "key", "kind"),
    [
        ("openai", "openai_api_key", OpenAIEmbedder),
        ("gemini", "gemini_api_key", GeminiEmbedder),
        ("cloudflare", "cloudflare_api_token", CloudflareEmbedder),
    ],
)
async def test_settings_build_each_provider(
    tmp_path: Path, name: str, key: str, kind: type[ProviderEmbedder]
) -> None:
    opened: AbstractAsyncContextManager[object] = open_embedder(
        settings(tmp_path, name, **{key: KEY})
    )
    async with opened as embedder:
        assert isinstance(embedder, kind)


def test_base_urls_must_be_http(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"providers\.openai_base_url"):
        Settings.load(data_dir=tmp_path, providers={"openai_base_url": "ftp://x"})
