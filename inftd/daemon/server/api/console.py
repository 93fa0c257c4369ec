"""The console: ``GET /`` (the page) and ``GET /console/{file}`` (its script and stylesheet).

The page is plain HTML, JavaScript and CSS shipped in ``inftd/daemon/server/console/`` (no build
step). The files are read once when the app is built and only those names are served, so
no request path ever reaches the file system. Every answer carries a Content-Security-Policy
that lets the page load only its own files and talk only to this server (HTTP and
WebSocket), and Trusted Types that make the browser refuse HTML built from strings.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib.resources import files
from typing import Annotated, Any, Literal

from aiohttp import web

from inftd.daemon.server.contract.common import STRING, ref
from inftd.daemon.server.contract.routes import Answer, Routes
from inftd.daemon.server.contract.wire import PathValue

ROUTES = Routes("console", "The web console: agents, live credits and generations, sign-in")
INDEX = "index.html"
AssetName = Literal["console.js", "console.css", "icon.svg"]
ASSETS: dict[AssetName, str] = {  # name -> media type
    "console.js": "text/javascript",
    "console.css": "text/css",
    "icon.svg": "image/svg+xml",
}
# Only these names are routed to a file: any other is no such file.
FileName = Annotated[AssetName, PathValue("not_found", "A file of the console", status=404)]
# Revalidate on every load (with the ETag): the names carry no version, and a daemon
# upgrade must reach the page at once.
CACHE_CONTROL = "no-cache"
_SANE_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")
_POLICY = (
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",  # generated images, from /v1/content
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
    "require-trusted-types-for 'script'",
    "trusted-types 'none'",
)
_HEADERS = {
    "Cache-Control": CACHE_CONTROL,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media: str
    etag: str


CONSOLE = web.AppKey("console", dict[str, Asset])


def load_assets() -> dict[str, Asset]:
    """The page and its files, by name, from the installed package."""
    folder = files("inftd.daemon.server") / "console"
    assets = {}
    for name, kind in ((INDEX, "text/html"), *ASSETS.items()):
        body = (folder / name).read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        assets[name] = Asset(body, kind, etag)
    return assets


def content_security_policy(host: str) -> str:
    """Only this server's own files; HTTP and WebSocket only to it. ``'self'`` covers
    ws(s) to the same host in current browsers; older ones need the host spelled out,
    which is done only for a Host header that is a plain host[:port]."""
    connect = "connect-src 'self'"
    if _SANE_HOST.fullmatch(host):
        connect += f" ws://{host} wss://{host}"
    return "; ".join((*_POLICY, connect))


def _answer(request: web.Request, asset: Asset) -> web.Response:
    headers = {
        **_HEADERS,
        "ETag": asset.etag,
        "Content-Security-Policy": content_security_policy(request.host),
    }
    wanted = request.headers.get("If-None-Match", "")
    if asset.etag in (tag.strip() for tag in wanted.split(",")) or wanted.strip() == "*":
        return web.Response(status=304, headers=headers)
    return web.Response(body=asset.body, content_type=asset.media, charset="utf-8", headers=headers)


HEADERS: dict[str, Any] = {  # of a file's answer
    "ETag": {"description": "Send it back in If-None-Match", "schema": STRING},
    "Cache-Control": {"schema": {"const": CACHE_CONTROL}},
    "Content-Security-Policy": {
        "description": "Only this server's files; connections only to this server",
        "schema": STRING,
    },
}
NOT_MODIFIED = Answer("Not modified: If-None-Match names the current ETag", status=304)
REVALIDATE = (ref("IfNoneMatch", "parameters"),)


@ROUTES.get(
    "/",
    "console",
    "The console page",
    ok=(Answer("The page", str, media="text/html", headers=HEADERS), NOT_MODIFIED),
    parameters=REVALIDATE,
)
async def index(request: web.Request) -> web.Response:
    return _answer(request, request.app[CONSOLE][INDEX])


@ROUTES.get(
    "/console/{file}",
    "consoleFile",
    "The console's script, stylesheet and icon",
    ok=(
        *(Answer("The file", str, media=m, headers=HEADERS) for m in sorted(set(ASSETS.values()))),
        NOT_MODIFIED,
    ),
    parameters=REVALIDATE,
)
async def asset(request: web.Request, file: FileName) -> web.Response:
    return _answer(request, request.app[CONSOLE][file])


def add_routes(app: web.Application) -> None:
    app[CONSOLE] = load_assets()
    ROUTES.add_to(app)
