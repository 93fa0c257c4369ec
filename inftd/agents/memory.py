"""An agent's memories: stored with their embedding, recalled by relevance, recency, importance.

The vector store is the database: each memory row holds its vector as float32 bytes and a
tag naming the embedder and the vector's length (``Memory.embedder``). Recall loads the
agent's memories (a bounded number) and scores them with NumPy:

    score = RELEVANCE_WEIGHT * relevance + RECENCY_WEIGHT * recency + IMPORTANCE_WEIGHT * importance

relevance is the cosine to the query (below zero counts as zero), divided by the best
cosine of the agent's memories (at least ``RELEVANCE_FLOOR``), so the best match scores
1 when it really matches and weak matches stay weak; recency halves every
``RECENCY_HALF_LIFE``; importance is the memory's own, in [0, 1].

Vectors made by another embedder (the configuration changed) are never compared with the
query: such memories score zero relevance. They are re-embedded lazily, a few with each
new memory (``REEMBED_PER_WRITE``), so reads never write and never pay for re-embedding.

Each agent keeps at most ``max_per_agent`` memories: beyond it, ``consolidate`` merges the
oldest low-importance ones into one ``summary`` memory (extractive, see
``inftd.agents.summaries``; its vector is the normalised mean of theirs, each weighing what
it stands for; its importance their mean), down to ``CONSOLIDATE_HEADROOM`` below the bound
so it runs once in a while, not on every write.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Integer, String, bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from inftd.agents.embeddings import Embedder, Vector, normalise, pack, unpack, vector_tag
from inftd.agents.errors import BadMemory, UnknownAgent
from inftd.agents.events import NewEvent, record_events
from inftd.agents.owners import MAX_STORED_TOKEN_ID
from inftd.agents.summaries import SUMMARY, summary_text, utc, weight
from inftd.store.models import Agent, Memory

RELEVANCE_WEIGHT = 0.6  # what the query is about matters most: it must beat the other two
RECENCY_WEIGHT = 0.2  # among equally relevant memories, the newer one wins
IMPORTANCE_WEIGHT = 0.2  # ...or the one the agent marked as more important
RELEVANCE_FLOOR = 0.25  # cosines are scaled by the best one, but never by less than this
RECENCY_HALF_LIFE = timedelta(days=7)  # a week-old memory has half the recency of a new one

DEFAULT_MAX_PER_AGENT = 500  # the settings' default (MemorySettings.max_per_agent)
CONSOLIDATE_HEADROOM = 0.1  # consolidation frees this share of the bound, at least one
KEEP_IMPORTANCE = 0.7  # memories this important are merged only if nothing else is left
REEMBED_PER_WRITE = 16  # stale vectors brought up to date along with each new memory
MAX_SCAN = 20_000  # memories one recall reads at most (the bound keeps it far below)

MAX_TEXT = 4000  # characters of a memory's text
MAX_QUERY = 1000  # characters of a recall query
MAX_K = 100  # memories one recall returns at most
MAX_SOURCE_ID = 64  # Memory.source_id's column width
KIND = re.compile(r"[a-z][a-z0-9_.-]{0,31}")  # Memory.kind is 32 characters wide


@dataclass(frozen=True, slots=True)
class Recalled:
    id: int
    kind: str
    text: str
    importance: float
    score: float
    created_at: datetime
    merged: int = 0  # for a summary, how many memories it stands for


@dataclass(frozen=True, slots=True)
class StoredMemory:
    id: int
    kind: str
    text: str
    importance: float
    merged: int
    source_id: str | None
    created_at: datetime


def check_memory(kind: str, text: str, importance: float, source_id: str | None) -> str:
    """The text as stored (stripped), or ``BadMemory`` naming what is wrong."""
    if not KIND.fullmatch(kind):
        raise BadMemory(f"kind must match {KIND.pattern}, got {kind[:40]!r}")
    text = text.strip()
    if not text or len(text) > MAX_TEXT:
        raise BadMemory(f"text must have 1 to {MAX_TEXT} characters, got {len(text)}")
    if "\x00" in text:  # PostgreSQL text cannot hold it: refused on every database alike
        raise BadMemory("text may not contain NUL (\\u0000)")
    if not (math.isfinite(importance) and 0.0 <= importance <= 1.0):
        raise BadMemory(f"importance must be between 0 and 1, got {importance}")
    if source_id is not None and not 0 < len(source_id) <= MAX_SOURCE_ID:
        raise BadMemory(f"source_id must have 1 to {MAX_SOURCE_ID} characters")
    return text


async def embed_one(embedder: Embedder, text: str) -> tuple[Vector, str]:
    """The unit vector of ``text`` and its tag."""
    [vector], tag = await embed_many(embedder, [text])
    return vector, tag


async def embed_many(embedder: Embedder, texts: Sequence[str]) -> tuple[list[Vector], str]:
    """The unit vectors of ``texts`` (one call to the embedder) and their tag."""
    raw = await embedder.embed(texts)
    if len(raw) != len(texts) or len({len(v) for v in raw}) != 1 or not raw[0]:
        raise ValueError(f"embedder {embedder.name} returned {len(raw)} vectors for {len(texts)}")
    vectors = [normalise(np.asarray(v, dtype=np.float32)) for v in raw]
    return vectors, vector_tag(embedder.name, len(vectors[0]))


async def remember(
    conn: AsyncConnection,
    embedder: Embedder,
    token_id: int,
    kind: str,
    text: str,
    importance: float = 0.5,
    source_id: str | None = None,
    *,
    max_per_agent: int = DEFAULT_MAX_PER_AGENT,
    agent_locked: bool = False,
) -> int:
    """Store one memory in the caller's transaction; returns its id. ``agent_locked``: the
    caller holds the agent's row (``AgentWriter.write``), so it is not looked up again.

    Publishes ``memory.added`` (private). Also re-embeds a few memories whose vectors came
    from another embedder (in the same call to the embedder, made before anything is
    written, so no write lock is held while a provider answers), and consolidates when the
    agent has more than ``max_per_agent``.
    """
    text = check_memory(kind, text, importance, source_id)
    if not agent_locked:
        await _require_agent(conn, token_id)
    stale = await _stale(conn, embedder, token_id, REEMBED_PER_WRITE)
    [vector, *renewed], tag = await embed_many(embedder, [text, *(r.text for r in stale)])
    row = {"token_id": token_id, "kind": kind, "text": text, "importance": importance}
    row |= {"embedding": pack(vector), "embedder": tag, "source_id": source_id}
    memory_id: int = (await conn.execute(_INSERT, row)).scalar_one()
    await record_events(conn, [_added(token_id, memory_id, kind, text, importance, 0, source_id)])
    for old, new in zip(stale, renewed, strict=True):
        values = {"embedding": pack(new), "embedder": tag}
        await conn.execute(update(Memory).where(Memory.id == old.id).values(values))
    await _consolidate(conn, embedder, token_id, max_per_agent, tag)
    return memory_id


# The statements of every memory written or recalled, built once (building one cost more
# than running it); values are bound per call.
_INSERT = insert(Memory).returning(Memory.id)
_SCORING = (
    select(Memory.id, Memory.embedding, Memory.embedder, Memory.importance, Memory.created_at)
    .where(Memory.token_id == bindparam("token_id"))
    .order_by(Memory.id.desc())
    .limit(MAX_SCAN)
)
_BY_IDS = select(Memory).where(Memory.id.in_(bindparam("ids", expanding=True)))
_STALE = (
    select(Memory.id, Memory.text)
    .where(Memory.token_id == bindparam("token_id"))
    .where(
        Memory.embedder.is_(None)
        | ~Memory.embedder.startswith(bindparam("mine", type_=String), escape="/")
    )
    .order_by(Memory.id.desc())
    .limit(bindparam("limit", type_=Integer))
)
_COUNT = select(func.count()).select_from(Memory).where(Memory.token_id == bindparam("token_id"))


async def _require_agent(conn: AsyncConnection, token_id: int) -> None:
    known = (
        0 <= token_id <= MAX_STORED_TOKEN_ID
        and (await conn.execute(select(Agent.token_id).where(Agent.token_id == token_id))).first()
    )
    if not known:
        raise UnknownAgent(token_id)


def _added(
    token_id: int,
    memory_id: int,
    kind: str,
    text: str,
    importance: float,
    merged: int,
    source_id: str | None,
) -> NewEvent:
    payload: dict[str, Any] = {"id": memory_id, "kind": kind, "text": text}
    payload |= {"importance": importance, "merged": merged, "sourceId": source_id}
    return NewEvent("memory.added", token_id, payload, private=True)


async def _load(conn: AsyncConnection, token_id: int) -> list[Any]:
    """The agent's memories, newest first (bounded per agent, so all of them)."""
    if not 0 <= token_id <= MAX_STORED_TOKEN_ID:
        return []
    query = (
        select(Memory).where(Memory.token_id == token_id).order_by(Memory.id.desc()).limit(MAX_SCAN)
    )
    return list((await conn.execute(query)).all())


async def recall(
    conn: AsyncConnection,
    embedder: Embedder,
    token_id: int,
    query: str,
    k: int,
    *,
    now: datetime | None = None,
) -> list[Recalled]:
    """The ``k`` memories that score best for ``query`` (see the module docstring).

    Scores come from the narrow columns of all the agent's memories; texts are read for
    the ``k`` best only.
    """
    if not 1 <= k <= MAX_K:
        raise BadMemory(f"k must be between 1 and {MAX_K}, got {k}")
    if len(query) > MAX_QUERY or "\x00" in query:
        raise BadMemory(f"query must have at most {MAX_QUERY} characters and no NUL")
    if not 0 <= token_id <= MAX_STORED_TOKEN_ID:
        return []
    rows = (await conn.execute(_SCORING, {"token_id": token_id})).all()
    if not rows:
        return []
    vector, tag = await embed_one(embedder, query)
    scores = (
        RELEVANCE_WEIGHT * relevance(rows, vector, tag)
        + RECENCY_WEIGHT * recency(rows, now or datetime.now(UTC))
        + IMPORTANCE_WEIGHT * np.array([r.importance for r in rows], dtype=np.float64)
    )
    best = np.argsort(-scores, kind="stable")[:k]  # stable: ties go to the newest
    ids = [rows[i].id for i in best]
    found = {r.id: r for r in await conn.execute(_BY_IDS, {"ids": ids})}
    return [_recalled(found[rows[i].id], float(scores[i])) for i in best if rows[i].id in found]


def _recalled(row: Any, score: float) -> Recalled:
    return Recalled(
        row.id, row.kind, row.text, row.importance, score, utc(row.created_at), row.merged
    )


def relevance(rows: Sequence[Any], query: Vector, tag: str) -> np.ndarray[Any, Any]:
    """Cosine of each memory to the query, scaled by the best; 0 for another embedder's."""
    result = np.zeros(len(rows), dtype=np.float64)
    same = [i for i, r in enumerate(rows) if r.embedder == tag and r.embedding is not None]
    if not same:
        return result
    matrix = np.frombuffer(b"".join([rows[i].embedding for i in same]), dtype="<f4")
    cosines = np.clip(matrix.reshape(len(same), len(query)) @ query, 0.0, None)
    result[same] = cosines / max(float(cosines.max()), RELEVANCE_FLOOR)
    return result


def recency(rows: Sequence[Any], now: datetime) -> np.ndarray[Any, Any]:
    """1 for a memory made now, halving every ``RECENCY_HALF_LIFE``."""
    ages = np.array([(now - utc(r.created_at)).total_seconds() for r in rows], dtype=np.float64)
    return np.power(0.5, np.clip(ages, 0.0, None) / RECENCY_HALF_LIFE.total_seconds())


async def list_memories(
    conn: AsyncConnection, token_id: int, limit: int, before: int | None = None
) -> list[StoredMemory]:
    """The agent's memories, newest written first, with ids below ``before`` if given."""
    if not 0 <= token_id <= MAX_STORED_TOKEN_ID:
        return []
    query = select(Memory).where(Memory.token_id == token_id)
    if before is not None:
        query = query.where(Memory.id < before)
    rows = await conn.execute(query.order_by(Memory.id.desc()).limit(limit))
    return [
        StoredMemory(r.id, r.kind, r.text, r.importance, r.merged, r.source_id, utc(r.created_at))
        for r in rows
    ]


async def _stale(
    conn: AsyncConnection, embedder: Embedder, token_id: int, limit: int
) -> Sequence[Any]:
    """Up to ``limit`` memories (newest first) whose vectors another embedder made."""
    mine = f"{embedder.name}@"  # a model's vectors keep one length, so its name suffices
    escaped = mine.replace("/", "//").replace("%", "/%").replace("_", "/_")  # LIKE literal
    bound = {"token_id": token_id, "mine": escaped, "limit": limit}
    return (await conn.execute(_STALE, bound)).all()


async def consolidate(
    conn: AsyncConnection, embedder: Embedder, token_id: int, max_per_agent: int
) -> int:
    """Merge old, unimportant memories into a summary if the agent has more than the bound.

    Returns how many memories were merged (0: within the bound). For the scheduler;
    ``remember`` does it as it writes.
    """
    return await _consolidate(conn, embedder, token_id, max_per_agent, None)


async def _consolidate(
    conn: AsyncConnection, embedder: Embedder, token_id: int, bound: int, tag: str | None
) -> int:
    count: int = (await conn.execute(_COUNT, {"token_id": token_id})).scalar_one()
    if count <= bound:
        return 0
    target = max(1, bound - max(1, int(bound * CONSOLIDATE_HEADROOM)))
    rows = await _load(conn, token_id)
    parts = merge_candidates(rows, count - target + 1)
    if len(parts) < 2:
        return 0
    text = summary_text(parts, (r.text for r in rows))
    vector, tag = await _summary_vector(embedder, parts, text, tag)
    importance = float(np.mean([p.importance for p in parts]))
    merged = sum(weight(p) for p in parts)
    await conn.execute(delete(Memory).where(Memory.id.in_([p.id for p in parts])))
    row = {"token_id": token_id, "kind": SUMMARY, "text": text, "importance": importance}
    row |= {"embedding": pack(vector), "embedder": tag, "merged": merged}
    row["created_at"] = max(utc(p.created_at) for p in parts)  # as old as what it stands for
    memory_id: int = (
        await conn.execute(insert(Memory).values(row).returning(Memory.id))
    ).scalar_one()
    await record_events(
        conn, [_added(token_id, memory_id, SUMMARY, text, importance, merged, None)]
    )
    return len(parts)


def merge_candidates(rows: Sequence[Any], n: int) -> list[Any]:
    """The ``n`` memories to merge: the oldest unimportant ones, then the least important.

    The newest memory is never merged (it was just written).
    """
    newest = max(r.id for r in rows)
    older = sorted((r for r in rows if r.id != newest), key=lambda r: (utc(r.created_at), r.id))
    low = [r for r in older if r.importance < KEEP_IMPORTANCE]
    high = sorted(
        (r for r in older if r.importance >= KEEP_IMPORTANCE),
        key=lambda r: (r.importance, utc(r.created_at), r.id),
    )
    return (low + high)[:n]


async def _summary_vector(
    embedder: Embedder, parts: Sequence[Any], text: str, tag: str | None
) -> tuple[Vector, str]:
    """The weighted mean of the parts' vectors of the current embedder, else the text's own.

    ``tag`` None: not known yet, so the summary's text is embedded to learn it.
    """
    own = None if tag is not None else await embed_one(embedder, text)
    tag = own[1] if own is not None else tag
    same = [p for p in parts if p.embedder == tag and p.embedding is not None]
    if same and tag is not None:
        stacked = np.stack([unpack(p.embedding) * weight(p) for p in same])
        return normalise(stacked.sum(axis=0).astype(np.float32)), tag
    return own if own is not None else await embed_one(embedder, text)
