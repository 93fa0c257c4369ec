"""Google Gemini through ``google-genai`` (``genai.Client(...).aio``).

Text: ``models.generate_content_stream``; the last chunk's ``usage_metadata`` holds the
token counts (thinking tokens are billed as output). Images: ``models.generate_content``
with ``response_modalities=["IMAGE"]`` on a Gemini image model, which answers with the
image inline; the requested size becomes an aspect ratio and a size class (1K, 2K, 4K).

The SDK runs on an aiohttp session of ours, made in the running loop on first use. Its
own timeout covers a whole call, so it is left unset and ``timeout`` is applied here to
each step instead (the call's start and every chunk after it), ``image_timeout`` to an
image call. Its retries are off
(one attempt) and so is automatic continuation: the router decides what happens next.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from inftd.daemon.providers.base import (
    Capability,
    FinishReason,
    ImageRequest,
    ImageResult,
    ProviderError,
    TextRequest,
    TextResult,
    estimate_tokens,
    image_type,
    next_within,
    retry_after_of,
    status_error,
)
from inftd.daemon.providers.prices import GEMINI, PriceTable

log = logging.getLogger(__name__)

NAME = "gemini"
TEXT_MODEL = "gemini-3.1-flash-lite"  # the cheapest Gemini 3 text model
IMAGE_MODEL = "gemini-3.1-flash-image"
RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "9:16", "16:9", "21:9")  # what image models take
SIZE_CLASSES = ((1024, "1K"), (2048, "2K"), (4096, "4K"))  # longest side -> image_size
REFUSALS = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "MODEL_ARMOR",
    }
)
RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


class GenaiClient:
    """A ``genai.Client`` over an aiohttp session of its own, both made on first use (in
    the event loop); the provider and the Gemini embedder differ only in their options."""

    def __init__(
        self,
        api_key: str,
        base_url: str | None,
        retry: types.HttpRetryOptions,
        timeout_ms: int | None = None,
    ) -> None:
        self._api_key = api_key
        self._options = {"base_url": base_url, "retry_options": retry, "timeout": timeout_ms}
        self._session: aiohttp.ClientSession | None = None
        self._client: genai.Client | None = None

    def models(self) -> Any:
        if self._client is None:
            self._session = aiohttp.ClientSession()
            options = types.HttpOptions(**self._options, aiohttp_client=self._session)
            self._client = genai.Client(api_key=self._api_key, http_options=options)
        return self._client.aio.models

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aio.aclose()
            self._client = None
        if self._session is not None:
            await self._session.close()
            self._session = None


class GeminiProvider:
    name = NAME
    capabilities: frozenset[Capability] = frozenset({"text", "image", "streaming"})
    prices: PriceTable = GEMINI

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        timeout: float = 60.0,
        image_timeout: float = 180.0,
        text_model: str | None = None,
        image_model: str | None = None,
    ) -> None:
        self.timeout = timeout
        self.image_timeout = image_timeout
        self.text_model: str | None = text_model or TEXT_MODEL
        self.image_model: str | None = image_model or IMAGE_MODEL
        self._client = GenaiClient(api_key, base_url, types.HttpRetryOptions(attempts=1))

    def _models(self) -> Any:
        return self._client.models()

    async def stream_text(self, request: TextRequest) -> AsyncIterator[str | TextResult]:
        failure: ProviderError | None = None
        try:
            async for item in self._stream(request):
                yield item
        except (genai_errors.APIError, aiohttp.ClientError, OSError, ValueError) as exc:
            failure = error_of(exc)
        if failure is not None:  # raised here, so the SDK's error (it may quote the key) is dropped
            log.debug("gemini text failed: %s", failure)
            raise failure

    async def _stream(self, request: TextRequest) -> AsyncIterator[str | TextResult]:
        model = request.model or self.text_model or TEXT_MODEL
        config = types.GenerateContentConfig(
            system_instruction=request.system,
            max_output_tokens=request.max_tokens,
            temperature=request.temperature,
            automatic_continuation=False,
        )
        chunks = await self._models().generate_content_stream(
            model=model, contents=request.prompt, config=config
        )
        state = _StreamState(model)
        try:
            while True:
                try:
                    chunk = await next_within(chunks, self.timeout)
                except StopAsyncIteration:
                    break
                text = state.take(chunk)
                if text:
                    yield text
        finally:
            await chunks.aclose()  # releases the connection if we stop early
        yield self._result(request, state)

    def _result(self, request: TextRequest, state: _StreamState) -> TextResult:
        if state.finish is None:
            raise ProviderError(NAME, "bad_response", "the stream ended before the answer did")
        if state.finish in REFUSALS:
            raise ProviderError(NAME, "refused", "the answer was blocked by safety settings")
        text = "".join(state.parts)
        if state.tokens is None:
            tokens = (estimate_tokens(request.system, request.prompt), estimate_tokens(text))
            usage = self.prices.text_usage(state.model, *tokens, estimated=True)
        else:
            usage = self.prices.text_usage(state.model, *state.tokens)
        finish: FinishReason = "length" if state.finish == "MAX_TOKENS" else "stop"
        return TextResult(text, NAME, state.model, usage, finish)

    async def image(self, request: ImageRequest) -> ImageResult:
        model = request.model or self.image_model or IMAGE_MODEL
        ratio, size_class, side = image_shape(*request.dimensions)
        config = types.GenerateContentConfig(
            response_modalities=["IMAGE"],
            image_config=types.ImageConfig(aspect_ratio=ratio, image_size=size_class),
            automatic_continuation=False,
        )
        failure: ProviderError | None = None
        try:
            async with asyncio.timeout(self.image_timeout):
                answer = await self._models().generate_content(
                    model=model, contents=request.prompt, config=config
                )
        except (genai_errors.APIError, aiohttp.ClientError, OSError, ValueError) as exc:
            failure = error_of(exc)
        if failure is not None:
            log.debug("gemini image failed: %s", failure)
            raise failure
        data, content_type = inline_image(answer)
        prompt_tokens = getattr(answer.usage_metadata, "prompt_token_count", None) or 0
        usage = self.prices.image_usage(model, (side, side), request.quality, prompt_tokens)
        return ImageResult(data, content_type, NAME, model, usage)

    async def close(self) -> None:
        await self._client.close()


class _StreamState:
    """What the chunks of one streamed answer said so far."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.parts: list[str] = []
        self.finish: str | None = None
        self.tokens: tuple[int, int] | None = None

    def take(self, chunk: types.GenerateContentResponse) -> str:
        """Notes the chunk; its text (thoughts left out), empty if none."""
        feedback = chunk.prompt_feedback
        if feedback is not None and feedback.block_reason is not None:
            raise ProviderError(NAME, "refused", "the prompt was blocked by safety settings")
        if chunk.model_version:
            self.model = chunk.model_version
        meta = chunk.usage_metadata
        if meta is not None and meta.prompt_token_count is not None:
            output = (meta.candidates_token_count or 0) + (meta.thoughts_token_count or 0)
            self.tokens = (meta.prompt_token_count, output)
        candidate = chunk.candidates[0] if chunk.candidates else None
        if candidate is None:
            return ""
        if candidate.finish_reason is not None:
            self.finish = str(candidate.finish_reason.value)
        parts = candidate.content.parts if candidate.content else None
        text = "".join(p.text for p in parts or [] if p.text and not p.thought)
        if text:
            self.parts.append(text)
        return text


def image_shape(width: int, height: int) -> tuple[str, str, int]:
    """The aspect ratio and size class closest to a size, and the side the price goes by."""
    wanted = math.log(width / height)
    ratio = min(RATIOS, key=lambda r: abs(math.log(_ratio(r)) - wanted))
    longest = max(width, height)
    side, size_class = next(((s, c) for s, c in SIZE_CLASSES if longest <= s), SIZE_CLASSES[-1])
    return ratio, size_class, side


def _ratio(text: str) -> float:
    w, h = text.split(":")
    return int(w) / int(h)


def inline_image(answer: types.GenerateContentResponse) -> tuple[bytes, str]:
    """The first inline image of an answer, or why there is none."""
    feedback = answer.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        raise ProviderError(NAME, "refused", "the prompt was blocked by safety settings")
    candidate = answer.candidates[0] if answer.candidates else None
    parts = candidate.content.parts if candidate and candidate.content else None
    for part in parts or []:
        blob = part.inline_data
        if blob is not None and blob.data:
            content_type = image_type(blob.data)
            if content_type is None:
                raise ProviderError(
                    NAME, "bad_response", "the image is not a whole PNG, JPEG or WebP"
                )
            return blob.data, content_type
    reason = candidate.finish_reason.value if candidate and candidate.finish_reason else None
    if reason in REFUSALS:
        raise ProviderError(NAME, "refused", "the image was blocked by safety settings")
    raise ProviderError(NAME, "bad_response", "the answer holds no image")


def error_of(exc: Exception) -> ProviderError:
    """The ``ProviderError`` for what the SDK or the connection raised, from its type and
    status only (Gemini's messages can quote the key)."""
    if isinstance(exc, genai_errors.APIError):
        if not isinstance(exc.code, int):
            return ProviderError(NAME, "unavailable", "the provider failed without a status")
        details = exc.details if isinstance(exc.details, Mapping) else {}
        if exc.code == 400 and "API_KEY_INVALID" in str(details):
            return ProviderError(NAME, "auth", "the API key was refused", status=400)
        headers = getattr(exc.response, "headers", None)
        wait = retry_delay(details)
        if wait is None and isinstance(headers, Mapping):
            wait = retry_after_of(headers)
        return status_error(NAME, exc.code, wait)
    if isinstance(exc, TimeoutError):  # before OSError: TimeoutError is one
        return ProviderError(NAME, "timeout", "no progress within the timeout")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return ProviderError(NAME, "unavailable", "the connection failed or broke off")
    return ProviderError(NAME, "bad_response", "the answer is not what the API promises")


def retry_delay(details: Mapping[str, Any]) -> float | None:
    """Seconds from a google.rpc.RetryInfo in an error body (``"retryDelay": "31s"``)."""
    error = details.get("error", details)
    items = error.get("details") if isinstance(error, Mapping) else None
    for item in items if isinstance(items, list) else []:
        if isinstance(item, Mapping) and item.get("@type") == RETRY_INFO:
            found = re.fullmatch(r"(\d+(?:\.\d+)?)s", str(item.get("retryDelay", "")))
            if found:
                return float(found.group(1))
    return None
