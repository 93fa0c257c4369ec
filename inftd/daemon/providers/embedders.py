"""The daemon's embedder, built once from ``settings.memory``; the providers' embedders.

``local`` (the default) is the offline hashing embedding of ``inftd.agents.embeddings``.
The others call a provider: OpenAI through the official SDK, Gemini through
``google-genai``, Cloudflare Workers AI through its REST API with aiohttp. Each one's
faults become one ``EmbeddingError`` naming the provider and the HTTP status, never the
key (the SDKs' own errors can quote part of it, so they are not chained).
"""

from __future__ import annotations

import asyncio
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import openai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from inftd.agents.embeddings import Embedder, LocalEmbedder
from inftd.daemon.config import Settings
from inftd.daemon.errors import ConfigError, EmbeddingError
from inftd.daemon.providers.gemini import GenaiClient

log = logging.getLogger(__name__)

OPENAI_MODEL = "text-embedding-3-small"  # 1536 dimensions, the cheapest OpenAI embedding
GEMINI_MODEL = "gemini-embedding-001"  # Gemini's current text embedding model
CLOUDFLARE_MODEL = "@cf/baai/bge-base-en-v1.5"  # 768 dimensions, on Workers AI
BATCH = 96  # texts per request: under Gemini's and Workers AI's limit of 100
TIMEOUT = 30.0  # seconds per request
RETRIES = 2  # further attempts after a 429, a 5xx or no answer
RETRY_BASE = 0.5  # seconds before the first retry (Workers AI; the SDKs have their own)
RETRY_MAX = 8.0  # longest wait between retries


def problem_of(status: int | None) -> str:
    """What a status means, in words that never quote the provider (its text may hold the key)."""
    if status in (401, 403):
        return "the credentials were refused (check the API key or token)"
    if status == 429:
        return "rate limited or out of quota"
    if status is None:
        return "the provider could not be reached"
    if status >= 500:
        return "the provider failed"
    return "the provider refused the request"


def check_vectors(provider: str, vectors: Any, count: int) -> list[list[float]]:
    """``count`` vectors of one length with finite numbers, or ``EmbeddingError``."""
    if not isinstance(vectors, list) or len(vectors) != count:
        raise EmbeddingError(provider, 200, f"expected {count} vectors in the answer")
    lengths = {len(v) if isinstance(v, list) else -1 for v in vectors}
    if len(lengths) > 1 or lengths & {-1, 0}:
        raise EmbeddingError(provider, 200, "the answer's vectors are not of one length")
    for vector in vectors:
        if not all(isinstance(x, int | float) and math.isfinite(x) for x in vector):
            raise EmbeddingError(provider, 200, "the answer's vectors hold non-numbers")
    return [[float(x) for x in v] for v in vectors]


class ProviderEmbedder(ABC):
    """An embedder behind a remote API: batches the texts, checks the answers."""

    provider: str
    name: str

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        try:
            for start in range(0, len(texts), BATCH):
                batch = list(texts[start : start + BATCH])
                vectors += check_vectors(self.provider, await self._embed(batch), len(batch))
        except EmbeddingError as exc:
            log.warning("%s (%s, %d texts)", exc, self.name, len(texts))
            raise
        return vectors

    @abstractmethod
    async def _embed(self, texts: list[str]) -> Any:
        """The raw vectors of one batch."""

    @abstractmethod
    async def aclose(self) -> None: ...


class OpenAIEmbedder(ProviderEmbedder):
    provider = "openai"

    def __init__(
        self, api_key: str, base_url: str | None, model: str | None, retries: int = RETRIES
    ) -> None:
        self.model = model or OPENAI_MODEL
        self.name = f"openai/{self.model}"
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, max_retries=retries, timeout=TIMEOUT
        )

    async def _embed(self, texts: list[str]) -> Any:
        failure: EmbeddingError | None = None
        try:
            answer = await self._client.embeddings.create(input=texts, model=self.model)
        except openai.APIStatusError as exc:
            failure = EmbeddingError(self.provider, exc.status_code, problem_of(exc.status_code))
        except openai.APIError:
            failure = EmbeddingError(self.provider, None, problem_of(None))
        if failure is not None:
            raise failure  # outside the except: the SDK's error (it may quote the key) is dropped
        return [item.embedding for item in sorted(answer.data, key=lambda item: item.index)]

    async def aclose(self) -> None:
        await self._client.close()


class GeminiEmbedder(ProviderEmbedder):
    """Gemini through ``google-genai``, on an aiohttp session of ours made in the loop."""

    provider = "gemini"

    def __init__(
        self, api_key: str, base_url: str | None, model: str | None, retries: int = RETRIES
    ) -> None:
        self.model = model or GEMINI_MODEL
        self.name = f"gemini/{self.model}"
        retry = genai_types.HttpRetryOptions(attempts=retries + 1, max_delay=RETRY_MAX)
        self._client = GenaiClient(api_key, base_url, retry, timeout_ms=int(TIMEOUT * 1000))

    def _models(self) -> Any:
        return self._client.models()

    async def _embed(self, texts: list[str]) -> Any:
        failure: EmbeddingError | None = None
        try:
            answer = await self._models().embed_content(model=self.model, contents=texts)
        except genai_errors.APIError as exc:
            # Gemini answers a bad key with 400 API_KEY_INVALID, not 401.
            bad_key = exc.code == 400 and "API_KEY_INVALID" in str(exc.details)
            problem = problem_of(401 if bad_key else exc.code)
            failure = EmbeddingError(self.provider, exc.code, problem)
        except (aiohttp.ClientError, OSError, TimeoutError):
            failure = EmbeddingError(self.provider, None, problem_of(None))
        if failure is not None:
            raise failure  # outside the except: the SDK's error (it may quote the key) is dropped
        return [e.values for e in answer.embeddings or []]

    async def aclose(self) -> None:
        await self._client.close()


class CloudflareEmbedder(ProviderEmbedder):
    """Workers AI: ``POST .../accounts/{account}/ai/run/{model}`` with ``{"text": [...]}``."""

    provider = "cloudflare"

    def __init__(
        self,
        api_token: str,
        account_id: str,
        base_url: str,
        model: str | None,
        retries: int = RETRIES,
        retry_base: float = RETRY_BASE,
    ) -> None:
        self.model = model or CLOUDFLARE_MODEL
        self.name = f"cloudflare/{self.model}"
        self._url = f"{base_url.rstrip('/')}/client/v4/accounts/{account_id}/ai/run/{self.model}"
        self._headers = {"Authorization": f"Bearer {api_token}"}
        self._retries = retries
        self._retry_base = retry_base
        self._session: aiohttp.ClientSession | None = None  # made on first use, in the loop

    async def _embed(self, texts: list[str]) -> Any:
        for attempt in range(self._retries + 1):
            status, body = await self._post({"text": texts})
            if status == 200 or not _retryable(status) or attempt == self._retries:
                break
            await asyncio.sleep(min(self._retry_base * 2**attempt, RETRY_MAX))
        if status != 200:
            raise EmbeddingError(self.provider, status, problem_of(status))
        if not isinstance(body, dict) or body.get("success") is not True:
            raise EmbeddingError(self.provider, status, "the answer does not report success")
        result = body.get("result")
        return result.get("data") if isinstance(result, dict) else None

    async def _post(self, payload: dict[str, Any]) -> tuple[int | None, Any]:
        """The status and JSON body of one attempt; status None if there was no answer."""
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=TIMEOUT)
            self._session = aiohttp.ClientSession(timeout=timeout, headers=self._headers)
        try:
            async with self._session.post(self._url, json=payload) as response:
                if response.status != 200:
                    return response.status, None
                return 200, await response.json(content_type=None)
        except ValueError:  # not JSON
            raise EmbeddingError(self.provider, 200, "the answer is not JSON") from None
        except (aiohttp.ClientError, OSError, TimeoutError):
            return None, None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _retryable(status: int | None) -> bool:
    return status is None or status == 429 or status >= 500


def _secret(settings: Settings, key: str) -> str:
    value = getattr(settings, key)
    if value is None or not value.get_secret_value():
        embedder = settings.memory.embedder
        raise ConfigError(key, f"memory.embedder is {embedder!r}: set INFTD_{key.upper()}")
    return str(value.get_secret_value())


def build_embedder(settings: Settings) -> Embedder:
    """The embedder ``settings.memory`` names; ``ConfigError`` if its key is missing."""
    memory, providers = settings.memory, settings.providers
    match memory.embedder:
        case "openai":
            key = _secret(settings, "openai_api_key")
            return OpenAIEmbedder(key, providers.openai_base_url, memory.model)
        case "gemini":
            key = _secret(settings, "gemini_api_key")
            return GeminiEmbedder(key, providers.gemini_base_url, memory.model)
        case "cloudflare":
            token = _secret(settings, "cloudflare_api_token")
            account = providers.cloudflare_account_id
            if not account:
                raise ConfigError("providers.cloudflare_account_id", "needed for Workers AI")
            return CloudflareEmbedder(token, account, providers.cloudflare_base_url, memory.model)
        case _:
            return LocalEmbedder(memory.dimensions)


async def close_embedder(embedder: Embedder) -> None:
    """Close the HTTP clients of a provider's embedder (the local one has none)."""
    if isinstance(embedder, ProviderEmbedder):
        await embedder.aclose()


@asynccontextmanager
async def open_embedder(settings: Settings) -> AsyncIterator[Embedder]:
    """The configured embedder, closed on exit."""
    embedder = build_embedder(settings)
    try:
        yield embedder
    finally:
        await close_embedder(embedder)
