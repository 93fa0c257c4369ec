"""A fake Gemini API (generativelanguage): ``POST /{v1,v1beta}/models/{model}:{method}``.

``google-genai`` sends the key in ``x-goog-api-key`` and embeds with
``:batchEmbedContents`` (``{"requests": [{"model", "content": {"parts": [{"text"}]}}]}`` →
``{"embeddings": [{"values": [...]}]}``). Methods are added by name (``add_method``), so
``generateContent`` can join ``batchEmbedContents``. Errors are Google's
``{"error": {"code", "message", "status"}}``; a bad key is a 400 API_KEY_INVALID, as there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from tests.support.fakes.server import FAKE, Fake, app_of

Method = Callable[[web.Request, Fake, Any], Awaitable[web.Response]]
METHODS = web.AppKey("gemini_methods", dict[str, Method])
STATUS = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def error(status: int, message: str, reason: str | None = None) -> web.Response:
    body: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": STATUS.get(status, "UNKNOWN"),
    }
    if reason:
        body["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason}]
    return web.json_response({"error": body}, status=status)


def refusal(request: web.Request, fake: Fake) -> web.Response | None:
    status = fake.next_failure()
    if status is not None:
        return error(status, f"fake failure {status}")
    given = request.headers.get("x-goog-api-key") or request.query.get("key")
    if given is None:
        return error(403, "Method doesn't allow unregistered callers.")
    if given != fake.key:
        return error(400, f"API key not valid: {given}", reason="API_KEY_INVALID")
    return None


async def dispatch(request: web.Request) -> web.Response:
    fake = request.app[FAKE]
    body = await fake.record(request)
    model, _, name = request.match_info["call"].partition(":")
    method = request.app[METHODS].get(name)
    if method is None:
        return error(404, f"no method {name!r} for models/{model}")
    refused = refusal(request, fake)
    return refused if refused is not None else await method(request, fake, body)


async def batch_embed_contents(request: web.Request, fake: Fake, body: Any) -> web.Response:
    if not isinstance(body, dict) or not isinstance(body.get("requests"), list):
        return error(400, "requests is required")
    vectors = []
    for item in body["requests"]:
        text = " ".join(p.get("text", "") for p in item["content"]["parts"])
        vectors.append({"values": fake.vector(text, item.get("outputDimensionality"))})
    return web.json_response({"embeddings": vectors})


def add_method(app: web.Application, name: str, method: Method) -> None:
    app[METHODS][name] = method


def add_embeddings(app: web.Application) -> None:
    add_method(app, "batchEmbedContents", batch_embed_contents)


def create_app(fake: Fake) -> web.Application:
    from tests.support.fakes.gemini_generate import add_generation  # it imports this module

    app = app_of(fake)
    app[METHODS] = {}
    for version in ("v1", "v1beta"):  # the SDK's default API version moved between them
        app.router.add_post(f"/{version}/models/{{call}}", dispatch)
    add_embeddings(app)
    add_generation(app)
    return app
