"""A fake OpenAI API: ``POST /v1/embeddings`` as the official SDK calls it.

Base URL for the SDK: ``<served url>/v1``. The SDK asks for ``encoding_format=base64`` by
default (little-endian float32, base64), and for ``float`` when told; both are answered.
Errors are OpenAI's ``{"error": {"message", "type", "param", "code"}}``; a wrong key's
message quotes the key it got, as OpenAI's does (partly), so leaks would show in tests.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from aiohttp import web

from tests.support.fakes.server import FAKE, Fake, app_of

ERRORS = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("invalid_request_error", "invalid_api_key"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}


def error(status: int, message: str) -> web.Response:
    kind, code = ERRORS.get(status, ("server_error", None))
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return web.json_response(body, status=status)


def refusal(request: web.Request, fake: Fake) -> web.Response | None:
    """The answer to a request that is not let through (injected failure or bad key)."""
    status = fake.next_failure()
    if status is not None:
        return error(status, f"fake failure {status}")
    given = request.headers.get("Authorization", "")
    if given != f"Bearer {fake.key}":
        return error(401, f"Incorrect API key provided: {given.removeprefix('Bearer ')}.")
    return None


def encoded(vector: list[float], encoding: str) -> Any:
    if encoding == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
    return vector


async def embeddings(request: web.Request) -> web.Response:
    fake = request.app[FAKE]
    body = await fake.record(request)
    refused = refusal(request, fake)
    if refused is not None:
        return refused
    if not isinstance(body, dict) or "input" not in body or "model" not in body:
        return error(400, "'input' and 'model' are required")
    texts = [body["input"]] if isinstance(body["input"], str) else list(body["input"])
    encoding = body.get("encoding_format", "float")
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": encoded(fake.vector(t, body.get("dimensions")), encoding),
        }
        for i, t in enumerate(texts)
    ]
    tokens = sum(len(t.split()) for t in texts)
    return web.json_response(
        {
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def add_embeddings(app: web.Application) -> None:
    app.router.add_post("/v1/embeddings", embeddings)


def create_app(fake: Fake) -> web.Application:
    from tests.support.fakes.openai_generate import add_generation  # it imports this module

    app = app_of(fake)
    add_embeddings(app)
    add_generation(app)
    return app
