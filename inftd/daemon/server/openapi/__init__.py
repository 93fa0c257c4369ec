"""The API's OpenAPI 3.1 description, served at ``GET /openapi.json``.

The document is built in code rather than committed as JSON: the limits and names it
states (body size, preference limits, webhook headers and window, the version) come from
the modules that enforce them, so it cannot drift from them, and it is type-checked and
linted like the rest. ``tests/daemon/server/test_openapi.py`` keeps it true: every route the app
serves is documented (and nothing else), and real and generated requests get answers
whose status and body the document allows.

Each area of the API describes its routes in its own module, as a ``Section``; this module
joins them, refusing two sections that define the same path or component.
Path parameters are named as the router names them (``token_id``, ``webhook_id``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import orjson
from aiohttp import web

import inftd
from inftd.daemon.server.openapi import (
    base,
    console,
    credits,
    generations,
    learning,
    memory,
    mints,
    processes,
    social,
    spend,
    statesync,
)
from inftd.daemon.server.openapi.section import Section

PATH = base.PATH
OPENAPI = web.AppKey("openapi", bytes)  # the document, serialized once at start

# Every section of the document, in the order its tags are listed.
SECTIONS: tuple[Callable[[], Section], ...] = (
    base.section,
    credits.section,
    generations.section,
    mints.section,
    processes.section,
    console.section,
    learning.section,
    memory.section,
    social.section,
    spend.section,
    statesync.section,
)


def _join(name: str, parts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    joined: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if key in joined:
                raise ValueError(f"OpenAPI {name} {key!r} is defined by two sections")
            joined[key] = value
    return joined


def openapi_document(max_body_bytes: int) -> dict[str, Any]:
    """The whole document; ``max_body_bytes`` is the server's body limit (413 beyond)."""
    sections = [make() for make in SECTIONS]
    responses = _join("response", (s.responses for s in sections))
    responses["BodyTooLarge"]["description"] = f"The body is larger than {max_body_bytes} bytes"
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "inftd",
            "version": inftd.__version__,
            "description": base.DESCRIPTION,
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "tags": [
            {"name": tag, "description": text}
            for tag, text in _join("tag", (s.tags for s in sections)).items()
        ],
        "paths": _join("path", (s.paths for s in sections)),
        "webhooks": base.push_webhooks(),
        "components": {
            "schemas": _join("schema", (s.schemas for s in sections)),
            "parameters": _join("parameter", (s.parameters for s in sections)),
            "responses": responses,
            "headers": {
                "RequestId": {
                    "description": "The request's id, also in the server's log lines",
                    "schema": {"type": "string"},
                },
                "Seq": {
                    "description": "Every event up to this seq is in the answer or this "
                    "process's copies (a write's own events included): the `minSeq` for a "
                    "read from another process",
                    "schema": {"type": "string", "pattern": "^[0-9]+$"},
                },
            },
            "securitySchemes": base.security_schemes(),
        },
    }


async def openapi_endpoint(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI], content_type="application/json")


def add_routes(app: web.Application, max_body_bytes: int) -> None:
    app[OPENAPI] = orjson.dumps(openapi_document(max_body_bytes))
    app.router.add_get(PATH, openapi_endpoint)
