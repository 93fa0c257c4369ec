"""The prompt builder: what the agent adds to a request before a provider sees it.

A pure function (no I/O): the caller hands it the request, the owner's preferences, the
agent's evolution (inftd.agents.learning), the texts of its top memories and its
influences, and gets the provider prompt and an explanation of every addition, so the
generation record (and tests) can see why a prompt says what it says.

Order of authority for styles: the request's own style wins alone; otherwise the owner's
``style`` preference, then learned styles whose weight is at least ``LEARNED_THRESHOLD``
(strongest first), up to ``MAX_STYLES``; then up to ``MAX_INFLUENCES`` influences not
already there. Learned modifiers (at least ``LEARNED_THRESHOLD``) follow the request's
own. Preferences named in ``PROMPT_PREFERENCES`` with string values are added as such;
other preferences (numbers, switches) are for the provider call, not the text.
Memories are context for text generations only (image models take short prompts).
The learned providers and models are not prompt text: they are handed on as ``hints``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from inftd.agents.learning import MIN_WEIGHT, signal, signals_of, top_weights

LEARNED_THRESHOLD = 1.5  # two 5-star ratings (or three 4-star) make a style part of prompts
MAX_STYLES = 3  # styles named in one prompt
MAX_MODIFIERS = 4  # learned modifiers added to one prompt
MAX_INFLUENCES = 2  # influences added to one prompt
MAX_MEMORIES = 5  # memories given as context
MAX_MEMORY_CHARS = 300  # characters of one memory in the prompt
MAX_PREFERENCE_CHARS = 100  # characters of one preference value in the prompt
MAX_HINTS = 3  # providers and models handed on as hints
# Preferences that describe the output and so belong in the prompt text.
PROMPT_PREFERENCES = ("tone", "mood", "palette", "medium", "lighting", "language", "audience")
TEXT = "text"


@dataclass(frozen=True, slots=True)
class PromptRequest:
    kind: str  # "text" or "image"
    prompt: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BuiltPrompt:
    text: str
    explanation: dict[str, Any]  # JSON: what was added, from where, with which weight


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _added(value: str, source: str, weight: float | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"value": value, "source": source}
    if weight is not None:
        item["weight"] = round(weight, 3)
    return item


def _styles(
    request: PromptRequest, preferences: Mapping[str, Any], evolution: Any, now: datetime
) -> list[dict[str, Any]]:
    own = signals_of(request.options, None, None)["styles"]
    if own:
        return [_added(s, "request") for s in own[:MAX_STYLES]]
    chosen: list[dict[str, Any]] = []
    preferred = signal(preferences.get("style"))
    if preferred:
        chosen.append(_added(preferred, "preferences"))
    for style, weight in top_weights(evolution, "styles", now, MAX_STYLES, LEARNED_THRESHOLD):
        if len(chosen) < MAX_STYLES and style not in {c["value"] for c in chosen}:
            chosen.append(_added(style, "learned", weight))
    return chosen


def _modifiers(request: PromptRequest, evolution: Any, now: datetime) -> list[dict[str, Any]]:
    own = signals_of(request.options, None, None)["modifiers"]
    chosen = [_added(m, "request") for m in own]
    learned = top_weights(evolution, "modifiers", now, MAX_MODIFIERS, LEARNED_THRESHOLD)
    chosen += [_added(m, "learned", w) for m, w in learned if m not in own]
    return chosen


def _influences(
    request: PromptRequest, influences: Sequence[str], taken: set[str]
) -> list[dict[str, Any]]:
    if signals_of(request.options, None, None)["styles"]:
        return []  # the request chose its style: no other style is mixed in
    chosen: list[dict[str, Any]] = []
    for raw in influences:
        style = signal(raw)
        if style and style not in taken and len(chosen) < MAX_INFLUENCES:
            taken.add(style)
            chosen.append(_added(style, "influence"))
    return chosen


def _preferences(preferences: Mapping[str, Any]) -> dict[str, str]:
    used: dict[str, str] = {}
    for key in PROMPT_PREFERENCES:
        value = preferences.get(key)
        if isinstance(value, str) and value.strip():
            used[key] = _one_line(value, MAX_PREFERENCE_CHARS)
    return used


def _memories(request: PromptRequest, memories: Sequence[str]) -> list[str]:
    if request.kind != TEXT:
        return []
    texts = (_one_line(m, MAX_MEMORY_CHARS) for m in memories if m and m.strip())
    return list(texts)[:MAX_MEMORIES]


def _hints(evolution: Any, now: datetime) -> dict[str, list[str]]:
    return {
        name: [v for v, _ in top_weights(evolution, name, now, MAX_HINTS, MIN_WEIGHT)]
        for name in ("providers", "models")
    }


def _text_prompt(prompt: str, parts: Mapping[str, Any]) -> str:
    extra: list[str] = []
    if parts["styles"]:
        extra.append("Style: " + ", ".join(s["value"] for s in parts["styles"]) + ".")
    if parts["modifiers"]:
        extra.append("Qualities: " + ", ".join(m["value"] for m in parts["modifiers"]) + ".")
    if parts["influences"]:
        extra.append(
            "Subtle influences: " + ", ".join(i["value"] for i in parts["influences"]) + "."
        )
    if parts["preferences"]:
        extra.append(
            "Preferences: " + "; ".join(f"{k}: {v}" for k, v in parts["preferences"].items()) + "."
        )
    if parts["memories"]:
        extra.append(
            "Context from earlier work:\n" + "\n".join(f"- {m}" for m in parts["memories"])
        )
    return "\n\n".join([prompt.strip(), "\n".join(extra)]) if extra else prompt.strip()


def _image_prompt(prompt: str, parts: Mapping[str, Any]) -> str:
    phrases = [prompt.strip().rstrip(",")]
    phrases += [f"{s['value']} style" for s in parts["styles"]]
    phrases += [m["value"] for m in parts["modifiers"]]
    phrases += [f"hints of {i['value']}" for i in parts["influences"]]
    phrases += [f"{k}: {v}" for k, v in parts["preferences"].items()]
    return ", ".join(phrases)


def build_prompt(
    request: PromptRequest,
    *,
    now: datetime,
    preferences: Mapping[str, Any] | None = None,
    evolution: Mapping[str, Any] | None = None,
    memories: Sequence[str] = (),
    influences: Sequence[str] = (),
) -> BuiltPrompt:
    """The provider prompt for ``request`` and the explanation of what was added.

    ``now`` decays the learned weights (inftd.agents.learning.HALF_LIFE)."""
    preferences = preferences or {}
    styles = _styles(request, preferences, evolution, now)
    taken = {s["value"] for s in styles}
    parts: dict[str, Any] = {
        "styles": styles,
        "modifiers": _modifiers(request, evolution, now),
        "influences": _influences(request, influences, taken),
        "preferences": _preferences(preferences),
        "memories": _memories(request, memories),
    }
    compose = _text_prompt if request.kind == TEXT else _image_prompt
    text = compose(request.prompt, parts)
    return BuiltPrompt(text, {**parts, "hints": _hints(evolution, now)})
