"""CORS for browser clients of the origins in ``api.cors_origins`` (exact, or ``*``).

A preflight (``OPTIONS`` with ``Access-Control-Request-Method``) from an allowed origin is
answered 204 here; one from another origin gets 403. Other requests from an allowed origin
get ``Access-Control-Allow-Origin``; requests from other origins get no CORS header, so the
browser keeps the answer from the page. With a list of origins every answer says
``Vary: Origin``, those without CORS headers too. Credentials are bearer tokens, never
cookies, so ``Access-Control-Allow-Credentials`` is never sent.
"""

from __future__ import annotations

from aiohttp import web

from inftd.daemon.server.http import RUNTIME, Handler, error_response

ALLOW_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type, Idempotency-Key, If-None-Match, X-Request-Id"
EXPOSE_HEADERS = "ETag, Retry-After, X-Inftd-Seq, X-Request-Id"
MAX_AGE = 600  # seconds a browser may cache a preflight answer
ANY = "*"


def allow_origin(origins: list[str], origin: str) -> str | None:
    """The Access-Control-Allow-Origin value for ``origin``, or None if it is not allowed."""
    if ANY in origins:
        return ANY
    return origin if origin in origins else None


def _preflight(allowed: str) -> web.Response:
    headers = {
        "Access-Control-Allow-Origin": allowed,
        "Access-Control-Allow-Methods": ALLOW_METHODS,
        "Access-Control-Allow-Headers": ALLOW_HEADERS,
        "Access-Control-Max-Age": str(MAX_AGE),
    }
    return web.Response(status=204, headers=headers)


def _is_preflight(request: web.Request) -> bool:
    return request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    origins = request.app[RUNTIME].settings.api.cors_origins
    if not origins:
        return await handler(request)
    response = await _answer(request, handler, origins)
    if ANY not in origins and not response.prepared:
        # Every answer depends on the Origin: also those with no CORS header (no Origin,
        # or another one), or a shared cache could keep one and serve it to an allowed
        # origin (content answers are cacheable for a year).
        response.headers.add("Vary", "Origin")
    return response


async def _answer(request: web.Request, handler: Handler, origins: list[str]) -> web.StreamResponse:
    origin = request.headers.get("Origin")
    if origin is None:
        return await handler(request)
    allowed = allow_origin(origins, origin)
    if _is_preflight(request):
        if allowed is None:
            return error_response(403, "origin_not_allowed", "this origin may not call the API")
        return _preflight(allowed)
    response = await handler(request)
    if allowed is not None:
        response.headers["Access-Control-Allow-Origin"] = allowed
        response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
    return response
