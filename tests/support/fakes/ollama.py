"""A fake of Ollama's OpenAI-compatible API (``/v1``), as documented at
docs.ollama.com/api/openai-compatibility: the fields it reads, its chunk and error shapes.

It takes only the request fields Ollama lists (an unknown one, such as OpenAI's
``max_completion_tokens``, is answered 400 here, where Ollama would quietly ignore it: the
test of sending the common denominator), ignores the key as Ollama does, knows the models
it was given (404 for another, with Ollama's "try pulling it first"), and streams
``chat.completion.chunk`` events with ``system_fingerprint: fp_ollama`` and, when asked,
a last chunk with the usage.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from tests.support.fakes.generation import count_tokens, events, reply, streamed
from tests.support.fakes.server import Fake, Seen

FIELDS = frozenset(
    {
        "model", "messages", "frequency_penalty", "presence_penalty", "response_format",
        "seed", "stop", "stream", "stream_options", "temperature", "top_p", "max_tokens",
        "tools", "tool_choice", "reasoning_effort", "reasoning", "logit_bias", "user", "n",
    }
)  # fmt: skip
MODELS = web.AppKey("models", frozenset[str])
FAKE = web.AppKey("fake", Fake)


def error(status: int, message: str) -> web.Response:
    body = {"error": {"message": message, "type": "api_error", "param": None, "code": None}}
    return web.json_response(body, status=status)


def chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-42",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_ollama",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


async def chat_completions(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    request.app[FAKE].seen.append(
        Seen(request.method, request.path, dict(request.headers), dict(request.query), body)
    )
    unknown = set(body) - FIELDS
    if unknown:
        return error(400, f"unknown fields (this fake is strict): {sorted(unknown)}")
    model = body.get("model")
    if model not in request.app[MODELS]:
        return error(404, f'model "{model}" not found, try pulling it first')
    texts = [m["content"] for m in body["messages"]]
    chunks, cut = reply(texts[-1], body.get("max_tokens"))
    finish = "length" if cut else "stop"
    parts = [chunk(model, {"role": "assistant", "content": c}) for c in chunks]
    parts.append(chunk(model, {"role": "assistant", "content": ""}, finish))
    if (body.get("stream_options") or {}).get("include_usage"):
        usage = {
            "prompt_tokens": count_tokens(*texts),
            "completion_tokens": len(chunks),
            "total_tokens": count_tokens(*texts) + len(chunks),
        }
        parts.append({**chunk(model, {}), "choices": [], "usage": usage})
    items = [f"data: {json.dumps(p)}\n\n".encode() for p in parts]
    return streamed(events(items, None, b"data: [DONE]\n\n"))


def create_app(fake: Fake, models: frozenset[str]) -> web.Application:
    app = web.Application()
    app[FAKE] = fake
    app[MODELS] = models
    app.router.add_post("/v1/chat/completions", chat_completions)
    return app
