"""The prompt builder: learning changes the prompt; preferences, memories and influences
appear in it, and the explanation says where each addition came from."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.agents.learning import HALF_LIFE, Lesson, learn
from inftd.agents.prompts import (
    LEARNED_THRESHOLD,
    MAX_INFLUENCES,
    MAX_MEMORIES,
    MAX_STYLES,
    BuiltPrompt,
    PromptRequest,
    build_prompt,
)
from tests.agents.learning_helpers import NOW, add_agent, agent_row, migrated, rate

IMAGE = PromptRequest("image", "a lighthouse at dusk")
TEXT = PromptRequest("text", "Write a short poem about the sea.")


def sources(built: BuiltPrompt, part: str = "styles") -> dict[str, str]:
    return {item["value"]: item["source"] for item in built.explanation[part]}


def taught(*ratings: tuple[str, float]) -> dict[str, Any]:
    evolution: dict[str, Any] = {}
    for style, strength in ratings:
        evolution = learn(evolution, Lesson({"styles": (style,)}, strength), NOW)
    return evolution


# Pure


def test_a_bare_request_is_left_alone() -> None:
    assert build_prompt(IMAGE, now=NOW).text == "a lighthouse at dusk"
    assert build_prompt(TEXT, now=NOW).text == "Write a short poem about the sea."


def test_learned_styles_appear_only_above_the_threshold() -> None:
    once = taught(("noir", 1.0))
    assert "noir" not in build_prompt(IMAGE, now=NOW, evolution=once).text
    twice = taught(("noir", 1.0), ("noir", 1.0))
    built = build_prompt(IMAGE, now=NOW, evolution=twice)
    assert built.text == "a lighthouse at dusk, noir style"
    assert built.explanation["styles"] == [{"value": "noir", "source": "learned", "weight": 2.0}]
    faded = build_prompt(IMAGE, now=NOW + HALF_LIFE, evolution=twice)  # 2.0 -> 1.0
    assert faded.explanation["styles"] == []
    assert LEARNED_THRESHOLD > 1.0  # one 5-star rating is not a habit


def test_the_request_style_wins_then_the_preference_then_learning() -> None:
    evolution = taught(*[("noir", 1.0)] * 3, *[("pop", 1.0)] * 2, *[("ink", 1.0)] * 2)
    own = PromptRequest("image", "a lighthouse", {"style": "Watercolor"})
    built = build_prompt(own, now=NOW, evolution=evolution, influences=["art deco"])
    assert sources(built) == {"watercolor": "request"}
    assert built.explanation["influences"] == []
    built = build_prompt(IMAGE, now=NOW, evolution=evolution, preferences={"style": "Ukiyo-e"})
    assert list(sources(built).items()) == [
        ("ukiyo-e", "preferences"),
        ("noir", "learned"),
        ("ink", "learned"),
    ]
    assert len(built.explanation["styles"]) == MAX_STYLES


def test_preferences_memories_and_influences_appear_in_a_text_prompt() -> None:
    memories = [f"memory {i}: the owner liked\nshort lines" for i in range(MAX_MEMORIES + 2)]
    built = build_prompt(
        TEXT,
        now=NOW,
        preferences={"tone": "wistful", "language": "French", "temperature": 0.7, "nsfw": False},
        memories=memories,
        influences=["Art Deco", "art deco", "haiku", "sonnet"],
    )
    assert built.text.startswith("Write a short poem about the sea.\n\n")
    assert "Preferences: tone: wistful; language: French." in built.text
    assert "temperature" not in built.text
    assert "- memory 0: the owner liked short lines" in built.text
    assert f"memory {MAX_MEMORIES - 1}" in built.text
    assert f"memory {MAX_MEMORIES}" not in built.text
    assert "Subtle influences: art deco, haiku." in built.text
    assert len(built.explanation["influences"]) == MAX_INFLUENCES
    assert built.explanation["preferences"] == {"tone": "wistful", "language": "French"}
    assert len(built.explanation["memories"]) == MAX_MEMORIES


def test_images_take_no_memories_and_modifiers_join_as_phrases() -> None:
    evolution: dict[str, Any] = {}
    for _ in range(2):
        evolution = learn(evolution, Lesson({"modifiers": ("grainy",)}, 1.0), NOW)
    request = PromptRequest("image", "a lighthouse", {"modifiers": ["wide angle"]})
    built = build_prompt(
        request, now=NOW, evolution=evolution, memories=["a memory"], influences=["ink"]
    )
    assert built.text == "a lighthouse, wide angle, grainy, hints of ink"
    assert sources(built, "modifiers") == {"wide angle": "request", "grainy": "learned"}
    assert built.explanation["memories"] == []


def test_learned_providers_and_models_are_hints_not_text() -> None:
    evolution = learn({}, Lesson({"providers": ("openai",), "models": ("gpt-4o",)}, 1.0), NOW)
    built = build_prompt(TEXT, now=NOW, evolution=evolution)
    assert built.explanation["hints"] == {"providers": ["openai"], "models": ["gpt-4o"]}
    assert "openai" not in built.text


# Through real feedback in the database


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    async with migrated(database_url) as engine:
        await add_agent(engine, 1)
        yield engine


async def prompt_of(engine: AsyncEngine) -> BuiltPrompt:
    agent = await agent_row(engine, 1)
    return build_prompt(IMAGE, now=NOW, preferences=agent.preferences, evolution=agent.evolution)


async def test_repeated_high_ratings_put_a_style_in_the_next_prompt_and_low_ones_take_it_out(
    engine: AsyncEngine,
) -> None:
    assert "noir" not in (await prompt_of(engine)).text
    await rate(engine, 1, 5, {"style": "noir"})
    assert "noir" not in (await prompt_of(engine)).text  # once is not enough
    await rate(engine, 1, 5, {"style": "noir"})
    await rate(engine, 1, 4, {"subject": "harbour"}, tags=["style:noir"])
    carried = await prompt_of(engine)
    assert "noir style" in carried.text
    assert sources(carried) == {"noir": "learned"}
    for _ in range(2):
        await rate(engine, 1, 1, {"style": "noir"})
    assert "noir" not in (await prompt_of(engine)).text
