"""The interface's helpers: errors by status, Retry-After, sizes, image sniffing, prices."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from inftd.daemon.providers.base import (
    ImageRequest,
    ProviderError,
    TextRequest,
    TextResult,
    complete_text,
    image_type,
    parse_size,
    retry_after_of,
    status_error,
)
from inftd.daemon.providers.local import LocalProvider, draw
from inftd.daemon.providers.prices import CLOUDFLARE, GEMINI, LOCAL, OPENAI, TextPrice


@pytest.mark.parametrize(
    ("status", "kind", "transient"),
    [
        (401, "auth", False),
        (403, "auth", False),
        (400, "refused", False),
        (404, "refused", False),
        (408, "timeout", True),
        (429, "rate_limited", True),
        (500, "unavailable", True),
        (502, "unavailable", True),
    ],
)
def test_statuses_map_to_kinds(status: int, kind: str, transient: bool) -> None:
    error = status_error("openai", status, retry_after=None)
    assert (error.kind, error.transient, error.status) == (kind, transient, status)


def test_an_error_prints_its_provider_kind_status_and_wait() -> None:
    error = status_error("gemini", 429, retry_after=2.5)
    assert str(error) == "gemini: rate_limited (HTTP 429): rate limited; retry after 2.5s"
    assert ProviderError("local", "timeout", "slow").transient is True
    assert ProviderError("x", "rate_limited", "quota", transient=False).transient is False


def test_retry_after_in_seconds_milliseconds_or_a_date() -> None:
    assert retry_after_of({"Retry-After": "7"}) == 7
    assert retry_after_of({"retry-after": "1.5"}) == 1.5
    assert retry_after_of({"retry-after-ms": "250", "Retry-After": "9"}) == 0.25
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert retry_after_of({"Retry-After": later}) == pytest.approx(30, abs=2)
    earlier = format_datetime(datetime.now(UTC) - timedelta(seconds=30), usegmt=True)
    assert retry_after_of({"Retry-After": earlier}) == 0
    assert retry_after_of({}) is None
    assert retry_after_of({"Retry-After": "soon"}) is None
    assert retry_after_of({"Retry-After": "-3"}) is None


def test_sizes_parse_within_bounds() -> None:
    assert parse_size("1024x768") == (1024, 768)
    assert parse_size("640X480") == (640, 480)
    assert ImageRequest("x", size="512x512").dimensions == (512, 512)
    for bad in ("1024", "0x10", "63x64", "4097x64", "1e3x5", "x"):
        with pytest.raises(ValueError, match="size"):
            parse_size(bad)


def test_requests_refuse_what_no_provider_could_take() -> None:
    with pytest.raises(ValueError, match="prompt"):
        TextRequest("   ")
    with pytest.raises(ValueError, match="max_tokens"):
        TextRequest("hi", max_tokens=0)
    with pytest.raises(ValueError, match="quality"):
        ImageRequest("hi", quality="ultra")  # type: ignore[arg-type]


def test_only_whole_images_are_recognised() -> None:
    png = draw("x", 64, 64)
    assert image_type(png) == "image/png"
    assert image_type(png[:-12]) is None  # no IEND: cut off
    assert image_type(b"\xff\xd8\xff\xe0" + b"\x00" * 20 + b"\xff\xd9") == "image/jpeg"
    assert image_type(b"\xff\xd8\xff\xe0" + b"\x00" * 20) is None
    webp = b"RIFF" + (12).to_bytes(4, "little") + b"WEBPVP8 " + b"\x00" * 4
    assert image_type(webp) == "image/webp"
    assert image_type(webp[:-1]) is None
    assert image_type(b"<html>") is None


def test_prices_find_snapshots_and_overcount_unknown_models() -> None:
    assert OPENAI.text_price("gpt-5.4-mini-2026-03-17") == TextPrice(0.75, 4.50)
    assert OPENAI.text_price("gpt-5.4-nano") == TextPrice(0.20, 1.25)
    dearest = max(OPENAI.text.values(), key=lambda p: p.input_per_m + p.output_per_m)
    assert OPENAI.text_price("gpt-9-unknown") == dearest
    assert GEMINI.image_price("some-new-image-model").dearest == 0.151
    assert LOCAL.text_usage("anything", 1000, 1000).cost_usd == 0
    assert LOCAL.image_usage("anything", (1024, 1024), "high").cost_usd == 0


def test_image_prices_go_by_size_tier_and_quality() -> None:
    mini = OPENAI.image_price("gpt-image-1-mini")
    assert mini.cost(1024, 1024, "standard") == pytest.approx(0.011)
    assert mini.cost(1536, 1024, "high") == pytest.approx(0.052)
    flash = GEMINI.image_price("gemini-3.1-flash-image")
    assert flash.cost(512, 512, "standard") == pytest.approx(0.045)
    assert flash.cost(2048, 1152, "standard") == pytest.approx(0.101)
    flux = CLOUDFLARE.image_usage("@cf/black-forest-labs/flux-1-schnell", (1024, 1024), "high")
    assert flux.cost_usd == pytest.approx(4 * 0.0000528 + 8 * 0.0001056)
    assert flux.images == 1


class _Silent(LocalProvider):
    async def stream_text(self, request: TextRequest) -> AsyncIterator[str | TextResult]:
        yield "half a thought"


async def test_complete_text_wants_a_final_result() -> None:
    with pytest.raises(ProviderError) as caught:
        await complete_text(_Silent(), TextRequest("hi"))
    assert caught.value.kind == "bad_response"
