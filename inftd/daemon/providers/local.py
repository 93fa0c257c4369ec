"""The offline local provider, the default: no key, no network, no cost.

Text is composed from the prompt (its first paragraph is the subject) and the lines the
prompt builder adds (``Style:``, ``Qualities:``, ``Preferences:``), in the system text or
the prompt, with word choices seeded by their sha256: the same request gives the same text.
Images are real PNGs of the requested size: a gradient and shapes whose colours, places
and sizes are seeded by the prompt's sha256. Neither is a model's work, and each says so:
the text opens with ``LABEL``, the models are ``template-text-1`` and ``template-image-1``
(provider ``local``). It costs nothing; token counts are estimates. The zero-install
fallback: a model server of your own (``local_llm``) or a provider key gives real text.
"""

from __future__ import annotations

import asyncio
import colorsys
import hashlib
import math
import random
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from inftd.daemon.providers import png
from inftd.daemon.providers.base import (
    CHARS_PER_TOKEN,
    Capability,
    ImageRequest,
    ImageResult,
    TextRequest,
    TextResult,
    Usage,
    estimate_tokens,
)
from inftd.daemon.providers.prices import LOCAL, PriceTable

NAME = "local"
TEXT_MODEL = "template-text-1"  # named for what it is: no language model behind it
IMAGE_MODEL = "template-image-1"  # procedural shapes, no image model
LABEL = "[Template text: inftd's offline writer, no language model.]"
SUBJECT_CHARS = 120  # of the prompt's first paragraph, quoted in the text
KEYWORDS = 6  # words of the subject the sentences draw on
SHAPES = {"standard": 6, "high": 12}  # shapes drawn per image

OPENINGS = (
    "This is a piece about {subject}.",
    "Consider {subject}.",
    "Begin with {subject}.",
)
MIDDLES = (
    "At its centre is {a}, {adj} and {adj2}.",
    "{A} and {b} meet here, in {adj} light.",
    "Look closely at {a}: it is {adj}, never {adj2}.",
    "{A} carries the weight, and {b} answers it.",
    "There is something {adj} about {a}.",
    "Around {a}, everything turns {adj}.",
)
CLOSINGS = (
    "That is where it rests, for now.",
    "The rest is left to the reader.",
    "And so it ends, {adj} to the last.",
)
ADJECTIVES = (
    "quiet",
    "bright",
    "patient",
    "restless",
    "luminous",
    "spare",
    "warm",
    "precise",
    "strange",
    "gentle",
    "bold",
    "soft",
)
STOPWORDS = frozenset({"the", "and", "with", "for", "from", "that", "this", "into", "about"})
DIRECTIVE = re.compile(r"^(Style|Qualities|Preferences|Subtle influences):\s*(.+?)\.?$", re.M)


class LocalProvider:
    """The offline provider; ``delay`` (seconds between text chunks) is for tests and demos."""

    name = NAME
    capabilities: frozenset[Capability] = frozenset({"text", "image", "streaming"})
    prices: PriceTable = LOCAL
    text_model: str | None = TEXT_MODEL
    image_model: str | None = IMAGE_MODEL

    def __init__(
        self, timeout: float = 60.0, image_timeout: float = 180.0, delay: float = 0.0
    ) -> None:
        self.timeout = timeout
        self.image_timeout = image_timeout
        self.delay = delay

    async def stream_text(self, request: TextRequest) -> AsyncIterator[str | TextResult]:
        words, cut = _limited(compose(request.prompt, request.system), request.max_tokens)
        for i, word in enumerate(words):
            yield word if i == 0 else " " + word
            await asyncio.sleep(self.delay)  # also lets other tasks run between chunks
        text = " ".join(words)
        usage = Usage(
            estimate_tokens(request.system, request.prompt),
            estimate_tokens(text),
            estimated=True,
        )
        model = request.model or TEXT_MODEL
        yield TextResult(text, NAME, model, usage, "length" if cut else "stop")

    async def image(self, request: ImageRequest) -> ImageResult:
        width, height = request.dimensions
        data = draw(request.prompt, width, height, SHAPES[request.quality])
        usage = Usage(estimate_tokens(request.prompt), 0, 1, 0.0, estimated=True)
        return ImageResult(data, "image/png", NAME, request.model or IMAGE_MODEL, usage)

    async def close(self) -> None:
        return None


def _seed(*texts: str | None) -> random.Random:
    digest = hashlib.sha256("\x00".join(t or "" for t in texts).encode()).digest()
    return random.Random(digest)


def _limited(text: str, max_tokens: int) -> tuple[list[str], bool]:
    """The words of ``text`` that fit ``max_tokens`` (estimated), and whether it was cut."""
    words: list[str] = []
    chars = 0
    for word in text.split(" "):
        chars += len(word) + (1 if words else 0)
        if math.ceil(chars / CHARS_PER_TOKEN) > max_tokens and words:
            return words, True
        words.append(word)
    return words, False


def _subject(prompt: str) -> str:
    first = " ".join(prompt.strip().split("\n\n")[0].split())
    if len(first) > SUBJECT_CHARS:
        first = first[: SUBJECT_CHARS - 1].rstrip() + "…"
    return first.rstrip(".!?") or "this"


def _keywords(subject: str) -> list[str]:
    seen: list[str] = []
    for word in re.findall(r"[^\W\d_]{3,}", subject.lower()):
        if word not in seen and word not in STOPWORDS:
            seen.append(word)
    return seen[:KEYWORDS] or ["idea"]


def compose(prompt: str, system: str | None = None) -> str:
    """The local provider's text for a prompt (and system text): deterministic."""
    rng = _seed(system, prompt)
    subject = _subject(prompt)
    words = _keywords(subject)
    sentences = [LABEL, rng.choice(OPENINGS).format(subject=subject)]
    for template in rng.sample(MIDDLES, 2 + rng.randrange(3)):
        pair = rng.sample(words, 2) if len(words) > 1 else words * 2
        a, b = (f"the {word}" for word in pair)
        adj, adj2 = rng.sample(ADJECTIVES, 2)
        line = template.format(a=a, b=b, A=a.capitalize(), adj=adj, adj2=adj2)
        sentences.append(line)
    sentences += _directed(f"{system or ''}\n{prompt}")
    sentences.append(rng.choice(CLOSINGS).format(adj=rng.choice(ADJECTIVES)))
    return " ".join(sentences)


def _directed(text: str) -> list[str]:
    """Sentences that honour the prompt builder's lines (style, qualities, preferences)."""
    found = {key.lower(): value.strip() for key, value in DIRECTIVE.findall(text)}
    sentences = []
    if "style" in found:
        sentences.append(f"It is told in a {found['style']} manner.")
    if "qualities" in found:
        sentences.append(f"It means to be {found['qualities']}.")
    if "subtle influences" in found:
        sentences.append(f"Traces of {found['subtle influences']} show through.")
    if "preferences" in found:
        sentences.append(f"It keeps to these preferences: {found['preferences']}.")
    return sentences


# --- images ---------------------------------------------------------------------------

Color = bytes  # 3 bytes, RGB


@dataclass(frozen=True, slots=True)
class Shape:
    """A filled circle (``kind="circle"``, centre and radius) or a peak (``"peak"``: apex
    and slope of its sides, down to the bottom edge), in one colour."""

    kind: str
    x: int
    y: int
    size: float  # radius, or half-width gained per row below the apex
    color: Color

    def span(self, row: int) -> tuple[int, int] | None:
        """The columns [start, end) this shape covers on ``row``; None if none."""
        if self.kind == "circle":
            dy = row - self.y
            radius = int(self.size)
            if abs(dy) > radius:
                return None
            half = math.isqrt(radius * radius - dy * dy)
            return self.x - half, self.x + half + 1
        if row < self.y:
            return None
        half = int((row - self.y) * self.size)
        return self.x - half, self.x + half + 1


def _color(hue: float, saturation: float, value: float) -> Color:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return bytes((round(r * 255), round(g * 255), round(b * 255)))


def _shapes(rng: random.Random, width: int, height: int, count: int, hue: float) -> list[Shape]:
    shapes = []
    for i in range(count):
        color = _color(hue + 0.15 * (i + 1) + rng.uniform(-0.05, 0.05), 0.7, rng.uniform(0.6, 1))
        x, y = rng.randrange(width), rng.randrange(height)
        if rng.random() < 0.7:
            radius = rng.uniform(0.04, 0.2) * min(width, height)
            shapes.append(Shape("circle", x, y, radius, color))
        else:
            shapes.append(Shape("peak", x, y, rng.uniform(0.4, 1.5), color))
    return shapes


def _rows(
    width: int, height: int, top: Color, bottom: Color, shapes: list[Shape]
) -> Iterator[bytes]:
    for y in range(height):
        t = y / max(height - 1, 1)
        shade = bytes(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        row = bytearray(shade * width)
        for shape in shapes:
            span = shape.span(y)
            if span is not None:
                start, end = max(span[0], 0), min(span[1], width)
                if start < end:
                    row[start * 3 : end * 3] = shape.color * (end - start)
        yield bytes(row)


def draw(prompt: str, width: int, height: int, shapes: int = SHAPES["standard"]) -> bytes:
    """A PNG of ``width`` x ``height`` drawn from ``prompt``: the same prompt, the same image."""
    rng = _seed(prompt)
    hue = rng.random()
    top, bottom = _color(hue, 0.55, 0.3), _color(hue + 0.1, 0.45, 0.9)
    drawn = _shapes(rng, width, height, shapes, hue)
    text = {"Software": "inftd local provider", "Source": IMAGE_MODEL}
    return png.encode(width, height, _rows(width, height, top, bottom, drawn), text)
