"""Cloudflare Workers AI over its REST API, with aiohttp.

``POST {base}/client/v4/accounts/{account}/ai/run/{model}`` with the API token as a
bearer token. Text models take ``{"messages": [...], "stream": true}`` and answer with
server-sent events ``data: {"response": "..."}``, a last event with ``usage``, then
``data: [DONE]``. FLUX.1 [schnell] takes ``{"prompt", "steps"}`` and answers
``{"result": {"image": "<base64 JPEG>"}, "success": true, ...}``; Stable Diffusion models
take ``{"prompt", "width", "height"}`` and answer with the PNG bytes themselves. Errors
come as ``{"success": false, "errors": [{"code", "message"}]}``, whose text is not used.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from inftd.daemon.providers.base import (
    Capability,
    FinishReason,
    ImageRequest,
    ImageResult,
    ProviderError,
    TextRequest,
    TextResult,
    b64decoded,
    estimate_tokens,
    image_type,
    retry_after_of,
    status_error,
)
from inftd.daemon.providers.prices import CLOUDFLARE, FLUX_STEPS, PriceTable

log = logging.getLogger(__name__)

NAME = "cloudflare"
BASE_URL = "https://api.cloudflare.com"
TEXT_MODEL = "@cf/meta/llama-3.1-8b-instruct"
IMAGE_MODEL = "@cf/black-forest-labs/flux-1-schnell"
FLUX_SIZE = (1024, 1024)  # FLUX.1 [schnell] on Workers AI draws this size only
FLUX_PROMPT_CHARS = 2048  # its longest prompt
DONE = "[DONE]"


class CloudflareProvider:
    name = NAME
    capabilities: frozenset[Capability] = frozenset({"text", "image", "streaming"})
    prices: PriceTable = CLOUDFLARE

    def __init__(
        self,
        api_token: str,
        account_id: str,
        *,
        base_url: str | None = None,  # None: Cloudflare's own API
        timeout: float = 60.0,
        image_timeout: float = 180.0,
        text_model: str | None = None,
        image_model: str | None = None,
    ) -> None:
        self.timeout = timeout
        self.image_timeout = image_timeout
        self.text_model: str | None = text_model or TEXT_MODEL
        self.image_model: str | None = image_model or IMAGE_MODEL
        root = (base_url or BASE_URL).rstrip("/")
        self._url = f"{root}/client/v4/accounts/{account_id}/ai/run/"
        self._headers = {"Authorization": f"Bearer {api_token}"}
        self._session: aiohttp.ClientSession | None = None  # made on first use, in the loop

    @asynccontextmanager
    async def _post(
        self, model: str, payload: dict[str, Any], read: float
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """POST to a model; ``read`` is the seconds each read may wait (per read, not per
        call: a long stream is fine as long as it keeps moving)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self._headers)
        timeout = aiohttp.ClientTimeout(sock_connect=self.timeout, sock_read=read)
        async with self._session.post(self._url + model, json=payload, timeout=timeout) as response:
            yield response

    async def stream_text(self, request: TextRequest) -> AsyncIterator[str | TextResult]:
        failure: ProviderError | None = None
        try:
            async for item in self._stream(request):
                yield item
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            failure = error_of(exc)
        if failure is not None:
            log.debug("cloudflare text failed: %s", failure)
            raise failure

    async def _stream(self, request: TextRequest) -> AsyncIterator[str | TextResult]:
        model = request.model or self.text_model or TEXT_MODEL
        payload: dict[str, Any] = {
            "messages": messages_of(request),
            "stream": True,
            "max_tokens": request.max_tokens,
        }
        if request.temperature is not None:
            payload["temperature"] = request.temperature
        parts: list[str] = []
        usage: Any = None
        done = False
        async with self._post(model, payload, self.timeout) as response:
            await _check(response)
            async for data in events(response.content):
                if data.strip() == DONE:
                    done = True
                    break
                event = json.loads(data)
                if not isinstance(event, dict):
                    raise ProviderError(NAME, "bad_response", "an event is not a JSON object")
                text = event.get("response")
                if isinstance(text, str) and text:
                    parts.append(text)
                    yield text
                usage = event.get("usage", usage)
        if not done:
            raise ProviderError(NAME, "bad_response", "the stream ended before [DONE]")
        yield self._result(request, model, "".join(parts), usage)

    def _result(self, request: TextRequest, model: str, text: str, usage: Any) -> TextResult:
        counts = _counts(usage)
        if counts is None:
            tokens = (estimate_tokens(request.system, request.prompt), estimate_tokens(text))
            priced = self.prices.text_usage(model, *tokens, estimated=True)
        else:
            priced = self.prices.text_usage(model, *counts)
        # Workers AI names no finish reason: a full budget means the answer was cut.
        finish: FinishReason = "length" if priced.output_tokens >= request.max_tokens else "stop"
        return TextResult(text, NAME, model, priced, finish)

    async def image(self, request: ImageRequest) -> ImageResult:
        model = request.model or self.image_model or IMAGE_MODEL
        flux = "flux" in model
        dimensions = FLUX_SIZE if flux else request.dimensions
        if flux:
            steps = FLUX_STEPS[request.quality]
            payload: dict[str, Any] = {"prompt": request.prompt[:FLUX_PROMPT_CHARS], "steps": steps}
        else:
            payload = {"prompt": request.prompt, "width": dimensions[0], "height": dimensions[1]}
        failure: ProviderError | None = None
        try:
            data = await self._image(model, payload)
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            failure = error_of(exc)
        if failure is not None:
            log.debug("cloudflare image failed: %s", failure)
            raise failure
        content_type = image_type(data)
        if content_type is None:
            raise ProviderError(NAME, "bad_response", "the image is not a whole PNG, JPEG or WebP")
        usage = self.prices.image_usage(model, dimensions, request.quality)
        return ImageResult(data, content_type, NAME, model, usage)

    async def _image(self, model: str, payload: dict[str, Any]) -> bytes:
        """The image bytes: the body itself (Stable Diffusion) or its base64 ``image``."""
        async with self._post(model, payload, self.image_timeout) as response:
            await _check(response)
            body = await response.read()
            if response.content_type.startswith("image/"):
                return body
        answer = json.loads(body)
        result = answer.get("result") if isinstance(answer, dict) else None
        encoded = result.get("image") if isinstance(result, dict) else None
        if not isinstance(encoded, str):
            raise ProviderError(NAME, "bad_response", "the answer holds no image")
        data = b64decoded(encoded)
        if data is None:
            raise ProviderError(NAME, "bad_response", "the image is not valid base64")
        return data

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _check(response: aiohttp.ClientResponse) -> None:
    """``ProviderError`` for an error status; the body's words are never used."""
    if response.status != 200:
        await response.read()  # lets the connection be reused
        raise status_error(NAME, response.status, retry_after_of(response.headers))


async def events(content: aiohttp.StreamReader) -> AsyncIterator[str]:
    """The data of each server-sent event of a body, as the body arrives."""
    pending = b""
    data: list[str] = []
    async for block in content.iter_any():
        *lines, pending = (pending + block).split(b"\n")
        for raw in lines:
            line = raw.rstrip(b"\r").decode()
            if line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
            elif not line and data:
                yield "\n".join(data)
                data = []
    tail = pending.rstrip(b"\r").decode()
    if tail.startswith("data:"):
        data.append(tail[5:].removeprefix(" "))
    if data:
        yield "\n".join(data)


def messages_of(request: TextRequest) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": request.system}] if request.system else []
    return [*messages, {"role": "user", "content": request.prompt}]


def _counts(usage: Any) -> tuple[int, int] | None:
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(completion, int) and min(prompt, completion) >= 0:
        return prompt, completion
    return None


def error_of(exc: Exception) -> ProviderError:
    if isinstance(exc, TimeoutError):  # before OSError and ClientError: it is both
        return ProviderError(NAME, "timeout", "no progress within the timeout")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return ProviderError(NAME, "unavailable", "the connection failed or broke off")
    return ProviderError(NAME, "bad_response", "the answer is not JSON")
