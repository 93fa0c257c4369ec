"""Extractive summaries: header, central sentences within the budget, rare keywords."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from inftd.agents.summaries import (
    SUMMARY,
    SUMMARY_CHARS,
    central_sentences,
    date_range,
    keywords,
    summary_text,
    weight,
)

DAY = datetime(2030, 1, 1, tzinfo=UTC)


def memory(text: str, day: int = 0, kind: str = "note", merged: int = 0) -> Any:
    return SimpleNamespace(
        id=day, kind=kind, text=text, merged=merged, created_at=DAY + timedelta(days=day)
    )


def test_the_header_counts_and_dates_what_it_stands_for() -> None:
    parts = [memory("A red fox.", 0), memory("A red fox again.", 3)]
    first = summary_text(parts)
    assert first.startswith("[summary of 2 memories, 2030-01-01 to 2030-01-04; keywords: ")
    again = summary_text([memory(first, 9, SUMMARY, merged=2), memory("A blue jay.", 12)])
    assert again.startswith("[summary of 3 memories, 2030-01-01 to 2030-01-13;")
    assert date_range(memory(again, 20, SUMMARY, 3)) == ("2030-01-01", "2030-01-13")
    assert weight(memory(again, 20, SUMMARY, 3)) == 3
    assert weight(memory("plain")) == 1


def test_the_central_sentences_fill_the_budget_in_their_order() -> None:
    moods = "calm stormy misty golden grey bright quiet windy cold warm pale dark wild soft lush"
    moods += " faint bold deep hazy icy"
    on_topic = [
        memory(f"The owner liked the {mood} lighthouse watercolor at dawn.", i)
        for i, mood in enumerate(moods.split())
    ]
    stray = memory("Quarterly invoices are due on Friday.", 99)
    chosen = central_sentences([stray, *on_topic])
    assert sum(len(s) + 1 for s in chosen) <= SUMMARY_CHARS + 1
    assert len(chosen) < len(on_topic)  # the budget is full...
    assert "Quarterly invoices are due on Friday." not in chosen  # ...of the central ones
    days = [int(next(p.id for p in on_topic if p.text == s)) for s in chosen]
    assert days == sorted(days)  # told in their original order


def test_near_duplicates_are_told_once() -> None:
    same = [memory("The owner loves teal and orange.", i) for i in range(4)]
    assert central_sentences(same) == ["The owner loves teal and orange."]


def test_keywords_prefer_words_rare_among_all_memories() -> None:
    parts = [memory("The owner wants a lighthouse."), memory("The owner likes lighthouse art.")]
    corpus = [p.text for p in parts] + [f"The owner asked for item {i}." for i in range(20)]
    assert keywords(parts, corpus)[0] == "lighthouse"
    assert keywords(parts, corpus).index("owner") > keywords(parts, corpus).index("lighthouse")
