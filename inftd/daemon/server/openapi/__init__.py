"""The API's OpenAPI 3.1 document, served at ``GET /openapi.json``.

The document is generated from the routes the app serves (``inftd.daemon.server.contract``),
once, when the app starts. The sections here still describe, as hand-built dicts, the
operations not yet declared at their handlers; each area of the API has its own module,
joined here, refusing two sections that define the same path or component.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Annotated, Any

import orjson
from aiohttp import web
from pydantic import WithJsonSchema
from typing_extensions import TypeAliasType

from inftd.daemon.server.api.status import META
from inftd.daemon.server.contract.document import openapi_document
from inftd.daemon.server.contract.routes import Answer, Routes
from inftd.daemon.server.openapi import (
    base,
    generations,
    learning,
)
from inftd.daemon.server.openapi.section import Section

PATH = "/openapi.json"
OPENAPI = web.AppKey("openapi", dict[str, bytes])  # "json": the document, built at start
ROUTES = Routes("meta", META)
OpenApiDocument = TypeAliasType(
    "OpenApiDocument",
    Annotated[
        dict[str, Any],
        WithJsonSchema(
            {
                "type": "object",
                "required": ["openapi", "info", "paths", "components"],
                "properties": {"openapi": {"const": "3.1.0"}},
            }
        ),
    ],
)

# Every section of the document, in the order its tags are listed.
SECTIONS: tuple[Callable[[], Section], ...] = (
    base.section,
    generations.section,
    learning.section,
)


def _join(name: str, parts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    joined: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if key in joined:
                raise ValueError(f"OpenAPI {name} {key!r} is defined by two sections")
            joined[key] = value
    return joined


def legacy_document() -> dict[str, Any]:
    """The hand-built sections' paths, components and tags."""
    sections = [make() for make in SECTIONS]
    return {
        "tags": _join("tag", (s.tags for s in sections)),
        "paths": _join("path", (s.paths for s in sections)),
        "components": {
            "schemas": _join("schema", (s.schemas for s in sections)),
            "parameters": _join("parameter", (s.parameters for s in sections)),
        },
    }


def document(app: web.Application, max_body_bytes: int) -> dict[str, Any]:
    """The document of every route ``app`` serves."""
    return openapi_document(app, max_body_bytes, legacy_document())


@ROUTES.get(
    PATH, "openapi", "This document", ok=Answer("The OpenAPI 3.1 document", OpenApiDocument)
)
async def openapi_endpoint(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI]["json"], content_type="application/json")


def add_routes(app: web.Application, max_body_bytes: int) -> None:
    """Serve the document, built once every route is added (at the app's start)."""

    built: dict[str, bytes] = {}

    async def build(app: web.Application) -> None:
        built["json"] = orjson.dumps(document(app, max_body_bytes))

    app[OPENAPI] = built
    ROUTES.add_to(app)
    app.on_startup.append(build)
