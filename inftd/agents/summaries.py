"""Extractive summaries of memories, for consolidation: no model, no provider call.

A summary is a header line and a body:

    [summary of 12 memories, 2030-01-01 to 2030-01-10; keywords: lighthouse, watercolor, ...]
    The most central sentences of the merged memories, in their original order.

Sentences are ranked by closeness (local hashing embedding) to the centroid of all of them,
each memory weighing what it stands for, shared out among its sentences; near-duplicates
are left out. Keywords are the words of the most memories, weighted by how rare they are
among all the agent's memories (so "owner", in every one of them, gives way to "lighthouse").
A summary can be merged again: its sentences, weight and date range carry over.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from inftd.agents.embeddings import hash_embedding, normalise, words

SUMMARY = "summary"  # the kind of merged memories
SUMMARY_CHARS = 800  # extracted sentences per summary, at most
SUMMARY_KEYWORDS = 8  # keywords named in a summary's header
SUMMARY_DEDUP = 0.9  # a sentence this similar to one already taken is left out
CENTRALITY_DIMENSIONS = 256  # of the local embedding that ranks sentences
MIN_KEYWORD = 3  # letters of a keyword, at least

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_RANGE = re.compile(r"^\[summary of \d+ memories, (\d{4}-\d{2}-\d{2}) to (\d{4}-\d{2}-\d{2});")


def utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes, which are UTC here."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def weight(row: Any) -> int:
    """How many memories a row stands for: a summary its ``merged``, any other one."""
    return max(1, int(row.merged or 0)) if row.kind == SUMMARY else 1


def sentences(row: Any) -> list[str]:
    """A memory's sentences; a summary's without its header line."""
    text = row.text.split("\n", 1)[1] if row.kind == SUMMARY and "\n" in row.text else row.text
    return [s.strip() for s in _SENTENCE.split(text) if s.strip()]


def date_range(row: Any) -> tuple[str, str]:
    """The first and last day a row covers: a summary's from its header, else its own."""
    found = _RANGE.match(row.text) if row.kind == SUMMARY else None
    if found:
        return found.group(1), found.group(2)
    day = utc(row.created_at).date().isoformat()
    return day, day


def summary_text(parts: Sequence[Any], corpus: Iterable[str] = ()) -> str:
    """The summary of ``parts``; ``corpus``, all the agent's texts, tells common words."""
    merged = sum(weight(p) for p in parts)
    ranges = [date_range(p) for p in parts]
    first, last = min(r[0] for r in ranges), max(r[1] for r in ranges)
    header = f"[summary of {merged} memories, {first} to {last}; keywords: "
    header += ", ".join(keywords(parts, corpus)) + "]"
    return header + "\n" + " ".join(central_sentences(parts))


def keywords(parts: Sequence[Any], corpus: Iterable[str] = ()) -> list[str]:
    """Words of the most memories (weighted by what each stands for) times their rarity."""
    documents = [set(words(text)) for text in corpus]
    frequency: Counter[str] = Counter(w for d in documents for w in d)
    scores: Counter[str] = Counter()
    for p in parts:
        for word in set(words(" ".join(sentences(p)))):
            if len(word) >= MIN_KEYWORD and not word.isdigit():
                scores[word] += weight(p)
    rarity = {w: math.log((1 + len(documents)) / (1 + frequency[w])) + 1 for w in scores}
    ranked = sorted(scores, key=lambda w: (-scores[w] * rarity[w], w))
    return ranked[:SUMMARY_KEYWORDS]


def central_sentences(parts: Sequence[Any]) -> list[str]:
    """The sentences closest to the centroid of all, within ``SUMMARY_CHARS``, in order."""
    found = [(s, weight(p) / len(ss)) for p in parts if (ss := sentences(p)) for s in ss]
    if not found:
        return []
    vectors = np.stack([hash_embedding(s, CENTRALITY_DIMENSIONS) for s, _ in found])
    shares = np.array([w for _, w in found], dtype=np.float32)
    centroid = normalise((vectors * shares[:, None]).sum(axis=0))
    chosen: list[int] = []
    used = 0
    for i in np.argsort(-(vectors @ centroid), kind="stable"):
        text = found[i][0]
        if chosen and used + len(text) > SUMMARY_CHARS:
            continue
        if any(float(vectors[i] @ vectors[j]) > SUMMARY_DEDUP for j in chosen):
            continue
        chosen.append(int(i))
        used += len(text) + 1
    return [found[i][0][:SUMMARY_CHARS] for i in sorted(chosen)]
