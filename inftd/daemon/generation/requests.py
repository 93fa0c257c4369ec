"""What an owner may ask for: the body of ``POST /v1/agents/{tokenId}/generations`` (and
of the WebSocket ``generate`` command and the legacy ``POST /api/generate``), checked and
normalised.

    {"kind": "text" | "image",
     "prompt": "...",                                  1 to MAX_PROMPT_CHARS, not blank
     "options": {"quality": "standard" | "high",       default standard
                 "size": "1024x768",                   images only
                 "strategy": "single" | "evaluate" | "orchestrate",   default single
                 "provider": "openai" | ...,           a hint: tried first if it is up
                 "style" / "styles", "subject" / "subjects", "modifier" / "modifiers"},
     "collaboratorTokenId": 7}                         draw on an agent that granted it

The package's own limits (its prices, ``max_prompt_chars``, ...) are checked later, with
the agent in hand (``inftd.agents.usage``). Options are stored with every default filled
in, so the same request is always stored the same way (idempotent replays compare them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from inftd.agents.learning import MAX_SIGNAL_CHARS, MAX_SIGNALS
from inftd.agents.limits import KINDS, QUALITIES
from inftd.agents.owners import MAX_STORED_TOKEN_ID
from inftd.daemon.generation.errors import BadGenerationRequest
from inftd.daemon.generation.types import Kind, Quality, Strategy
from inftd.daemon.providers.base import parse_size

MAX_PROMPT_CHARS = 32_000  # beyond any package's max_prompt_chars; refused before the lookup
STRATEGIES: tuple[Strategy, ...] = ("single", "evaluate", "orchestrate")
PROVIDERS = ("local", "local_llm", "embedded", "openai", "gemini", "cloudflare")  # hint names
SIGNAL_OPTIONS = ("style", "styles", "subject", "subjects", "modifier", "modifiers")
OPTIONS = frozenset({"quality", "size", "strategy", "provider", *SIGNAL_OPTIONS})
FIELDS = frozenset({"kind", "prompt", "options", "collaboratorTokenId"})


@dataclass(frozen=True)
class GenerationRequest:
    kind: Kind
    prompt: str
    options: dict[str, Any]  # normalised: quality and strategy always present
    collaborator: int | None = None

    @property
    def quality(self) -> Quality:
        return cast(Quality, self.options["quality"])

    def same_as(self, row: Any) -> bool:
        """Whether a stored generation (a row) was made from this very request."""
        return (
            row.kind == self.kind
            and row.prompt == self.prompt
            and dict(row.options or {}) == self.options
            and row.collaborator_token_id == self.collaborator
        )


def _text(value: Any, name: str, most: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > most:
        raise BadGenerationRequest(f"{name} must be a string of 1 to {most} characters")
    if "\x00" in value:  # PostgreSQL text cannot hold it: refused on every database alike
        raise BadGenerationRequest(f"{name} may not contain NUL (\\u0000)")
    return value


def _choice(options: Mapping[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = options.get(name, default)
    if value not in allowed:
        raise BadGenerationRequest(f"options.{name} must be one of {', '.join(allowed)}")
    return str(value)


def _signals(value: Any, name: str) -> str | list[str]:
    """A style/subject/modifier: a short string or a short list of them, kept as given."""
    items = value if isinstance(value, list) else [value]
    if not 0 < len(items) <= MAX_SIGNALS:
        raise BadGenerationRequest(f"options.{name} takes 1 to {MAX_SIGNALS} values")
    for item in items:
        _text(item, f"options.{name}", MAX_SIGNAL_CHARS)
    return cast(str | list[str], value)


def _size(kind: str, value: Any) -> str:
    if kind != "image":
        raise BadGenerationRequest("options.size applies to images only")
    if not isinstance(value, str):
        raise BadGenerationRequest("options.size must be a string WIDTHxHEIGHT")
    try:
        width, height = parse_size(value)
    except ValueError as exc:
        raise BadGenerationRequest(f"options.{exc}") from None
    return f"{width}x{height}"


def parse_options(kind: str, raw: Any) -> dict[str, Any]:
    """The options with defaults filled in; ``BadGenerationRequest`` naming the bad one."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise BadGenerationRequest("options must be an object")
    unknown = sorted(str(k) for k in set(raw) - OPTIONS)
    if unknown:
        raise BadGenerationRequest(f"unknown options: {', '.join(unknown)[:200]}")
    options: dict[str, Any] = {
        "quality": _choice(raw, "quality", QUALITIES, "standard"),
        "strategy": _choice(raw, "strategy", STRATEGIES, "single"),
    }
    if raw.get("size") is not None:
        options["size"] = _size(kind, raw["size"])
    if raw.get("provider") is not None:
        options["provider"] = _choice(raw, "provider", PROVIDERS, "local")
    for name in SIGNAL_OPTIONS:
        if raw.get(name) is not None:
            options[name] = _signals(raw[name], name)
    return options


def _collaborator(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadGenerationRequest("collaboratorTokenId must be a non-negative integer")
    if value > MAX_STORED_TOKEN_ID:
        raise BadGenerationRequest(f"collaboratorTokenId {value} has no agent")
    return value


def parse_request(body: Any) -> GenerationRequest:
    """The request in ``body``; ``BadGenerationRequest`` naming the first bad field."""
    if not isinstance(body, dict):
        raise BadGenerationRequest('send {"kind": "text" or "image", "prompt": "...", ...}')
    unknown = sorted(str(k) for k in set(body) - FIELDS)
    if unknown:
        raise BadGenerationRequest(f"unknown fields: {', '.join(unknown)[:200]}")
    kind = body.get("kind")
    if kind not in KINDS:
        raise BadGenerationRequest(f"kind must be one of {', '.join(KINDS)}")
    prompt = _text(body.get("prompt"), "prompt", MAX_PROMPT_CHARS)
    options = parse_options(kind, body.get("options"))
    return GenerationRequest(
        cast(Kind, kind), prompt, options, _collaborator(body.get("collaboratorTokenId"))
    )
