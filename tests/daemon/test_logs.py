from __future__ import annotations

import logging

import orjson
import pytest

from inftd.daemon.logs import RedactSecrets, setup_logging

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
