"""The Orchestrator-Workers' planner: splitting a compound request into sub-tasks.

A planner model is asked for ``{"parts": [{"title", "prompt"}, ...]}``. Its answer is read
leniently: the first JSON object with a list under ``parts``/``tasks``/``subtasks`` (or a
bare JSON list), items as objects (``prompt``/``task``/``description``, ``title``/``name``)
or plain strings; empty items are dropped, at most ``max_parts`` are kept, and fewer than
two is no plan. When there is no plan, or the local provider answered (it cannot plan),
``heuristic_plan`` splits the request itself, deterministically: the items of a bulleted
or numbered list in its first paragraph, else as many parts as it names ("a four-piece
collection", "3 poems", "a set of five") or ``default_parts``, each one facet of the theme.

The prompt builder's additions (the paragraphs after the owner's own words: style,
qualities, preferences, context) are carried into every part, so each part keeps the
agent's voice.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

MAX_PART_CHARS = 2000  # of one part's prompt
MAX_TITLE_CHARS = 80
PLAN_TOKENS = 800  # the planner's answer, at most
NUMBERS = {
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "pair": 2,
    "trio": 3,
    "triptych": 3,
    "diptych": 2,
    "quartet": 4,
}
UNITS = (
    r"pieces?|parts?|panels?|poems?|images?|pictures?|illustrations?|drawings?|paintings?|"
    r"stories|story|chapters?|verses?|stanzas?|scenes?|cards?|variations?|works?|items?|"
    r"sections?|posters?|frames?|studies|study|sketches|sketch|shots?|seasons?|haikus?"
)
_NUMBER = r"\b(\d{1,2}|" + "|".join(NUMBERS) + r")"
COUNT_PATTERNS = (
    re.compile(_NUMBER + r"(?:[\s-]+[^\W\d_]+)?[\s-]+(?:" + UNITS + r")\b", re.I),
    re.compile(r"\b(?:set|series|collection|suite|sequence) of " + _NUMBER + r"\b", re.I),
    re.compile(r"\b(pair|trio|triptych|diptych|quartet)\b", re.I),
)
LIST_ITEM = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+(.+?)\s*$")
FACETS = (
    "the opening",
    "a contrast",
    "a close detail",
    "the turn",
    "the wide view",
    "a quiet moment",
    "the height",
    "an echo",
    "a reflection",
    "a shift of light",
    "the unexpected",
    "a memory",
    "the surroundings",
    "motion",
    "stillness",
    "the close",
)
SYSTEM = (
    "You plan work for several writers or artists. Split the request into {n} "
    "self-contained sub-tasks that together fulfil it (fewer or more only if the request "
    "says so, at most {most}). Reply with one JSON object and nothing else: "
    '{{"parts": [{{"title": "<short title>", "prompt": "<the full instructions for this '
    'part>"}}]}}.'
)


@dataclass(frozen=True, slots=True)
class PartSpec:
    title: str
    prompt: str


def split_request(prompt: str) -> tuple[str, str]:
    """The owner's words (the first paragraph) and the builder's additions (the rest)."""
    first, _, rest = prompt.strip().partition("\n\n")
    return first.strip(), rest.strip()


def with_additions(prompt: str, additions: str) -> str:
    return f"{prompt}\n\n{additions}" if additions else prompt


def system_for(parts: int, most: int) -> str:
    return SYSTEM.format(n=parts, most=most)


def requested_count(text: str) -> int | None:
    """How many parts the request names, if it does."""
    for pattern in COUNT_PATTERNS:
        match = pattern.search(text)
        if match:
            word = match.group(1).casefold()
            return int(word) if word.isdigit() else NUMBERS[word]
    return None


def parse_plan(text: str, max_parts: int, additions: str = "") -> list[PartSpec] | None:
    """The planner's answer as parts, or None if it holds no plan of two or more."""
    items = _plan_items(text)
    if items is None:
        return None
    specs = [spec for item in items if (spec := _spec(item, additions)) is not None]
    return specs[:max_parts] if len(specs) >= 2 else None


def _plan_items(text: str) -> list[Any] | None:
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[\[{]", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, list):
            return value
        if isinstance(value, dict):
            for key in ("parts", "tasks", "subtasks", "sub_tasks"):
                if isinstance(value.get(key), list):
                    return list(value[key])
    return None


def _spec(item: Any, additions: str) -> PartSpec | None:
    if isinstance(item, str):
        prompt, title = item, item
    elif isinstance(item, dict):
        prompt = next((item[k] for k in ("prompt", "task", "description") if k in item), "")
        title = next((item[k] for k in ("title", "name") if k in item), prompt)
    else:
        return None
    if not isinstance(prompt, str) or not prompt.strip():
        return None
    title = " ".join(str(title).split())[:MAX_TITLE_CHARS] or "Part"
    body = with_additions(prompt.strip()[:MAX_PART_CHARS], additions)
    return PartSpec(title, body)


def heuristic_plan(prompt: str, default_parts: int, max_parts: int) -> list[PartSpec]:
    """A deterministic split of ``prompt`` (see the module docstring)."""
    first, additions = split_request(prompt)
    lines = first.splitlines()
    listed = [m.group(1) for line in lines if (m := LIST_ITEM.match(line))]
    if len(listed) >= 2:
        lead = " ".join(line.strip() for line in lines if not LIST_ITEM.match(line))
        return [
            PartSpec(item[:MAX_TITLE_CHARS], with_additions(f"{lead} {item}".strip(), additions))
            for item in listed[:max_parts]
        ]
    count = max(2, min(requested_count(first) or default_parts, max_parts))
    theme = " ".join(first.split())[:MAX_PART_CHARS]
    specs = []
    for i in range(count):
        facet = FACETS[i % len(FACETS)]
        title = f"Part {i + 1}: {facet}"
        body = f"Piece {i + 1} of {count} ({facet}) of: {theme}"
        specs.append(PartSpec(title, with_additions(body, additions)))
    return specs
