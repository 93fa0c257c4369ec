"""OpenAI through the official SDK (``AsyncOpenAI``).

Text: ``chat.completions.create(stream=True)`` with ``stream_options.include_usage``, so the
last event carries the token counts. Images: ``images.generate`` on a GPT image model,
which answers in base64; the requested size becomes the nearest one the models offer.
The SDK does not retry (``max_retries=0``): retrying, and choosing another provider, is
the router's job. Its ``timeout`` is per operation (connect, each read), which is this
interface's "seconds without progress".
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal

import openai
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

from inftd.daemon.providers.base import (
    Capability,
    FinishReason,
    ImageRequest,
    ImageResult,
    ProviderError,
    Quality,
    TextRequest,
    TextResult,
    b64decoded,
    estimate_tokens,
    image_type,
    retry_after_of,
    status_error,
)
from inftd.daemon.providers.prices import OPENAI, PriceTable

log = logging.getLogger(__name__)

NAME = "openai"
TEXT_MODEL = "gpt-5.4-mini"  # the default; cheap, and good enough for most requests
IMAGE_MODEL = "gpt-image-1-mini"  # the cheapest GPT image model
SIZES = ((1024, 1024), (1536, 1024), (1024, 1536))  # what GPT image models draw
QUALITY: Mapping[Quality, Literal["medium", "high"]] = {"standard": "medium", "high": "high"}
POLICY_CODES = frozenset({"content_policy_violation", "moderation_blocked"})


class OpenAIProvider:
    name = NAME
    capabilities: frozenset[Capability] = frozenset({"text", "image", "streaming"})
    prices: PriceTable = OPENAI
    tokens_field = "max_completion_tokens"  # OpenAI's; most other servers take max_tokens

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
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0
        )

    async def stream_text(self, request: TextRequest) -> AsyncIterator[str | TextResult]:
        failure: ProviderError | None = None
        try:
            async for item in self._stream(request):
                yield item
        except openai.APIError as exc:
            failure = error_of(exc, self.name)
        except ValueError:  # an event that is not JSON
            failure = ProviderError(self.name, "bad_response", "the stream held a malformed event")
        if failure is not None:  # raised here, so the SDK's error (it may quote the key) is dropped
            log.debug("%s text failed: %s", self.name, failure)
            raise failure

    async def _stream(self, request: TextRequest) -> AsyncIterator[str | TextResult]:
        model = request.model or self.text_model or TEXT_MODEL
        extra: dict[str, Any] = {self.tokens_field: request.max_tokens}
        if request.temperature is not None:
            extra["temperature"] = request.temperature
        stream = await self._client.chat.completions.create(
            model=model,
            messages=messages_of(request),
            stream=True,
            stream_options={"include_usage": True},
            **extra,
        )
        state = _StreamState(model)
        async with stream:
            async for chunk in stream:
                text = state.take(chunk)
                if text:
                    yield text
        yield self._result(request, state)

    def _result(self, request: TextRequest, state: _StreamState) -> TextResult:
        if state.finish is None:
            raise ProviderError(self.name, "bad_response", "the stream ended before the answer did")
        if state.finish == "content_filter":
            raise ProviderError(self.name, "refused", "the content filter stopped the answer")
        text = "".join(state.parts)
        if state.tokens is None:  # no usage event: estimate, and say so
            tokens = (estimate_tokens(request.system, request.prompt), estimate_tokens(text))
            usage = self.prices.text_usage(state.model, *tokens, estimated=True)
        else:
            usage = self.prices.text_usage(state.model, *state.tokens)
        finish: FinishReason = "length" if state.finish == "length" else "stop"
        return TextResult(text, self.name, state.model, usage, finish)

    async def image(self, request: ImageRequest) -> ImageResult:
        model = request.model or self.image_model or IMAGE_MODEL
        width, height = nearest_size(*request.dimensions)
        failure: ProviderError | None = None
        try:
            answer: Any = await self._client.images.generate(
                model=model,
                prompt=request.prompt,
                n=1,
                size=f"{width}x{height}",
                quality=QUALITY[request.quality],
                output_format="png",
                timeout=self.image_timeout,
            )
        except openai.APIError as exc:
            failure = error_of(exc, self.name)
        except ValueError:
            failure = ProviderError(self.name, "bad_response", "the answer is not JSON")
        if failure is not None:
            log.debug("%s image failed: %s", self.name, failure)
            raise failure
        data, content_type = decoded_image(answer, self.name)
        prompt_tokens = _int(getattr(getattr(answer, "usage", None), "input_tokens", None))
        usage = self.prices.image_usage(model, (width, height), request.quality, prompt_tokens or 0)
        return ImageResult(data, content_type, self.name, model, usage)

    async def close(self) -> None:
        await self._client.close()


class _StreamState:
    """What the chunks of one streamed completion said so far."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.parts: list[str] = []
        self.finish: str | None = None
        self.tokens: tuple[int, int] | None = None

    def take(self, chunk: ChatCompletionChunk) -> str:
        """Notes the chunk; its text (empty if none)."""
        if isinstance(chunk.model, str) and chunk.model:
            self.model = chunk.model  # the snapshot that answered
        usage = chunk.usage
        if usage is not None:
            prompt, completion = _int(usage.prompt_tokens), _int(usage.completion_tokens)
            if prompt is not None and completion is not None:
                self.tokens = (prompt, completion)
        text = ""
        for choice in chunk.choices or []:
            if choice.index != 0:
                continue
            if isinstance(choice.delta.content, str):
                text += choice.delta.content
            if choice.finish_reason:
                self.finish = choice.finish_reason
        if text:
            self.parts.append(text)
        return text


def messages_of(request: TextRequest) -> list[ChatCompletionMessageParam]:
    messages: list[ChatCompletionMessageParam] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    messages.append({"role": "user", "content": request.prompt})
    return messages


def nearest_size(width: int, height: int) -> tuple[int, int]:
    """The GPT image size closest in shape (aspect ratio) to the one asked for."""
    ratio = math.log(width / height)
    return min(SIZES, key=lambda size: abs(math.log(size[0] / size[1]) - ratio))


def decoded_image(answer: Any, name: str = NAME) -> tuple[bytes, str]:
    """The bytes and content type of the first image of an ``images.generate`` answer."""
    items = getattr(answer, "data", None)
    encoded = getattr(items[0], "b64_json", None) if isinstance(items, list) and items else None
    if not isinstance(encoded, str):
        raise ProviderError(name, "bad_response", "the answer holds no base64 image")
    data = b64decoded(encoded)
    if data is None:
        raise ProviderError(name, "bad_response", "the image is not valid base64")
    content_type = image_type(data)
    if content_type is None:
        raise ProviderError(name, "bad_response", "the image is not a whole PNG, JPEG or WebP")
    return data, content_type


def error_of(exc: openai.APIError, name: str = NAME) -> ProviderError:
    """The ``ProviderError`` for an SDK error, from its type, status and code only."""
    if isinstance(exc, openai.APITimeoutError):
        return ProviderError(name, "timeout", "no answer within the timeout")
    if isinstance(exc, openai.APIConnectionError):
        return ProviderError(name, "unavailable", "the connection failed or broke off")
    if isinstance(exc, openai.APIResponseValidationError):
        return ProviderError(name, "bad_response", "the answer does not match the API's schema")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status == 429 and exc.code == "insufficient_quota":
            return ProviderError(name, "rate_limited", "out of quota", status=429, transient=False)
        if exc.code in POLICY_CODES:
            return ProviderError(name, "refused", "declined by the content policy", status=status)
        return status_error(name, status, retry_after_of(exc.response.headers))
    return ProviderError(name, "unavailable", "the stream reported an error")


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and value >= 0 else None
