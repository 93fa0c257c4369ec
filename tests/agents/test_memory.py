"""Memories: recall by relevance, recency and importance; consolidation; embedder changes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.agents.embeddings import LocalEmbedder, pack, unpack, vector_tag
from inftd.agents.errors import BadMemory, UnknownAgent
from inftd.agents.memory import (
    IMPORTANCE_WEIGHT,
    KEEP_IMPORTANCE,
    MAX_TEXT,
    RECENCY_HALF_LIFE,
    RECENCY_WEIGHT,
    RELEVANCE_WEIGHT,
    consolidate,
    list_memories,
    recall,
    remember,
)
from inftd.agents.summaries import SUMMARY
from inftd.store.db import create_async
from inftd.store.models import Agent, EventRecord, Memory
from tests.support.memories import LABELLED_MEMORIES, LABELLED_QUERIES
from tests.support.schema import at_head

EMBEDDER = LocalEmbedder(256)
NOW = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    at_head(database_url)
    engine = create_async(database_url)
    async with engine.begin() as conn:
        for token_id in (1, 2):
            await conn.execute(
                insert(Agent).values(
                    token_id=token_id,
                    package_type=0,
                    owner="0x" + "11" * 20,
                    created_block=1,
                    owner_since_block=1,
                )
            )
    yield engine
    await engine.dispose()


async def store(engine: AsyncEngine, texts: Sequence[str], importance: float = 0.5) -> list[int]:
    async with engine.begin() as conn:
        return [await remember(conn, EMBEDDER, 1, "note", t, importance) for t in texts]


async def age(engine: AsyncEngine, memory_id: int, by: timedelta) -> None:
    async with engine.begin() as conn:
        await conn.execute(update(Memory).where(Memory.id == memory_id).values(created_at=NOW - by))


async def ask(engine: AsyncEngine, query: str, k: int = 3, token_id: int = 1) -> list[int]:
    async with engine.connect() as conn:
        return [r.id for r in await recall(conn, EMBEDDER, token_id, query, k, now=NOW)]


async def test_the_relevant_memory_comes_first_for_each_query(engine: AsyncEngine) -> None:
    ids = await store(engine, LABELLED_MEMORIES)
    for memory_id in ids:  # all of one age: relevance alone decides
        await age(engine, memory_id, timedelta(hours=1))
    for query, expected in LABELLED_QUERIES.items():
        assert (await ask(engine, query))[0] == ids[expected], query


async def test_newer_wins_among_equals_by_half_a_recency_per_half_life(
    engine: AsyncEngine,
) -> None:
    old, new = await store(engine, ["pastel watercolor sky", "pastel watercolor sky"])
    await age(engine, old, RECENCY_HALF_LIFE)
    await age(engine, new, timedelta(0))
    async with engine.connect() as conn:
        found = await recall(conn, EMBEDDER, 1, "watercolor", 2, now=NOW)
    assert [r.id for r in found] == [new, old]
    assert found[0].score - found[1].score == pytest.approx(RECENCY_WEIGHT * 0.5)


async def test_more_important_wins_among_equals(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        low = await remember(conn, EMBEDDER, 1, "note", "neon city at night", 0.1)
        high = await remember(conn, EMBEDDER, 1, "note", "neon city at night", 0.9)
    for memory_id in (low, high):
        await age(engine, memory_id, timedelta(days=1))
    async with engine.connect() as conn:
        found = await recall(conn, EMBEDDER, 1, "neon city", 2, now=NOW)
    assert [r.id for r in found] == [high, low]
    assert found[0].score - found[1].score == pytest.approx(IMPORTANCE_WEIGHT * 0.8)


async def test_relevance_outweighs_recency_and_importance(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        relevant = await remember(conn, EMBEDDER, 1, "note", "the cat Miso is orange", 0.0)
        other = await remember(conn, EMBEDDER, 1, "note", "budget for the quarter", 1.0)
    await age(engine, relevant, 10 * RECENCY_HALF_LIFE)
    await age(engine, other, timedelta(0))
    assert (await ask(engine, "a drawing of Miso the cat"))[0] == relevant
    # With nothing relevant, the newest and most important comes first.
    assert (await ask(engine, "quantum chromodynamics"))[0] == other


async def test_recall_reads_only_the_agents_own_memories(engine: AsyncEngine) -> None:
    await store(engine, ["a lighthouse at dawn"])
    assert await ask(engine, "lighthouse", token_id=2) == []
    assert await ask(engine, "lighthouse", token_id=2**64) == []


async def test_a_memory_publishes_a_private_event(engine: AsyncEngine) -> None:
    [memory_id] = await store(engine, ["the owner likes teal"])
    async with engine.connect() as conn:
        event = (await conn.execute(select(EventRecord))).one()
    assert (event.type, event.token_id, event.private) == ("memory.added", 1, True)
    assert event.payload["id"] == memory_id
    assert event.payload["text"] == "the owner likes teal"


@pytest.mark.parametrize(
    ("kind", "text", "importance", "problem"),
    [
        ("Note", "x", 0.5, "kind"),
        ("", "x", 0.5, "kind"),
        ("n" * 33, "x", 0.5, "kind"),
        ("note", "   ", 0.5, "text"),
        ("note", "x" * (MAX_TEXT + 1), 0.5, "text"),
        ("note", "a\x00b", 0.5, "NUL"),
        ("note", "x", 1.5, "importance"),
        ("note", "x", -0.1, "importance"),
        ("note", "x", float("nan"), "importance"),
    ],
)
async def test_bad_memories_are_refused_and_nothing_is_stored(
    engine: AsyncEngine, kind: str, text: str, importance: float, problem: str
) -> None:
    async with engine.begin() as conn:
        with pytest.raises(BadMemory, match=problem):
            await remember(conn, EMBEDDER, 1, kind, text, importance)
    assert await count(engine) == 0


async def test_an_unknown_agent_remembers_nothing(engine: AsyncEngine) -> None:
    for token_id in (3, 2**64):
        async with engine.begin() as conn:
            with pytest.raises(UnknownAgent):
                await remember(conn, EMBEDDER, token_id, "note", "hello")
    assert await count(engine) == 0


async def test_bad_queries_are_refused(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        for k in (0, 101):
            with pytest.raises(BadMemory, match="k must"):
                await recall(conn, EMBEDDER, 1, "q", k)
        with pytest.raises(BadMemory, match="query"):
            await recall(conn, EMBEDDER, 1, "q" * 1001, 1)


async def count(engine: AsyncEngine, token_id: int = 1) -> int:
    async with engine.connect() as conn:
        query = select(func.count()).select_from(Memory).where(Memory.token_id == token_id)
        return int((await conn.execute(query)).scalar_one())


async def rows(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(Memory).order_by(Memory.id))).all())


def stands_for(row: Any) -> int:
    return row.merged if row.kind == SUMMARY else 1


async def test_consolidation_keeps_the_bound_and_accounts_for_every_memory(
    engine: AsyncEngine,
) -> None:
    bound = 10
    important: list[int] = []
    async with engine.begin() as conn:
        for i, text in enumerate(LABELLED_MEMORIES + LABELLED_MEMORIES):
            high = i % 7 == 0
            memory_id = await remember(
                conn, EMBEDDER, 1, "note", text, 0.9 if high else 0.3, max_per_agent=bound
            )
            important += [memory_id] if high else []
            assert (
                await conn.execute(select(func.count()).select_from(Memory))
            ).scalar_one() <= bound
    stored = await rows(engine)
    assert sum(stands_for(r) for r in stored) == 2 * len(LABELLED_MEMORIES)
    assert {r.id for r in stored} >= set(important)  # the important ones are kept whole
    summaries = [r for r in stored if r.kind == SUMMARY]
    assert summaries
    assert all(r.merged >= 2 and r.importance < KEEP_IMPORTANCE for r in summaries)


async def test_a_summary_extracts_from_what_it_merges(engine: AsyncEngine) -> None:
    texts = [
        "The owner loves watercolor landscapes of the coast.",
        "Another watercolor of the coast at dawn was rated 5 stars.",
        "The owner asked for watercolor seagulls over the coast.",
        "A budget note: keep to standard quality.",
    ]
    ids = await store(engine, texts, importance=0.2)
    for i, memory_id in enumerate(ids):
        await age(engine, memory_id, timedelta(days=10 - i))
    async with engine.begin() as conn:
        merged = await consolidate(conn, EMBEDDER, 1, max_per_agent=2)
    assert merged == 3  # all but the newest, which is never merged
    summary, kept = sorted(await rows(engine), key=lambda r: r.kind)[::-1]
    assert (summary.kind, summary.merged, kept.id) == (SUMMARY, 3, ids[3])
    header, body = summary.text.split("\n", 1)
    assert header.startswith("[summary of 3 memories")
    assert "watercolor" in header  # the commonest words
    assert "coast" in header
    assert "watercolor" in body
    parts = [unpack(v) for v in await embeddings_of(texts[:3])]
    vector = unpack(summary.embedding)
    assert float(np.linalg.norm(vector)) == pytest.approx(1.0, abs=1e-5)
    mean = np.sum(parts, axis=0)
    assert vector == pytest.approx(mean / np.linalg.norm(mean), abs=1e-5)
    stamp = summary.created_at.replace(tzinfo=UTC)
    assert stamp == NOW - timedelta(days=8)  # as old as the newest memory it stands for
    assert (await ask(engine, "watercolor coast", k=1))[0] == summary.id


async def embeddings_of(texts: Sequence[str]) -> list[bytes]:
    return [pack(v) for v in await EMBEDDER.embed(texts)]


async def test_within_the_bound_nothing_is_merged(engine: AsyncEngine) -> None:
    await store(engine, ["one", "two", "three"])
    async with engine.begin() as conn:
        assert await consolidate(conn, EMBEDDER, 1, max_per_agent=10) == 0
    assert await count(engine) == 3


class Renamed(LocalEmbedder):
    """The same vectors under another name: as if the configured model changed."""

    def __init__(self) -> None:
        super().__init__(256)
        self.name = "another-model"


async def test_vectors_of_another_embedder_are_never_compared(engine: AsyncEngine) -> None:
    [memory_id] = await store(engine, ["a lighthouse at dawn"], importance=0.4)
    await age(engine, memory_id, timedelta(0))
    async with engine.connect() as conn:
        [found] = await recall(conn, Renamed(), 1, "a lighthouse at dawn", 1, now=NOW)
        [same] = await recall(conn, EMBEDDER, 1, "a lighthouse at dawn", 1, now=NOW)
    assert found.score == pytest.approx(RECENCY_WEIGHT + IMPORTANCE_WEIGHT * 0.4)  # no relevance
    assert same.score == pytest.approx(RELEVANCE_WEIGHT + RECENCY_WEIGHT + IMPORTANCE_WEIGHT * 0.4)


async def test_a_new_embedder_re_embeds_old_memories_as_it_writes(engine: AsyncEngine) -> None:
    await store(engine, ["a lighthouse at dawn", "neon city"])
    small = LocalEmbedder(64)
    async with engine.begin() as conn:
        await remember(conn, small, 1, "note", "a third memory")
    tags = {r.embedder for r in await rows(engine)}
    assert tags == {vector_tag(small.name, 64)}
    assert all(len(r.embedding) == 64 * 4 for r in await rows(engine))


class Named(LocalEmbedder):
    def __init__(self, name: str) -> None:
        super().__init__(64)
        self.name = name


@pytest.mark.parametrize(
    ("old", "new"), [("modelXa", "model_a"), ("m-large", "m%"), ("a/b", "a//b")]
)
async def test_a_name_with_like_wildcards_matches_only_itself(
    engine: AsyncEngine, old: str, new: str
) -> None:
    """Another embedder's vectors are found by a LIKE on the name: its wildcards are
    literal, so ``model_a`` does not take ``modelXa``'s vectors for its own."""
    async with engine.begin() as conn:
        await remember(conn, Named(old), 1, "note", "a lighthouse at dawn")
        await remember(conn, Named(new), 1, "note", "neon city")
    assert {r.embedder for r in await rows(engine)} == {vector_tag(new, 64)}


async def test_listing_pages_newest_first(engine: AsyncEngine) -> None:
    ids = await store(engine, [f"memory number {i}" for i in range(5)])
    async with engine.connect() as conn:
        first = await list_memories(conn, 1, 2)
        second = await list_memories(conn, 1, 2, before=first[-1].id)
        assert await list_memories(conn, 2, 10) == []
    assert [m.id for m in first + second] == ids[::-1][:4]


class Counting(LocalEmbedder):
    """A local embedder that counts its calls."""

    def __init__(self, dimensions: int) -> None:
        super().__init__(dimensions)
        self.calls: list[int] = []

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls.append(len(texts))
        return await super().embed(texts)


async def test_re_embedding_rides_along_in_the_same_call(engine: AsyncEngine) -> None:
    await store(engine, ["one", "two", "three"])
    counting = Counting(64)
    async with engine.begin() as conn:
        await remember(conn, counting, 1, "note", "four")
        await remember(conn, counting, 1, "note", "five")
    assert counting.calls == [4, 1]  # the new text and the three stale ones; then nothing stale
