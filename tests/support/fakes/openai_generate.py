"""The fake OpenAI's generation routes: ``POST /v1/chat/completions`` (streamed as the SDK
asks, ``data: {chat.completion.chunk}`` events then ``data: [DONE]``, with a usage event
when ``stream_options.include_usage``) and ``POST /v1/images/generations`` (GPT image
models: ``{"data": [{"b64_json"}], "usage": {...}}``). The answering model is the asked
one with a snapshot date, as OpenAI names it. Scripted by ``generation.script_of(app)``.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from aiohttp import web

from tests.support.fakes.generation import (
    Fault,
    count_tokens,
    events,
    png,
    reply,
    script_of,
    streamed,
)
from tests.support.fakes.openai import error, refusal
from tests.support.fakes.server import FAKE

SNAPSHOT = "2026-03-17"  # the date the fake appends to a model name
IMAGE_SIZES = ("1024x1024", "1536x1024", "1024x1536", "auto")  # GPT image models
IMAGE_TOKENS = {"low": 272, "medium": 1056, "high": 4160, "auto": 1056}  # per 1024x1024 image


def fault_response(fault: Fault) -> web.Response:
    response = error(fault.code, f"fake failure {fault.code}")
    if fault.reason is not None:
        body = {"message": f"fake failure {fault.reason}", "type": fault.reason}
        response = web.json_response(
            {"error": {**body, "param": None, "code": fault.reason}}, status=fault.code
        )
    if fault.retry_after is not None:
        response.headers["Retry-After"] = f"{fault.retry_after:g}"
    return response


async def _admit(request: web.Request) -> tuple[Any, Fault | None, web.Response | None]:
    """Record the request, then any refusal, latency and fault before its answer."""
    fake = request.app[FAKE]
    script = script_of(request.app)
    body = await fake.record(request)
    refused = refusal(request, fake)
    if refused is not None:
        return body, None, refused
    fault = script.next_fault()
    await script.wait(fault)
    if fault is not None and fault.kind == "status":
        return body, fault, fault_response(fault)
    return body, fault, None


def _prompt_texts(body: Any) -> list[str] | None:
    """The message texts of a chat request; None if it is not one."""
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list) or not messages or not isinstance(body.get("model"), str):
        return None
    texts = [m.get("content") if isinstance(m, dict) else None for m in messages]
    return (
        [t for t in texts if isinstance(t, str)] if all(isinstance(t, str) for t in texts) else None
    )


def chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


async def chat_completions(request: web.Request) -> web.StreamResponse:
    body, fault, early = await _admit(request)
    if early is not None:
        return early
    texts = _prompt_texts(body)
    if texts is None:
        return error(400, "'model' and 'messages' (with string contents) are required")
    model = f"{body['model']}-{SNAPSHOT}"
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    chunks, cut = reply(texts[-1], limit)
    usage = {
        "prompt_tokens": count_tokens(*texts),
        "completion_tokens": len(chunks),
        "total_tokens": count_tokens(*texts) + len(chunks),
    }
    finish = "length" if cut else "stop"
    if not body.get("stream"):
        return _whole(model, "".join(chunks), finish, usage, fault)
    with_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    parts = [chunk(model, {"role": "assistant", "content": ""})]
    parts += [chunk(model, {"content": c}) for c in chunks]
    parts.append(chunk(model, {}, finish))
    if with_usage:
        parts = [{**p, "usage": None} for p in parts]
        parts.append({**chunk(model, {}), "choices": [], "usage": usage})
    items = [f"data: {json.dumps(p)}\n\n".encode() for p in parts]
    return streamed(events(items, fault, b"data: [DONE]\n\n"))


def _whole(
    model: str, text: str, finish: str, usage: dict[str, int], fault: Fault | None
) -> web.Response:
    answer = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "finish_reason": finish,
            }
        ],
        "usage": usage,
    }
    if fault is not None and fault.kind == "malformed":
        return web.Response(text='{"not json', content_type="application/json")
    return _json(answer, fault)


def _json(answer: dict[str, Any], fault: Fault | None) -> web.Response:
    text = json.dumps(answer)
    if fault is not None and fault.kind == "truncated":
        text = text[: len(text) // 2]
    return web.Response(text=text, content_type="application/json")


async def images_generations(request: web.Request) -> web.StreamResponse:
    body, fault, early = await _admit(request)
    if early is not None:
        return early
    if not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
        return error(400, "'prompt' is required")
    size = body.get("size", "auto")
    if size not in IMAGE_SIZES:
        return error(400, f"Invalid value: '{size}'. Supported values are: {IMAGE_SIZES}.")
    width, height = (1024, 1024) if size == "auto" else map(int, size.split("x"))
    quality = body.get("quality", "auto")
    encoded = base64.b64encode(png(width, height, body["prompt"])).decode()
    if fault is not None and fault.kind == "malformed":
        encoded = "%% not base64 %%"
    prompt_tokens = count_tokens(body["prompt"])
    image_tokens = IMAGE_TOKENS.get(quality, 1056) * width * height // (1024 * 1024)
    answer = {
        "created": int(time.time()),
        "data": [{"b64_json": encoded}],
        "background": "opaque",
        "output_format": body.get("output_format", "png"),
        "quality": quality,
        "size": f"{width}x{height}",
        "usage": {
            "input_tokens": prompt_tokens,
            "input_tokens_details": {"image_tokens": 0, "text_tokens": prompt_tokens},
            "output_tokens": image_tokens,
            "total_tokens": prompt_tokens + image_tokens,
        },
    }
    return _json(answer, fault)


def add_generation(app: web.Application) -> None:
    script_of(app)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/images/generations", images_generations)
