"""Learning: feedback shapes, decayed and bounded weights, levels, collaborative lessons,
once-per-generation feedback and reset, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.agents.errors import (
    BadFeedback,
    FeedbackExists,
    GenerationNotSucceeded,
    UnknownGeneration,
)
from inftd.agents.learning import (
    COLLABORATOR_SHARE,
    HALF_LIFE,
    MAX_LEVEL,
    MAX_PER_DIMENSION,
    MAX_TAGS,
    MAX_WEIGHT,
    MIN_WEIGHT,
    XP_COLLABORATION,
    XP_FEEDBACK,
    Feedback,
    Lesson,
    catch_up_collaborators,
    current_weights,
    experience_for,
    gain_experience,
    learn,
    learning_entries,
    level_of,
    parse_feedback,
    record_feedback,
    reset_learning,
    signals_of,
    styles_of,
    untaught_collaborations,
)
from inftd.agents.views import agent_state
from inftd.agents.writer import AgentWriter
from inftd.store.models import Agent, LearningEntry, Memory
from tests.agents.learning_helpers import (
    EMBEDDER,
    NOW,
    add_agent,
    add_generation,
    agent_row,
    event_types,
    migrated,
    rate,
)

NOIR = {"style": "noir"}


def lesson(strength: float, *styles: str) -> Lesson:
    return Lesson({"styles": styles}, strength)


# Feedback and signals (pure)


def test_feedback_is_a_rating_with_a_few_tags_and_a_short_note() -> None:
    got = parse_feedback({"rating": 5, "tags": [" Style:Noir ", "moody", "moody"], "note": " ok "})
    assert got == Feedback(5, ("style:noir", "moody"), "ok")
    assert parse_feedback({"rating": 1}) == Feedback(1)


@pytest.mark.parametrize(
    "body",
    [
        [],
        {},
        {"rating": 0},
        {"rating": 6},
        {"rating": True},
        {"rating": 4.5},
        {"rating": "5"},
        {"rating": 5, "tags": "noir"},
        {"rating": 5, "tags": ["x"] * (MAX_TAGS + 1)},
        {"rating": 5, "tags": ["   "]},
        {"rating": 5, "tags": ["a\x00b"]},
        {"rating": 5, "tags": [3]},
        {"rating": 5, "note": "x" * 1001},
        {"rating": 5, "note": "nul\x00"},
        {"rating": 5, "stars": 5},
    ],
)
def test_other_feedback_is_refused(body: Any) -> None:
    with pytest.raises(BadFeedback):
        parse_feedback(body)


def test_signals_come_from_options_provider_model_and_tags() -> None:
    options = {"style": ["Noir", "watercolor"], "subject": "harbour", "modifiers": "grainy"}
    got = signals_of(options, "OpenAI", "gpt-image-1", ["style:art deco", "moody", "subject:fog"])
    assert got == {
        "styles": ("noir", "watercolor", "art deco"),
        "subjects": ("harbour", "fog"),
        "modifiers": ("grainy", "moody"),
        "providers": ("openai",),
        "models": ("gpt-image-1",),
    }
    assert signals_of({"style": {"nested": 1}, "subject": "x" * 41}, None, None)["styles"] == ()
    tags = ["style:art deco", "moody"]
    assert styles_of(options, tags) == signals_of(options, None, None, tags)["styles"]
    assert styles_of(None, ["style:", "style:ink"]) == ("ink",)


# Weights: decay, bounds


def test_old_signals_fade_with_the_half_life() -> None:
    evolution = learn({}, lesson(1.0, "noir"), NOW)
    assert current_weights(evolution, NOW)["styles"] == {"noir": 1.0}
    assert current_weights(evolution, NOW + HALF_LIFE)["styles"] == {"noir": 0.5}
    assert current_weights(evolution, NOW + 2 * HALF_LIFE)["styles"] == {"noir": 0.25}
    later = learn(evolution, lesson(1.0, "noir", "pop"), NOW + HALF_LIFE)
    assert current_weights(later, NOW + HALF_LIFE)["styles"] == {"noir": 1.5, "pop": 1.0}
    assert current_weights(evolution, NOW + 10 * HALF_LIFE)["styles"] == {}  # below MIN_WEIGHT


def test_weights_are_clamped_pruned_and_few() -> None:
    evolution: dict[str, Any] = {}
    for _ in range(20):
        evolution = learn(evolution, lesson(1.0, "noir"), NOW)
    assert current_weights(evolution, NOW)["styles"] == {"noir": MAX_WEIGHT}
    for i in range(3 * MAX_PER_DIMENSION):
        evolution = learn(evolution, lesson(0.5 + i / 1000, f"s{i}"), NOW)
    styles = current_weights(evolution, NOW)["styles"]
    assert len(styles) == MAX_PER_DIMENSION
    assert "noir" in styles  # the strongest are kept
    assert "s0" not in styles
    faded = learn(evolution, lesson(-1.0, "noir"), NOW + 8 * HALF_LIFE)
    assert all(abs(w) >= MIN_WEIGHT for w in current_weights(faded, NOW)["styles"].values())
    assert "s0" not in faded["weights"]["styles"]


def test_a_three_star_rating_teaches_nothing_and_one_star_pushes_down() -> None:
    neutral = learn({}, lesson(0.0, "noir"), NOW)
    assert current_weights(neutral, NOW)["styles"] == {}
    down = learn({}, lesson(-1.0, "noir"), NOW)
    assert current_weights(down, NOW)["styles"] == {"noir": -1.0}


# Levels


def test_the_level_is_a_function_of_experience() -> None:
    assert [level_of(x) for x in (0, 49, 50, 199, 200, 450)] == [1, 1, 2, 2, 3, 4]
    for level in range(2, MAX_LEVEL + 1):
        assert level_of(experience_for(level)) == level
        assert level_of(experience_for(level) - 1) == level - 1
    assert level_of(10**12) == MAX_LEVEL


# In the database


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    async with migrated(database_url) as engine:
        for token_id in (1, 2, 3):
            await add_agent(engine, token_id)
        yield engine


async def count(engine: AsyncEngine, model: Any, token_id: int) -> int:
    async with engine.connect() as conn:
        found = await conn.scalar(
            select(func.count()).select_from(model).where(model.token_id == token_id)
        )
    return int(found or 0)


async def feedback_on(engine: AsyncEngine, token_id: int, generation_id: str) -> None:
    """One star on ``generation_id`` in ``token_id``'s writer, phase one only."""
    async with AgentWriter(engine).write(token_id) as (conn, agent):
        await record_feedback(conn, EMBEDDER, agent, generation_id, Feedback(1), NOW)


async def test_feedback_stores_an_entry_teaches_and_remembers(engine: AsyncEngine) -> None:
    outcome = await rate(engine, 1, 5, {"style": "noir", "subject": "harbour"}, tags=["moody"])
    assert outcome.entry.rating == 5
    assert outcome.entry.tags == ["moody"]
    assert (outcome.experience, outcome.level, outcome.collaborator) == (XP_FEEDBACK, 1, None)
    agent = await agent_row(engine, 1)
    weights = current_weights(agent.evolution, NOW)
    assert weights["styles"] == {"noir": 1.0}
    assert weights["subjects"] == {"harbour": 1.0}
    assert weights["modifiers"] == {"moody": 1.0}
    assert weights["providers"] == {"local": 1.0}
    assert agent.experience == XP_FEEDBACK
    async with engine.connect() as conn:
        memory = (await conn.execute(select(Memory).where(Memory.token_id == 1))).one()
        assert await event_types(conn, 1) == ["feedback.received", "agent.updated", "memory.added"]
        state = await agent_state(conn, 1)
    assert memory.kind == "feedback"
    assert "5/5" in memory.text
    assert "moody" in memory.text
    assert memory.source_id == outcome.entry.generation_id
    assert state["learningData"][0]["rating"] == 5
    assert state["experience"] == XP_FEEDBACK


async def test_crossing_a_level_publishes_a_level_up(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(update_experience(1, experience_for(2) - 1))
    outcome = await rate(engine, 1, 4, NOIR)
    assert outcome.level == 2
    async with engine.connect() as conn:
        assert "agent.level_up" in await event_types(conn, 1)
    assert (await agent_row(engine, 1)).level == 2
    async with AgentWriter(engine).write(2) as (conn, agent):
        assert await gain_experience(conn, agent, experience_for(3), NOW) == 3
    async with engine.connect() as conn:
        assert await event_types(conn, 2) == ["agent.updated", "agent.level_up"]


def update_experience(token_id: int, experience: int) -> Any:
    return update(Agent).where(Agent.token_id == token_id).values(experience=experience)


async def test_each_generation_takes_one_feedback_and_a_refusal_changes_nothing(
    engine: AsyncEngine,
) -> None:
    generation_id = await add_generation(engine, 1, NOIR)
    writer = AgentWriter(engine)
    async with writer.write(1) as (conn, agent):
        await record_feedback(conn, EMBEDDER, agent, generation_id, Feedback(5), NOW)
    before = await agent_row(engine, 1)
    running = await add_generation(engine, 1, NOIR, status="running")
    theirs = await add_generation(engine, 2, NOIR)
    refusals: list[tuple[str, type[Exception]]] = [
        (generation_id, FeedbackExists),
        (running, GenerationNotSucceeded),
        (theirs, UnknownGeneration),
        ("no-such-generation", UnknownGeneration),
    ]
    for target, refused in refusals:
        with pytest.raises(refused):
            await feedback_on(engine, 1, target)
    after = await agent_row(engine, 1)
    assert (after.evolution, after.experience) == (before.evolution, before.experience)
    assert await count(engine, LearningEntry, 1) == 1
    assert await count(engine, Memory, 1) == 1


async def test_a_collaborative_generation_teaches_both_agents(engine: AsyncEngine) -> None:
    outcome = await rate(engine, 1, 5, NOIR, collaborator=2)
    assert outcome.collaborator == 2
    rater, collaborator = await agent_row(engine, 1), await agent_row(engine, 2)
    assert current_weights(rater.evolution, NOW)["styles"] == {"noir": 1.0}
    assert current_weights(collaborator.evolution, NOW)["styles"] == {"noir": COLLABORATOR_SHARE}
    assert (rater.experience, collaborator.experience) == (XP_FEEDBACK, XP_COLLABORATION)
    async with engine.connect() as conn:
        (taught,) = await learning_entries(conn, 2, collaborator.evolution, 10, None)
        assert await event_types(conn, 2) == ["feedback.received", "agent.updated", "memory.added"]
        assert await untaught_collaborations(conn, 10) == []
    assert taught.generation_id == outcome.entry.generation_id
    assert taught.note is None
    assert await count(engine, LearningEntry, 3) == 0


async def test_a_lesson_lost_between_the_two_agents_is_caught_up_once(
    engine: AsyncEngine,
) -> None:
    generation_id = await add_generation(engine, 1, NOIR, collaborator=2)
    writer = AgentWriter(engine)
    async with writer.write(1) as (conn, agent):  # the rater's half only: a crash after it
        await record_feedback(conn, EMBEDDER, agent, generation_id, Feedback(5), NOW)
    async with engine.connect() as conn:
        assert await untaught_collaborations(conn, 10) == [(2, generation_id)]
    assert await catch_up_collaborators(writer, EMBEDDER, NOW) == 1
    assert await catch_up_collaborators(writer, EMBEDDER, NOW) == 0
    collaborator = await agent_row(engine, 2)
    assert current_weights(collaborator.evolution, NOW)["styles"] == {"noir": COLLABORATOR_SHARE}
    assert await count(engine, LearningEntry, 2) == 1


async def test_reset_forgets_the_weights_and_entries_but_not_experience(
    engine: AsyncEngine,
) -> None:
    first = await rate(engine, 1, 5, NOIR)
    await rate(engine, 1, 4, NOIR)
    async with AgentWriter(engine).write(1) as (conn, agent):
        cleared = await reset_learning(conn, agent, NOW)
    agent = await agent_row(engine, 1)
    assert current_weights(cleared, NOW)["styles"] == {}
    assert current_weights(agent.evolution, NOW)["styles"] == {}
    assert agent.experience == 2 * XP_FEEDBACK
    async with engine.connect() as conn:
        assert await learning_entries(conn, 1, agent.evolution, 10, None) == []
        assert (await agent_state(conn, 1))["learningData"] == []
    with pytest.raises(FeedbackExists):  # the entries are hidden, not deleted
        await feedback_on(engine, 1, first.entry.generation_id)
    fresh = await rate(engine, 1, 5, {"style": "pop"}, now=NOW + timedelta(seconds=1))
    agent = await agent_row(engine, 1)
    async with engine.connect() as conn:
        shown = await learning_entries(conn, 1, agent.evolution, 10, None)
    assert [e.id for e in shown] == [fresh.entry.id]
    assert current_weights(agent.evolution, NOW)["styles"] == {"pop": 1.0}


async def test_learning_entries_page_backwards_by_id(engine: AsyncEngine) -> None:
    ids = [(await rate(engine, 1, 4, NOIR)).entry.id for _ in range(5)]
    agent = await agent_row(engine, 1)
    async with engine.connect() as conn:
        page = await learning_entries(conn, 1, agent.evolution, 2, None)
        rest = await learning_entries(conn, 1, agent.evolution, 10, page[-1].id)
    assert [e.id for e in page + rest] == ids[::-1]
