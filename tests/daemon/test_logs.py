from __future__ import annotations

import logging

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from inftd.daemon.http import request_id_middleware
from inftd.daemon.logs import REQUEST_ID, RedactSecrets, setup_logging

SECRET = "sk-test-0123456789abcdef"


def test_secrets_are_masked_in_messages_and_arguments(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("inftd.test.redact")
    caplog.handler.addFilter(RedactSecrets([SECRET, ""]))
    with caplog.at_level(logging.INFO):
        logger.info("calling with key %s", SECRET)
        logger.info(f"inline {SECRET}")
    assert SECRET not in caplog.text
    assert caplog.text.count("***") == 2


def test_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("INFO", "json", [SECRET])
    try:
        logging.getLogger("inftd.test.json").warning("token %s used", SECRET)
        line = capsys.readouterr().err.strip().splitlines()[-1]
        entry = orjson.loads(line)
        assert entry["level"] == "WARNING"
        assert entry["msg"] == "token *** used"
    finally:
        logging.getLogger().handlers.clear()


async def _log_in_a_request(request_id: str) -> str:
    """Run a request whose handler logs; the X-Request-Id it was answered with."""

    async def handler(request: web.Request) -> web.Response:
        logging.getLogger("inftd.test.request").warning("handling %s", request.path)
        return web.Response(text="ok")

    app = web.Application(middlewares=[request_id_middleware])
    app.router.add_get("/work", handler)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/work", headers={"X-Request-Id": request_id})
        return response.headers["X-Request-Id"]


async def test_the_request_id_is_in_log_lines_of_the_request(
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging("INFO", "json", [])
    try:
        given = await _log_in_a_request("req-abc.123")
        fresh = await _log_in_a_request("bad id with spaces")
        logging.getLogger("inftd.test.request").warning("outside any request")
        lines = [orjson.loads(line) for line in capsys.readouterr().err.strip().splitlines()]
    finally:
        logging.getLogger().handlers.clear()
    handled = [e for e in lines if e["logger"] == "inftd.test.request"]
    assert [e.get("requestId") for e in handled] == ["req-abc.123", fresh, None]
    assert given == "req-abc.123"
    assert len(fresh) == 32  # a client id that is not a plain token is replaced


def test_text_lines_tag_the_request_id(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("INFO", "text", [])
    token = REQUEST_ID.set("req-42")
    try:
        logging.getLogger("inftd.test.text").warning("inside")
    finally:
        REQUEST_ID.reset(token)
        logging.getLogger("inftd.test.text").warning("outside")
        logging.getLogger().handlers.clear()
    inside, outside = capsys.readouterr().err.strip().splitlines()[-2:]
    assert inside.endswith("inftd.test.text [req-42]: inside")
    assert outside.endswith("inftd.test.text: outside")
