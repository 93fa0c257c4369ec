"""HTTP building blocks shared by the API's modules: JSON answers, errors, request ids."""

from __future__ import annotations

import itertools
import logging
import os
import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import sqlalchemy.exc
from aiohttp import hdrs, web

from inftd.agents.live import noting_writes
from inftd.daemon.logs import REQUEST_ID
from inftd.daemon.runtime import Runtime
from inftd.daemon.server.errors import answer_for

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

RUNTIME = web.AppKey("runtime", Runtime)
BUSY_RETRY_AFTER = 1  # seconds a client waits after a 503 busy
VERSIONED_CACHE = "no-cache"  # answers with a version: kept by caches, checked before use
MAX_SEQ_DIGITS = 19  # an event seq is a BIGINT
SEQ_HEADER = "X-Inftd-Seq"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # client request ids kept as given


class ApiError(Exception):
    """Raised by handlers: becomes ``{"error": {"code", "message"}}`` with the status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        super().__init__(message)


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def not_modified(request: web.Request, etag: str) -> bool:
    """Whether ``If-None-Match`` names ``etag`` (weak comparison, as RFC 9110 says)."""
    given = request.headers.get("If-None-Match")
    if given is None:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in given.split(",")}
    return etag in tags or "*" in tags


def versioned_response(request: web.Request, body: bytes, etag: str | None) -> web.Response:
    """A JSON answer with its ``ETag``; 304 with no body when the client has that one.
    ``no-cache``: a cache may keep it but asks again (cheaply, with the ETag) before use."""
    if etag is None:  # a read that writes kept overtaking: no version to name
        return web.Response(body=body, content_type="application/json")
    headers = {"ETag": etag, "Cache-Control": VERSIONED_CACHE}
    if not_modified(request, etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type="application/json", headers=headers)


async def reach_min_seq(request: web.Request) -> None:
    """``?minSeq=N``: wait (``live.min_seq_wait`` at most) until this process's copies hold
    every event up to N, the ``X-Inftd-Seq`` of an answer from another process; then
    answer with what it holds (its ``X-Inftd-Seq`` says how far that is)."""
    raw = request.query.get("minSeq")
    if raw is None:
        return
    if not (raw.isascii() and raw.isdigit()) or len(raw) > MAX_SEQ_DIGITS:
        raise ApiError(400, "bad_min_seq", f"minSeq must be an event seq in decimal, got {raw!r}")
    runtime = request.app[RUNTIME]
    await runtime.live.reach(int(raw), runtime.settings.live.min_seq_wait)


def error_response(status: int, code: str, message: str) -> web.Response:
    return json_response({"error": {"code": code, "message": message}}, status)


async def read_json(request: web.Request) -> Any:
    """The request body as JSON; 400 ``malformed_json`` if it is not."""
    try:
        return orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "malformed_json", f"body is not JSON: {exc}") from None


_ID_PREFIX = os.urandom(8).hex()  # this process's, so ids stay unique across processes
_ID_COUNTER = itertools.count()


def new_request_id() -> str:
    """32 hex digits, unique per process start and request: a counter, not randomness,
    which costs a system call (uuid4 was 2 % of a request's CPU)."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The client's X-Request-Id if it is a sane one, else a new one; in logs and the answer.
    Also ``X-Inftd-Seq``: every event up to it is in this answer or this process's copies
    (a write's own events included), the ``?minSeq=`` for a read from another process."""
    given = request.headers.get("X-Request-Id")
    request_id = given if given is not None and _REQUEST_ID.fullmatch(given) else new_request_id()
    token = REQUEST_ID.set(request_id)
    try:
        with noting_writes() as wrote:
            response = await handler(request)
    finally:
        REQUEST_ID.reset(token)
    response.headers["X-Request-Id"] = request_id
    runtime = request.app.get(RUNTIME)
    position = runtime.live.position if runtime is not None else 0
    response.headers[SEQ_HEADER] = str(max(wrote[0], position))
    return response


KEPT_HEADERS = (hdrs.ALLOW, hdrs.RETRY_AFTER)  # of an aiohttp HTTPException, on our JSON answer


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One JSON error shape everywhere (domain errors by ``server.errors``); never a stack
    trace to the client."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message)
    except sqlalchemy.exc.TimeoutError:
        # The connection pool stayed exhausted: an overload, not a fault, and worth a retry.
        log.warning("database pool exhausted on %s %s", request.method, request.path)
        response = error_response(503, "busy", "the server is busy; try again shortly")
        response.headers["Retry-After"] = str(BUSY_RETRY_AFTER)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        message = exc.text or exc.reason
        if message.startswith(f"{exc.status}:"):  # aiohttp's default text says nothing more
            message = f"{exc.reason}: {request.method} {request.path}"
        response = error_response(exc.status, code, message)
        for name in KEPT_HEADERS:  # a 405 must name the methods it takes (RFC 9110 15.5.6)
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
    except Exception as exc:
        mapped = answer_for(exc)
        if mapped is not None:
            return error_response(*mapped, str(exc))
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal server error")
