"""The offline local provider: deterministic streamed text and real PNGs, labelled local."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from inftd.agents.prompts import PromptRequest, build_prompt
from inftd.daemon.providers.base import ImageRequest, TextRequest, complete_text, image_type
from inftd.daemon.providers.local import IMAGE_MODEL, TEXT_MODEL, LocalProvider, draw
from inftd.daemon.providers.png import encode
from tests.daemon.providers.support import assert_png, collect, read_png

PROMPT = "a lighthouse keeper's log at dawn"


async def test_text_streams_in_chunks_and_is_labelled_local() -> None:
    chunks, result = await collect(LocalProvider().stream_text(TextRequest(PROMPT)))
    assert len(chunks) > 5
    assert "".join(chunks) == result.text
    assert (result.provider, result.model) == ("local", TEXT_MODEL)
    assert "lighthouse" in result.text
    assert result.finish_reason == "stop"
    assert result.usage.cost_usd == 0
    assert result.usage.estimated  # offline: the counts are estimates
    assert result.usage.output_tokens > 0
    assert result.usage.input_tokens > 0


async def test_the_same_request_gives_the_same_text_and_another_another() -> None:
    provider = LocalProvider()
    first = await complete_text(provider, TextRequest(PROMPT))
    again = await complete_text(provider, TextRequest(PROMPT))
    other = await complete_text(provider, TextRequest("a market street in the rain"))
    other_system = await complete_text(provider, TextRequest(PROMPT, system="Be terse."))
    assert first.text == again.text
    assert other.text != first.text
    assert "market" in other.text
    assert other_system.text != first.text


async def test_the_prompt_builders_style_and_preferences_shape_the_text() -> None:
    built = build_prompt(
        PromptRequest("text", PROMPT, {"style": "noir"}),
        now=datetime.now(UTC),
        preferences={"tone": "wry", "palette": "teal and rust"},
    )
    result = await complete_text(LocalProvider(), TextRequest(built.text))
    assert "noir" in result.text
    assert "tone: wry" in result.text
    assert "teal and rust" in result.text


async def test_max_tokens_cuts_the_text() -> None:
    chunks, result = await collect(LocalProvider().stream_text(TextRequest(PROMPT, max_tokens=6)))
    assert result.finish_reason == "length"
    assert result.usage.output_tokens <= 6
    assert "".join(chunks) == result.text
    full = await complete_text(LocalProvider(), TextRequest(PROMPT))
    assert full.text.startswith(result.text)


@pytest.mark.parametrize("size", ["64x64", "256x256", "1024x768", "640x1536"])
async def test_an_image_is_a_whole_png_of_the_size_asked(size: str) -> None:
    width, height = (int(x) for x in size.split("x"))
    result = await LocalProvider().image(ImageRequest(PROMPT, size=size))
    png = assert_png(result.data, width, height)
    assert (png.bit_depth, png.color_type) == (8, 2)  # 8-bit RGB
    labels = (result.content_type, result.provider, result.model)
    assert labels == ("image/png", "local", IMAGE_MODEL)
    assert image_type(result.data) == "image/png"
    assert result.usage.images == 1
    assert result.usage.cost_usd == 0


async def test_an_image_is_drawn_from_the_prompt() -> None:
    provider = LocalProvider()
    first = await provider.image(ImageRequest(PROMPT, size="256x256"))
    again = await provider.image(ImageRequest(PROMPT, size="256x256"))
    other = await provider.image(ImageRequest("a market street in the rain", size="256x256"))
    assert first.data == again.data
    assert other.data != first.data
    pixels = read_png(first.data).pixels
    rows = [pixels[i * (1 + 256 * 3) + 1 : (i + 1) * (1 + 256 * 3)] for i in range(256)]
    colours = {row[x : x + 3] for row in rows[::16] for x in range(0, 256 * 3, 48)}
    assert len(colours) > 8  # a gradient and shapes, not one flat colour


async def test_high_quality_draws_more() -> None:
    standard = draw(PROMPT, 256, 256, 6)
    high = await LocalProvider().image(ImageRequest(PROMPT, size="256x256", quality="high"))
    assert high.data != standard


def test_the_png_writer_checks_its_rows() -> None:
    with pytest.raises(ValueError, match="expected 6"):
        encode(2, 1, [b"\x00" * 5])
    with pytest.raises(ValueError, match="got 1 rows, expected 2"):
        encode(2, 2, [b"\x00" * 6])
    data = encode(2, 2, [b"\xff\x00\x00" * 2, b"\x00\x00\xff" * 2], {"Comment": "local"})
    expected = b"\x00" + b"\xff\x00\x00" * 2 + b"\x00" + b"\x00\x00\xff" * 2
    assert read_png(data).pixels == expected  # filter 0, then the row, per row
    assert b"tEXtComment\x00local" in data


@pytest.mark.parametrize("size", ["1024", "10x10", "5000x5000", "axb"])
def test_a_bad_size_is_refused(size: str) -> None:
    with pytest.raises(ValueError, match="size"):
        ImageRequest(PROMPT, size=size)
