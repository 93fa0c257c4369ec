"""The fake Workers AI's generation models, on ``.../ai/run/{model}``:

- ``@cf/meta/llama-3.1-8b-instruct`` (and the other text models named in ``TEXT_MODELS``):
  ``{"messages", "stream": true, "max_tokens"}`` → events ``data: {"response": "..."}``,
  ``data: {"response": "", "usage": {...}}``, ``data: [DONE]``; without ``stream``, the
  usual envelope around ``{"response", "usage"}``.
- ``@cf/black-forest-labs/flux-1-schnell``: ``{"prompt", "steps"}`` only (the schema
  allows nothing else; ``steps`` at most 8) → ``{"result": {"image": "<base64>"}}``. The
  real model sends a JPEG; the fake sends a 1024x1024 PNG, which the client must sniff.
- ``@cf/stabilityai/stable-diffusion-xl-base-1.0``: ``{"prompt", "width", "height"}`` →
  the PNG bytes themselves (``image/png``).

Scripted by ``generation.script_of(app)``; Retry-After is sent as a header.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from tests.support.fakes.cloudflare import add_model, envelope
from tests.support.fakes.generation import (
    Fault,
    Script,
    count_tokens,
    events,
    png,
    reply,
    script_of,
    streamed,
)
from tests.support.fakes.server import Fake

TEXT_MODELS = ("@cf/meta/llama-3.1-8b-instruct", "@cf/meta/llama-3.1-8b-instruct-fp8-fast")
FLUX = "@cf/black-forest-labs/flux-1-schnell"
SDXL = "@cf/stabilityai/stable-diffusion-xl-base-1.0"
FLUX_MAX_STEPS = 8
Handler = Callable[[Script, Fault | None, Any], Awaitable[web.Response]]
Model = Callable[[Fake, Any], Awaitable[web.Response]]


def fault_response(fault: Fault) -> web.Response:
    response = envelope(None, fault.code, f"fake failure {fault.code}")
    if fault.retry_after is not None:
        response.headers["Retry-After"] = f"{fault.retry_after:g}"
    return response


def scripted(
    app: web.Application, handler: Handler
) -> Callable[[Fake, Any], Awaitable[web.Response]]:
    """A model of the fake that waits, fails or answers as the app's script says."""
    script = script_of(app)

    async def model(fake: Fake, body: Any) -> web.Response:
        fault = script.next_fault()
        await script.wait(fault)
        if fault is not None and fault.kind == "status":
            return fault_response(fault)
        return await handler(script, fault, body)

    return model


def _texts(body: Any) -> tuple[str, list[str]] | None:
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list) or not messages:
        return None
    texts = [m.get("content") if isinstance(m, dict) else None for m in messages]
    strings = [t for t in texts if isinstance(t, str)]
    return (strings[-1], strings) if len(strings) == len(texts) else None


async def text_model(script: Script, fault: Fault | None, body: Any) -> web.Response:
    found = _texts(body)
    if found is None:
        return envelope(None, 400, "Type mismatch of '/messages'")
    prompt, texts = found
    chunks, _ = reply(prompt, body.get("max_tokens", 256))
    usage = {
        "prompt_tokens": count_tokens(*texts),
        "completion_tokens": len(chunks),
        "total_tokens": count_tokens(*texts) + len(chunks),
    }
    if not body.get("stream"):
        return envelope({"response": "".join(chunks), "usage": usage})
    items = [f"data: {json.dumps({'response': c, 'p': 'abcdef'})}\n\n".encode() for c in chunks]
    items.append(f"data: {json.dumps({'response': '', 'usage': usage})}\n\n".encode())
    return streamed(events(items, fault, b"data: [DONE]\n\n"))


async def flux(script: Script, fault: Fault | None, body: Any) -> web.Response:
    if not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
        return envelope(None, 400, "Type mismatch of '/prompt'")
    extra = set(body) - {"prompt", "steps"}
    if extra:
        return envelope(None, 400, f"additionalProperties: {sorted(extra)}")
    steps = body.get("steps", 4)
    if not isinstance(steps, int) or not 1 <= steps <= FLUX_MAX_STEPS:
        return envelope(None, 400, f"steps must be at most {FLUX_MAX_STEPS}")
    image = base64.b64encode(png(1024, 1024, body["prompt"])).decode()
    if fault is not None and fault.kind == "malformed":
        image = "%% not base64 %%"
    response = envelope({"image": image})
    if fault is not None and fault.kind == "truncated":
        assert isinstance(response.body, bytes)
        response.body = response.body[: len(response.body) // 2]
    return response


async def stable_diffusion(script: Script, fault: Fault | None, body: Any) -> web.Response:
    if not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
        return envelope(None, 400, "Type mismatch of '/prompt'")
    width, height = body.get("width", 1024), body.get("height", 1024)
    data = png(width, height, body["prompt"])
    if fault is not None and fault.kind in ("malformed", "truncated"):
        data = data[: len(data) // 2]
    return web.Response(body=data, content_type="image/png")


def add_generation(app: web.Application) -> None:
    for name in TEXT_MODELS:
        add_model(app, name, scripted(app, text_model))
    add_model(app, FLUX, scripted(app, flux))
    add_model(app, SDXL, scripted(app, stable_diffusion))
