"""The Evaluator-Optimizer's judge: what it is asked, how its answer is read, and the
offline judge used when the local provider answered.

A judge model is asked for one JSON object ``{"score": 0-10, "critique": "..."}``. Its
answer is read leniently: the first JSON object holding a score (code fences and prose
around it are fine), else a "score: 7", "7/10" or "7 out of 10" in the text. A score
outside 0-10, or none at all, is no score (``Verdict.score`` is None): the loop goes on
with the text as the critique, and a scored draft always beats an unscored one.

The local provider cannot judge (it writes prose from the prompt), so when it is the one
that answered, ``heuristic_verdict`` scores instead: deterministically, from how many of
the request's own words (its first paragraph, the owner's words) the draft carries, whether
it honours the prompt builder's ``Style:``/``Qualities:``/``Preferences:`` lines, and
whether it is long enough. For an image the judge reads the *prompt* sent to the image
model, never the pixels (providers here take no image input): the score says how well that
prompt states the request, not how well the picture matches it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

MAX_SCORE = 10.0
MAX_JUDGED_CHARS = 6000  # of a draft shown to the judge
MAX_CRITIQUE_CHARS = 500
MAX_KEYWORDS = 12  # request words the heuristic looks for
MIN_TEXT_WORDS = 30  # a text draft shorter than this is thin
MIN_PROMPT_WORDS = 8  # an image prompt shorter than this is thin
JUDGE_TOKENS = 300  # the judge's answer, at most

SYSTEM = (
    "You are a strict reviewer. Rate how well the draft fulfils the request, from 0 "
    "(not at all) to 10 (perfectly). Reply with one JSON object and nothing else: "
    '{"score": <number 0-10>, "critique": "<one or two sentences on what to improve>"}.'
)
IMAGE_SYSTEM = (
    "You are a strict reviewer of prompts for an image model. Rate how well the image "
    "prompt states everything the request asks for, from 0 (not at all) to 10 (fully and "
    "vividly). Reply with one JSON object and nothing else: "
    '{"score": <number 0-10>, "critique": "<one or two sentences on what to improve>"}.'
)
_COMMON = (  # words that say nothing of what a request is about
    "the and with for from that this into about are was were its his her their our "
    "your you them they has have had not but all any can will would should could very "
    "more most some such than then there these those what when where which while who "
    "whom why how also just only over under onto upon each every make write draw create give"
)
STOPWORDS = frozenset(_COMMON.split())
WORD = re.compile(r"[^\W\d_]{3,}")
DIRECTIVE = re.compile(r"^(Style|Qualities|Preferences):\s*(.+?)\.?$", re.M)
SCORE_PATTERNS = (
    re.compile(r"\bscore\b\W{0,3}(\d{1,2}(?:\.\d+)?)", re.I),
    re.compile(r"(\d{1,2}(?:\.\d+)?)\s*(?:/|out of)\s*10\b", re.I),
)
FENCE = re.compile(r"```(?:json)?", re.I)

Source = Literal["judge", "heuristic"]


@dataclass(frozen=True, slots=True)
class Verdict:
    score: float | None  # 0-10; None: the judge gave none that could be read
    critique: str
    source: Source

    def as_json(self) -> dict[str, Any]:
        return {"score": self.score, "critique": self.critique, "source": self.source}


def judge_prompt(request: str, draft: str, *, image: bool = False) -> str:
    what = "Image prompt" if image else "Draft"
    return f"Request:\n{request.strip()}\n\n{what}:\n{draft.strip()[:MAX_JUDGED_CHARS]}"


def system_for(image: bool) -> str:
    return IMAGE_SYSTEM if image else SYSTEM


def parse_verdict(text: str) -> Verdict:
    """The judge's answer read leniently (see the module docstring)."""
    found = _json_verdict(FENCE.sub(" ", text))
    if found is not None:
        return found
    for pattern in SCORE_PATTERNS:
        match = pattern.search(text)
        if match:
            return Verdict(_in_range(float(match.group(1))), _clip(text), "judge")
    return Verdict(None, _clip(text) or "the judge gave no answer", "judge")


def _json_verdict(text: str) -> Verdict | None:
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, dict) and "score" in value:
            critique = value.get("critique") or value.get("feedback") or value.get("reason")
            return Verdict(_number(value["score"]), _clip(str(critique or "")), "judge")
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return _in_range(float(value))
    if isinstance(value, str):
        try:
            return _in_range(float(value.strip().split("/")[0]))
        except ValueError:
            return None
    return None


def _in_range(score: float) -> float | None:
    return score if 0.0 <= score <= MAX_SCORE else None


def _clip(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_CRITIQUE_CHARS else flat[: MAX_CRITIQUE_CHARS - 1] + "…"


# --- the offline judge ------------------------------------------------------------------


def keywords(text: str) -> list[str]:
    """The content words of ``text``'s first paragraph, in order, once each."""
    first = text.strip().split("\n\n")[0].casefold()
    seen: list[str] = []
    for word in WORD.findall(first):
        if word not in STOPWORDS and word not in seen:
            seen.append(word)
    return seen[:MAX_KEYWORDS]


def _directives(request: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for key, value in DIRECTIVE.findall(request):
        words = [w for w in WORD.findall(value.casefold()) if w not in STOPWORDS]
        if words:
            found[key.casefold()] = words
    return found


def heuristic_verdict(request: str, draft: str, *, image: bool = False) -> Verdict:
    """A deterministic 0-10 score of ``draft`` against ``request``, and what it lacks."""
    body = draft.casefold()
    wanted = keywords(request)
    missing = [w for w in wanted if w not in body]
    coverage = 1 - len(missing) / len(wanted) if wanted else 1.0
    directives = _directives(request)
    unmet = [k for k, words in directives.items() if not any(w in body for w in words)]
    honoured = 1 - len(unmet) / len(directives) if directives else 1.0
    least = MIN_PROMPT_WORDS if image else MIN_TEXT_WORDS
    length = min(len(draft.split()) / least, 1.0)
    score = round(MAX_SCORE * (0.6 * coverage + 0.25 * honoured + 0.15 * length), 1)
    notes = []
    if missing:
        notes.append("Bring in: " + ", ".join(missing) + ".")
    if unmet:
        notes.append("Honour the " + ", ".join(unmet) + " asked for.")
    if length < 1:
        notes.append("Say more." if not image else "Describe the scene in more detail.")
    return Verdict(score, " ".join(notes) or "It covers the request.", "heuristic")
