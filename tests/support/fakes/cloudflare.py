"""A fake Cloudflare Workers AI: ``POST /client/v4/accounts/{account}/ai/run/{model}``.

Embedding models take ``{"text": [...]}`` and answer
``{"result": {"shape": [n, d], "data": [[...]]}, "success": true, "errors": [], ...}``.
Models are added by name (``add_model``), so text and image models can join the embedding
one. Errors are Cloudflare's envelope with ``success: false`` and ``errors``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from tests.support.fakes.server import FAKE, Fake, app_of

EMBEDDING_MODEL = "@cf/baai/bge-base-en-v1.5"
Model = Callable[[Fake, Any], Awaitable[web.Response]]
MODELS = web.AppKey("cloudflare_models", dict[str, Model])
CODES = {400: 5006, 401: 10000, 404: 7003, 429: 3036, 500: 3043, 503: 3040}


def envelope(result: Any, status: int = 200, message: str | None = None) -> web.Response:
    errors = [{"code": CODES.get(status, 3000), "message": message}] if message else []
    body = {"result": result, "success": not errors, "errors": errors, "messages": []}
    return web.json_response(body, status=status)


def refusal(request: web.Request, fake: Fake) -> web.Response | None:
    status = fake.next_failure()
    if status is not None:
        return envelope(None, status, f"fake failure {status}")
    if request.headers.get("Authorization") != f"Bearer {fake.key}":
        return envelope(None, 401, "Authentication error")
    if request.match_info["account"] != fake.account:
        return envelope(None, 404, "No route for that URI")
    return None


async def run(request: web.Request) -> web.Response:
    fake = request.app[FAKE]
    body = await fake.record(request)
    model = request.app[MODELS].get(request.match_info["model"])
    if model is None:
        return envelope(None, 400, f"No such model {request.match_info['model']}")
    refused = refusal(request, fake)
    return refused if refused is not None else await model(fake, body)


async def embed(fake: Fake, body: Any) -> web.Response:
    if not isinstance(body, dict) or "text" not in body:
        return envelope(None, 400, "Type mismatch of '/text'")
    texts = [body["text"]] if isinstance(body["text"], str) else list(body["text"])
    data = [fake.vector(t) for t in texts]
    return envelope({"shape": [len(data), fake.dimensions], "data": data, "pooling": "mean"})


def add_model(app: web.Application, name: str, model: Model) -> None:
    app[MODELS][name] = model


def add_embeddings(app: web.Application) -> None:
    add_model(app, EMBEDDING_MODEL, embed)


def create_app(fake: Fake) -> web.Application:
    from tests.support.fakes.cloudflare_generate import add_generation  # it imports this module

    app = app_of(fake)
    app[MODELS] = {}
    app.router.add_post("/client/v4/accounts/{account}/ai/run/{model:.+}", run)
    add_embeddings(app)
    add_generation(app)
    return app
