"""The console's routes: the page at ``/`` and its files under ``/console/``."""

from __future__ import annotations

from typing import Any

from inftd.daemon.server.api.console import ASSETS, CACHE_CONTROL
from inftd.daemon.server.openapi.parts import STRING, answer, error, operation
from inftd.daemon.server.openapi.section import Section


def _file(description: str, *media: str) -> Any:
    ok = answer(description)
    ok["content"] = {kind: {"schema": STRING} for kind in media}
    ok["headers"] = {
        **ok["headers"],
        "ETag": {"description": "Send it back in If-None-Match", "schema": STRING},
        "Cache-Control": {"schema": {"const": CACHE_CONTROL}},
        "Content-Security-Policy": {
            "description": "Only this server's files; connections only to this server",
            "schema": STRING,
        },
    }
    return ok


def _not_modified() -> Any:
    return answer("Not modified: If-None-Match names the current ETag")


def section() -> Section:
    """The console, a plain HTML and JavaScript page over this API."""
    asset = {
        "name": "file",
        "in": "path",
        "required": True,
        "description": "A file of the console",
        "schema": {"type": "string", "enum": list(ASSETS)},
    }
    return Section(
        tags={"console": "The web console: agents, live credits and generations, sign-in"},
        paths={
            "/": {
                "get": operation(
                    "console",
                    "console",
                    "The console page",
                    {"200": _file("The page", "text/html"), "304": _not_modified()},
                )
            },
            "/console/{file}": {
                "get": operation(
                    "consoleFile",
                    "console",
                    "The console's script and stylesheet",
                    {
                        "200": _file("The file", *sorted(set(ASSETS.values()))),
                        "304": _not_modified(),
                        "404": error("No such file", "not_found"),
                    },
                    parameters=[asset],
                )
            },
        },
    )
