from __future__ import annotations

import logging

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from inftd.daemon.logs import REQUEST_ID, setup_logging
from inftd.daemon.server.http import request_id_middleware

SECRET = "sk-test-0123456789abcdef"


def test_secrets_are_masked_in_messages_and_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("INFO", "text", [SECRET, ""])
    try:
        logger = logging.getLogger("inftd.test.redact")
        logger.info("calling with key %s", SECRET)
        logger.info(f"inline {SECRET}")
        err = capsys.readouterr().err
    finally:
        logging.getLogger().handlers.clear()
    assert SECRET not in err
    assert err.count("***") == 2


def _fails_with_the_key(key: str) -> None:
    raise RuntimeError(f"the provider refused key {key}")


ODD = 'quo"ted\\secret'  # a secret JSON writes escaped: quo\"ted\\\\secret


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_secrets_are_masked_in_tracebacks_and_exception_text(
    capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    """A secret in an exception's text, or in the source line a traceback shows, is
    masked in the whole rendered record, not only in the message."""
    setup_logging("INFO", fmt, [SECRET, ODD])
    try:
        try:
            _fails_with_the_key(SECRET)
        except RuntimeError:
            logging.getLogger("inftd.test.redact").exception("a call failed")
        try:
            raise ValueError(ODD)
        except ValueError:
            logging.getLogger("inftd.test.redact").exception("another failed")
        err = capsys.readouterr().err
    finally:
        logging.getLogger().handlers.clear()
    assert "Traceback" in err
    assert "RuntimeError" in err
    for shown in (SECRET, ODD, orjson.dumps(ODD).decode()[1:-1]):
        assert shown not in err, shown
    assert err.count("***") >= 2


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
