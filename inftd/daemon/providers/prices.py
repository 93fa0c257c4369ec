"""What each provider's models cost, in USD, with where the figures come from.

Text is priced per 1M input and output tokens. An image is priced by the smallest size
tier that holds its pixels and by quality, plus the prompt's tokens where the provider
bills them. A model missing from a table (a dated snapshot, a model set in the config) is
priced as its longest listed prefix (``gpt-5.4-mini-2026-03-17`` → ``gpt-5.4-mini``),
else as the table's dearest model of that kind: spend is over-counted, never under.
Prices change: each table names its source and the date it was read; check before billing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from inftd.daemon.providers.usage import Quality, Usage

PER_M = 1_000_000
P = TypeVar("P")


@dataclass(frozen=True, slots=True)
class TextPrice:
    input_per_m: float  # USD per 1M input tokens
    output_per_m: float  # USD per 1M output tokens (reasoning tokens included)

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_m + output_tokens * self.output_per_m) / PER_M


@dataclass(frozen=True, slots=True)
class ImageTier:
    max_pixels: int  # the largest image (width x height) this price covers
    standard: float  # USD per image
    high: float


@dataclass(frozen=True, slots=True)
class ImagePrice:
    tiers: tuple[ImageTier, ...]  # by max_pixels, smallest first
    input_per_m: float = 0.0  # USD per 1M prompt tokens, where billed apart

    def cost(self, width: int, height: int, quality: Quality, input_tokens: int = 0) -> float:
        if not self.tiers:
            return 0.0
        pixels = width * height
        tier = next((t for t in self.tiers if pixels <= t.max_pixels), self.tiers[-1])
        per_image = tier.high if quality == "high" else tier.standard
        return per_image + input_tokens * self.input_per_m / PER_M

    @property
    def dearest(self) -> float:
        return max((t.high for t in self.tiers), default=0.0)


FREE_TEXT = TextPrice(0.0, 0.0)
FREE_IMAGE = ImagePrice(())


@dataclass(frozen=True)
class PriceTable:
    source: str  # where the figures come from, and when they were read
    text: Mapping[str, TextPrice] = field(default_factory=dict)
    image: Mapping[str, ImagePrice] = field(default_factory=dict)

    def text_price(self, model: str) -> TextPrice:
        found = _lookup(self.text, model)
        if found is not None:
            return found
        return max(self.text.values(), key=_text_weight, default=FREE_TEXT)

    def image_price(self, model: str) -> ImagePrice:
        found = _lookup(self.image, model)
        if found is not None:
            return found
        return max(self.image.values(), key=lambda p: p.dearest, default=FREE_IMAGE)

    def text_usage(
        self, model: str, input_tokens: int, output_tokens: int, *, estimated: bool = False
    ) -> Usage:
        cost = self.text_price(model).cost(input_tokens, output_tokens)
        return Usage(input_tokens, output_tokens, 0, cost, estimated)

    def image_usage(
        self,
        model: str,
        dimensions: tuple[int, int],
        quality: Quality,
        input_tokens: int = 0,
        *,
        images: int = 1,
    ) -> Usage:
        per_image = self.image_price(model).cost(*dimensions, quality, input_tokens)
        return Usage(input_tokens, 0, images, per_image * images)


def _lookup(table: Mapping[str, P], model: str) -> P | None:
    if model in table:
        return table[model]
    prefixes = [name for name in table if model.startswith(name + "-")]
    return table[max(prefixes, key=len)] if prefixes else None


def _text_weight(price: TextPrice) -> float:
    return price.input_per_m + price.output_per_m


LOCAL = PriceTable("the local provider runs offline: no cost")
LOCAL_LLM = PriceTable("a model server of your own: no price per token")
EMBEDDED = PriceTable("a model inside the daemon: no price per token")

# developers.openai.com/api/docs/pricing, as copied by pricing guides of 2026-03 to 2026-06
# (GPT-5.4 family; gpt-image-1-mini per-image prices for 1024x1024 and 1536x1024/1024x1536).
OPENAI = PriceTable(
    "OpenAI API pricing page (developers.openai.com/api/docs/pricing), read 2026-06",
    text={
        "gpt-5.5": TextPrice(5.00, 30.00),
        "gpt-5.4": TextPrice(2.50, 15.00),
        "gpt-5.4-mini": TextPrice(0.75, 4.50),
        "gpt-5.4-nano": TextPrice(0.20, 1.25),
    },
    image={
        # Our "standard" is OpenAI's "medium" quality; "high" is "high".
        "gpt-image-1-mini": ImagePrice(
            (ImageTier(1024 * 1024, 0.011, 0.036), ImageTier(1536 * 1024, 0.015, 0.052)),
            input_per_m=2.00,  # text input tokens
        ),
    },
)

# ai.google.dev/gemini-api/docs/pricing, as copied by pricing guides of 2026-03 to 2026-05.
# Image output is $60 per 1M image tokens, quoted per image by output size (512, 1K, 2K, 4K).
GEMINI = PriceTable(
    "Gemini API pricing page (ai.google.dev/gemini-api/docs/pricing), read 2026-05",
    text={
        "gemini-3.5-flash": TextPrice(1.50, 9.00),
        "gemini-3.1-pro-preview": TextPrice(2.00, 12.00),
        "gemini-3.1-flash-lite": TextPrice(0.25, 1.50),
        "gemini-2.5-flash": TextPrice(0.30, 2.50),
        "gemini-2.5-flash-lite": TextPrice(0.10, 0.40),
    },
    image={
        "gemini-3.1-flash-image": ImagePrice(
            (
                ImageTier(512 * 512, 0.045, 0.045),
                ImageTier(1024 * 1024, 0.067, 0.067),
                ImageTier(2048 * 2048, 0.101, 0.101),
                ImageTier(4096 * 4096, 0.151, 0.151),
            ),
            input_per_m=0.50,
        ),
    },
)

# developers.cloudflare.com/workers-ai/platform/pricing (cloudflare-docs, pricing.mdx).
# FLUX.1 [schnell] bills $0.0000528 per 512x512 tile and $0.0001056 per diffusion step;
# it draws 1024x1024 (4 tiles) with the steps below.
FLUX_TILE = 0.0000528
FLUX_STEP = 0.0001056
FLUX_STEPS: Mapping[Quality, int] = {"standard": 4, "high": 8}  # the model's default, its max


def _flux(steps: int) -> float:
    return 4 * FLUX_TILE + steps * FLUX_STEP


CLOUDFLARE = PriceTable(
    "Workers AI pricing page (developers.cloudflare.com/workers-ai/platform/pricing), 2026",
    text={
        "@cf/meta/llama-3.1-8b-instruct": TextPrice(0.282, 0.827),
        "@cf/meta/llama-3.1-8b-instruct-fp8-fast": TextPrice(0.045, 0.384),
        "@cf/meta/llama-3.3-70b-instruct-fp8-fast": TextPrice(0.293, 2.253),
    },
    image={
        "@cf/black-forest-labs/flux-1-schnell": ImagePrice(
            (ImageTier(1024 * 1024, _flux(FLUX_STEPS["standard"]), _flux(FLUX_STEPS["high"])),)
        ),
    },
)
