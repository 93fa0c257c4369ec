"""Learning from feedback: the seed's ``learningData``, the agent's evolution and its level.

Feedback on a generation (a rating 1-5, a few tags, a note) is stored as a
``LearningEntry`` and teaches the agent a *lesson*: the signals of the generation

    styles     options "style"/"styles", tags "style:<x>"
    subjects   options "subject"/"subjects", tags "subject:<x>"
    modifiers  options "modifier"/"modifiers", tags "modifier:<x>" and every plain tag
    providers  the provider that made it
    models     the model that made it

move by ``(rating - 3) / 2`` (5 stars +1, 1 star -1, 3 stars nothing). The weights live in
``Agent.evolution``::

    {"weights": {"styles": {"noir": 1.5}, ...}, "updatedAt": iso, "lessons": n,
     "resetAfter": id}

Before each lesson every weight decays by the time since ``updatedAt`` (half-life
``HALF_LIFE``), so old signals fade; weights are clamped to ``MAX_WEIGHT``, dropped below
``MIN_WEIGHT`` and at most ``MAX_PER_DIMENSION`` are kept per dimension (the strongest).

Rules:
- Only a succeeded generation of the agent is rated, once: a second feedback on the same
  generation is refused (``FeedbackExists``, 409) rather than replacing the first, since a
  lesson already folded into decayed weights cannot be taken back exactly.
- A collaborative generation (``Generation.collaborator_token_id``) teaches both agents:
  the rater's agent in the feedback's transaction, then the collaborator, with
  ``COLLABORATOR_SHARE`` of the strength, in its own writer transaction (one writer per
  agent; never two agents' rows in one transaction). Its lesson is an entry of its own
  (without the note), so it is applied once; ``catch_up_collaborators`` applies the ones
  a crash left between the two.
- Reset (``reset_learning``) clears the weights and hides the entries so far from
  ``learningData`` (``resetAfter``); nothing is deleted, so the once-per-generation rule
  still holds. Experience and level stay: they count use, not taste.

Experience: ``XP_FEEDBACK`` per feedback, ``XP_COLLABORATION`` to the collaborator,
``XP_GENERATION`` per generation (``gain_experience``, called by the generation pipeline).
The level is ``1 + floor(sqrt(experience / XP_LEVEL_UNIT))`` up to ``MAX_LEVEL``: level 2
at 50, 3 at 200, 4 at 450, n at 50 (n - 1)^2. A rise publishes ``agent.level_up``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from inftd.agents.embeddings import Embedder
from inftd.agents.errors import (
    BadFeedback,
    FeedbackExists,
    GenerationNotSucceeded,
    UnknownAgent,
    UnknownGeneration,
)
from inftd.agents.events import NewEvent, record_events
from inftd.agents.memory import DEFAULT_MAX_PER_AGENT, remember
from inftd.agents.views import reset_after
from inftd.agents.writer import AgentWriter
from inftd.store.models import Agent, Generation, LearningEntry, table_of

log = logging.getLogger(__name__)

MAX_TAGS = 10  # tags on one feedback
MAX_TAG_CHARS = 48  # characters of one tag ("style:" and a signal)
MAX_NOTE_CHARS = 1000  # characters of the note
MAX_SIGNAL_CHARS = 40  # a learned style/subject/... longer than this is not learned
MAX_SIGNALS = 8  # signals one lesson teaches per dimension
MAX_ID_CHARS = 36  # Generation.id is 36 characters wide

HALF_LIFE = timedelta(days=14)  # a weight halves in two weeks without new feedback
LEARNING_RATE = 1.0  # weight change of a 5-star (or, negated, 1-star) rating
MAX_WEIGHT = 5.0  # weights are clamped to [-MAX_WEIGHT, MAX_WEIGHT]
MIN_WEIGHT = 0.05  # weights that decayed below this are dropped
MAX_PER_DIMENSION = 32  # strongest weights kept per dimension
COLLABORATOR_SHARE = 0.5  # the collaborator did not rate: it learns half as strongly

XP_FEEDBACK = 5
XP_COLLABORATION = 3
XP_GENERATION = 10
XP_LEVEL_UNIT = 50  # level n needs XP_LEVEL_UNIT * (n - 1)^2 experience
MAX_LEVEL = 100

DIMENSIONS = ("styles", "subjects", "modifiers", "providers", "models")
OPTION_KEYS = {
    "styles": ("style", "styles"),
    "subjects": ("subject", "subjects"),
    "modifiers": ("modifier", "modifiers"),
}
TAG_PREFIXES = {"style": "styles", "subject": "subjects", "modifier": "modifiers"}
FEEDBACK_FIELDS = frozenset({"rating", "tags", "note"})
MEMORY_KIND = "feedback"

Weights = dict[str, dict[str, float]]


@dataclass(frozen=True, slots=True)
class Feedback:
    rating: int
    tags: tuple[str, ...] = ()
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Lesson:
    signals: Mapping[str, tuple[str, ...]]  # dimension -> values
    strength: float  # added to each signal's weight (negative: pushed down)


@dataclass(frozen=True, slots=True)
class Entry:
    """A stored learning entry: one rating of a generation (a collaborator's has no note)."""

    id: int
    token_id: int
    generation_id: str | None
    rating: int
    tags: list[str]
    note: str | None
    created_at: datetime | None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Entry:
        """From a row's mapping (or the values inserted, with the new id)."""
        return cls(
            row["id"],
            row["token_id"],
            row["generation_id"],
            row["rating"],
            list(row["tags"] or []),
            row["note"],
            row["created_at"],
        )


@dataclass(frozen=True, slots=True)
class FeedbackOutcome:
    entry: Entry
    level: int
    experience: int
    collaborator: int | None  # the other agent the generation teaches


# -- feedback -----------------------------------------------------------------------------


def _tag(value: Any) -> str:
    if not isinstance(value, str):
        raise BadFeedback("tags must be strings")
    tag = " ".join(value.split()).casefold()
    if not 0 < len(tag) <= MAX_TAG_CHARS or not tag.isprintable():
        raise BadFeedback(f"each tag is 1 to {MAX_TAG_CHARS} printable characters: {value!r:.60}")
    return tag


def _tags(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_TAGS:
        raise BadFeedback(f"tags must be a list of at most {MAX_TAGS} strings")
    return tuple(dict.fromkeys(_tag(v) for v in value))


def _note(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_NOTE_CHARS or "\x00" in value:
        raise BadFeedback(f"note must be a string of at most {MAX_NOTE_CHARS} characters")
    return value.strip() or None


def parse_feedback(body: Any) -> Feedback:
    """``{"rating": 1-5, "tags": [...], "note": "..."}``; raises ``BadFeedback``."""
    if not isinstance(body, dict):
        raise BadFeedback('send {"rating": 1-5, "tags": [...], "note": "..."}')
    unknown = set(body) - FEEDBACK_FIELDS
    if unknown:
        raise BadFeedback(f"unknown fields: {', '.join(sorted(map(str, unknown)))[:200]}")
    rating = body.get("rating")
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        raise BadFeedback("rating must be an integer from 1 to 5")
    return Feedback(rating, _tags(body.get("tags")), _note(body.get("note")))


def generation_id_ok(raw: str) -> bool:
    """Whether ``raw`` could be a generation id (anything else has no generation)."""
    return 0 < len(raw) <= MAX_ID_CHARS and all(
        c.isascii() and (c.isalnum() or c in "-_") for c in raw
    )


# -- weights (pure) -----------------------------------------------------------------------


def signal(value: Any) -> str | None:
    """A learnable signal: lower case, single spaces, printable, at most MAX_SIGNAL_CHARS."""
    if not isinstance(value, str):
        return None
    text = " ".join(value.split()).casefold()
    ok = 0 < len(text) <= MAX_SIGNAL_CHARS and text.isprintable()
    return text if ok else None


def _strings(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _option_signals(options: Mapping[str, Any], keys: Sequence[str]) -> list[str]:
    found = [signal(v) for key in keys for v in _strings(options.get(key))]
    return [s for s in found if s is not None]


def _tag_signals(tags: Sequence[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {d: [] for d in TAG_PREFIXES.values()}
    for tag in tags:
        prefix, colon, rest = tag.partition(":")
        dimension = TAG_PREFIXES.get(prefix) if colon else None
        value = signal(rest if dimension else tag)
        if value is not None:
            found[dimension or "modifiers"].append(value)
    return found


def signals_of(
    options: Mapping[str, Any] | None,
    provider: str | None,
    model: str | None,
    tags: Sequence[str] = (),
) -> dict[str, tuple[str, ...]]:
    """What a generation (and the tags of its feedback) teaches, per dimension."""
    options = options if isinstance(options, Mapping) else {}
    from_tags = _tag_signals(tags)
    found: dict[str, list[str]] = {
        d: _option_signals(options, keys) + from_tags[d] for d, keys in OPTION_KEYS.items()
    }
    found["providers"] = [s for s in (signal(provider),) if s]
    found["models"] = [s for s in (signal(model),) if s]
    return {d: tuple(dict.fromkeys(found[d]))[:MAX_SIGNALS] for d in DIMENSIONS}


def styles_of(options: Any, tags: Sequence[str] = ()) -> tuple[str, ...]:
    """The styles of ``signals_of`` alone (the shared view reads thousands of these)."""
    found = _option_signals(options, OPTION_KEYS["styles"]) if isinstance(options, Mapping) else []
    found += [s for t in tags if t.startswith("style:") and (s := signal(t[6:])) is not None]
    return tuple(dict.fromkeys(found))[:MAX_SIGNALS]


def strength_of(rating: int, share: float = 1.0) -> float:
    return LEARNING_RATE * (rating - 3) / 2 * share


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def decay_factor(elapsed: timedelta) -> float:
    return float(0.5 ** (max(elapsed, timedelta(0)) / HALF_LIFE))


def _prune(weights: Mapping[str, float]) -> dict[str, float]:
    kept = [(k, w) for k, w in weights.items() if abs(w) >= MIN_WEIGHT]
    kept.sort(key=lambda item: (-abs(item[1]), item[0]))
    return {k: round(w, 4) for k, w in kept[:MAX_PER_DIMENSION]}


def current_weights(evolution: Mapping[str, Any] | None, now: datetime) -> Weights:
    """The weights decayed to ``now`` (pruned); empty dimensions included."""
    evolution = evolution or {}
    stored = evolution.get("weights")
    stored = stored if isinstance(stored, dict) else {}
    since = _parse_time(evolution.get("updatedAt")) or now
    factor = decay_factor(now - since)
    weights: Weights = {}
    for dimension in DIMENSIONS:
        values = stored.get(dimension)
        values = values if isinstance(values, dict) else {}
        numeric = {k: float(w) * factor for k, w in values.items() if _is_number(w)}
        weights[dimension] = _prune(numeric)
    return weights


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def top_weights(
    evolution: Mapping[str, Any] | None,
    dimension: str,
    now: datetime,
    n: int,
    minimum: float = MIN_WEIGHT,
) -> list[tuple[str, float]]:
    """The ``n`` strongest positive weights of a dimension at ``now``, at least ``minimum``."""
    values = current_weights(evolution, now)[dimension]
    ranked = sorted(
        ((k, w) for k, w in values.items() if w >= minimum), key=lambda i: (-i[1], i[0])
    )
    return ranked[:n]


def learn(evolution: Mapping[str, Any] | None, lesson: Lesson, now: datetime) -> dict[str, Any]:
    """The evolution after ``lesson``: decayed to ``now``, moved, clamped and pruned."""
    weights = current_weights(evolution, now)
    for dimension, values in lesson.signals.items():
        moved = dict(weights.get(dimension, {}))
        for value in values:
            total = moved.get(value, 0.0) + lesson.strength
            moved[value] = max(-MAX_WEIGHT, min(MAX_WEIGHT, total))
        weights[dimension] = _prune(moved)
    previous = dict(evolution or {})
    lessons = previous.get("lessons")
    return {
        **previous,
        "weights": weights,
        "updatedAt": now.isoformat(),
        "lessons": (lessons if isinstance(lessons, int) else 0) + 1,
    }


# -- experience and levels ----------------------------------------------------------------


def level_of(experience: int) -> int:
    return min(MAX_LEVEL, 1 + math.isqrt(max(experience, 0) // XP_LEVEL_UNIT))


def experience_for(level: int) -> int:
    """The experience at which ``level`` begins."""
    return XP_LEVEL_UNIT * (max(level, 1) - 1) ** 2


def _new_level(agent: Any, experience: int) -> int:
    """Levels never fall (an agent's level from before this rule stays)."""
    return max(int(agent.level), level_of(experience))


def _progress_events(agent: Any, experience: int, changed: list[str]) -> list[NewEvent]:
    level = _new_level(agent, experience)
    data = {"fields": changed, "level": level, "experience": experience}
    events = [NewEvent("agent.updated", agent.token_id, data)]
    if level > agent.level:
        rise = {"level": level, "previousLevel": agent.level, "experience": experience}
        events.append(NewEvent("agent.level_up", agent.token_id, rise))
    return events


async def _store_progress(
    conn: AsyncConnection, agent: Any, experience: int, now: datetime, **values: Any
) -> None:
    level = _new_level(agent, experience)
    if not values:  # the usual case, a generation's experience: the statement built once
        bound = {"b_token": agent.token_id, "b_xp": experience, "b_level": level, "b_now": now}
        await conn.execute(_PROGRESS, bound)
        return
    await conn.execute(
        update(Agent)
        .where(Agent.token_id == agent.token_id)
        .values(experience=experience, level=level, last_activity=now, **values)
    )


_PROGRESS = (
    update(Agent)
    .where(Agent.token_id == bindparam("b_token"))
    .values(
        experience=bindparam("b_xp"), level=bindparam("b_level"), last_activity=bindparam("b_now")
    )
)


async def gain_experience(conn: AsyncConnection, agent: Any, points: int, now: datetime) -> int:
    """Add experience to the locked ``agent`` row (a generation, say); returns the level."""
    experience = agent.experience + max(points, 0)
    await _store_progress(conn, agent, experience, now)
    await record_events(conn, _progress_events(agent, experience, ["experience"]))
    return _new_level(agent, experience)


# -- feedback in the database -------------------------------------------------------------


async def generation_token(conn: AsyncConnection, generation_id: str) -> int:
    """The token id of the agent a generation belongs to; raises ``UnknownGeneration``."""
    if not generation_id_ok(generation_id):
        raise UnknownGeneration(generation_id)
    token_id = await conn.scalar(select(Generation.token_id).where(Generation.id == generation_id))
    if token_id is None:
        raise UnknownGeneration(generation_id)
    return int(token_id)


async def _generation(conn: AsyncConnection, generation_id: str) -> Any:
    row = (await conn.execute(select(Generation).where(Generation.id == generation_id))).first()
    if row is None:
        raise UnknownGeneration(generation_id)
    return row


async def _entry_of(conn: AsyncConnection, token_id: int, generation_id: str) -> Any:
    query = select(LearningEntry).where(
        LearningEntry.token_id == token_id, LearningEntry.generation_id == generation_id
    )
    return (await conn.execute(query.order_by(LearningEntry.id).limit(1))).first()


async def _insert_entry(
    conn: AsyncConnection, token_id: int, generation_id: str, feedback: Feedback, now: datetime
) -> Entry:
    values = {
        "token_id": token_id,
        "generation_id": generation_id,
        "rating": feedback.rating,
        "tags": list(feedback.tags),
        "note": feedback.note,
        "created_at": now,
    }
    entry_id = (
        await conn.execute(insert(LearningEntry).values(values).returning(LearningEntry.id))
    ).scalar_one()
    return Entry.from_row({"id": entry_id, **values})


def _memory_text(generation: Any, feedback: Feedback, collaborator_of: int | None) -> str:
    what = f"the {generation.kind} generation {generation.prompt[:200]!r}"
    if collaborator_of is not None:
        head = f"A collaboration with agent {collaborator_of} on {what} was rated"
    else:
        head = f"The owner rated {what}"
    parts = [f"{head} {feedback.rating}/5."]
    if feedback.tags:
        parts.append(f"Tags: {', '.join(feedback.tags)}.")
    if feedback.note:
        parts.append(f"Note: {feedback.note[:500]}")
    return " ".join(parts)


def _importance(rating: int, share: float) -> float:
    """Strong opinions (1 or 5 stars) matter more than a shrug."""
    return round((0.4 + 0.15 * abs(rating - 3)) * (0.5 + share / 2), 3)


async def _teach(
    conn: AsyncConnection,
    agent: Any,
    generation: Any,
    feedback: Feedback,
    share: float,
    now: datetime,
) -> tuple[Entry, list[NewEvent], int]:
    """Store the entry and the lesson for ``agent``; returns the entry, events, experience."""
    entry = await _insert_entry(conn, agent.token_id, generation.id, feedback, now)
    signals = signals_of(generation.options, generation.provider, generation.model, feedback.tags)
    evolution = learn(agent.evolution, Lesson(signals, strength_of(feedback.rating, share)), now)
    points = XP_FEEDBACK if share >= 1 else XP_COLLABORATION
    experience = agent.experience + points
    await _store_progress(conn, agent, experience, now, evolution=evolution)
    received = {
        "entryId": entry.id,
        "generationId": generation.id,
        "rating": feedback.rating,
        "tags": list(feedback.tags),
        "collaborative": share < 1,
    }
    events = [NewEvent("feedback.received", agent.token_id, received)]
    events += _progress_events(agent, experience, ["learningData", "evolution", "experience"])
    return entry, events, experience


async def record_feedback(
    conn: AsyncConnection,
    embedder: Embedder,
    agent: Any,
    generation_id: str,
    feedback: Feedback,
    now: datetime,
    *,
    bound: int = DEFAULT_MAX_PER_AGENT,
) -> FeedbackOutcome:
    """Feedback on one of ``agent``'s generations, in its writer transaction (``agent`` is
    the locked row). Raises ``UnknownGeneration``, ``GenerationNotSucceeded`` or
    ``FeedbackExists``; then nothing is written."""
    generation = await _generation(conn, generation_id)
    if generation.token_id != agent.token_id:
        raise UnknownGeneration(generation_id)  # not this agent's
    if generation.status != "succeeded":
        raise GenerationNotSucceeded(generation_id, generation.status)
    if await _entry_of(conn, agent.token_id, generation_id) is not None:
        raise FeedbackExists(generation_id)
    entry, events, experience = await _teach(conn, agent, generation, feedback, 1.0, now)
    await record_events(conn, events)
    text = _memory_text(generation, feedback, None)
    importance = _importance(feedback.rating, 1.0)
    await remember(
        conn,
        embedder,
        agent.token_id,
        MEMORY_KIND,
        text,
        importance,
        generation_id,
        max_per_agent=bound,
    )
    collaborator = generation.collaborator_token_id
    if collaborator == agent.token_id:
        collaborator = None
    return FeedbackOutcome(entry, _new_level(agent, experience), experience, collaborator)


async def teach_collaborator(
    conn: AsyncConnection,
    embedder: Embedder,
    agent: Any,
    generation_id: str,
    now: datetime,
    *,
    bound: int = DEFAULT_MAX_PER_AGENT,
) -> bool:
    """The lesson of a collaborative generation for its collaborator ``agent`` (locked row),
    from the rater's feedback; once. Returns whether it taught anything now."""
    generation = await _generation(conn, generation_id)
    if generation.collaborator_token_id != agent.token_id or generation.token_id == agent.token_id:
        return False
    rated = await _entry_of(conn, generation.token_id, generation_id)
    if rated is None or await _entry_of(conn, agent.token_id, generation_id) is not None:
        return False
    feedback = Feedback(rated.rating, tuple(rated.tags or ()), None)
    _, events, _ = await _teach(conn, agent, generation, feedback, COLLABORATOR_SHARE, now)
    await record_events(conn, events)
    text = _memory_text(generation, feedback, generation.token_id)
    importance = _importance(feedback.rating, COLLABORATOR_SHARE)
    await remember(
        conn,
        embedder,
        agent.token_id,
        MEMORY_KIND,
        text,
        importance,
        generation_id,
        max_per_agent=bound,
    )
    return True


async def give_feedback(
    writer: AgentWriter,
    embedder: Embedder,
    generation_id: str,
    feedback: Feedback,
    now: datetime,
    bound: int = DEFAULT_MAX_PER_AGENT,  # memories kept per agent (settings.memory)
) -> FeedbackOutcome:
    """Feedback on a generation: its agent learns, then its collaborator (if any)."""
    async with writer.engine.connect() as conn:
        token_id = await generation_token(conn, generation_id)
    async with writer.write(token_id) as (conn, agent):
        outcome = await record_feedback(
            conn, embedder, agent, generation_id, feedback, now, bound=bound
        )
    if outcome.collaborator is not None:
        await _teach_later(writer, embedder, outcome.collaborator, generation_id, now, bound)
    return outcome


async def _teach_later(
    writer: AgentWriter,
    embedder: Embedder,
    token_id: int,
    generation_id: str,
    now: datetime,
    bound: int,
) -> bool:
    """The collaborator's lesson; a failure is logged and left to ``catch_up_collaborators``
    (the feedback itself is committed already)."""
    try:
        async with writer.write(token_id) as (conn, agent):
            return await teach_collaborator(conn, embedder, agent, generation_id, now, bound=bound)
    except UnknownAgent:
        return False  # the collaborator is gone (a reorg removed it)
    except Exception:
        log.exception("collaborator %s did not learn from generation %s", token_id, generation_id)
        return False


async def untaught_collaborations(conn: AsyncConnection, limit: int) -> list[tuple[int, str]]:
    """(collaborator, generation id) of rated collaborative generations whose collaborator
    has not learned from them yet, oldest feedback first."""
    rater = table_of(LearningEntry).alias("rater")
    taught = table_of(LearningEntry).alias("taught")
    missing = (
        select(taught.c.id)
        .where(
            taught.c.generation_id == Generation.id,
            taught.c.token_id == Generation.collaborator_token_id,
        )
        .exists()
    )
    rows = await conn.execute(
        select(Generation.collaborator_token_id, Generation.id)
        .join(
            rater,
            and_(rater.c.generation_id == Generation.id, rater.c.token_id == Generation.token_id),
        )
        .where(
            Generation.collaborator_token_id.is_not(None),
            Generation.collaborator_token_id != Generation.token_id,
            ~missing,
        )
        .order_by(rater.c.id)
        .limit(limit)
    )
    return [(int(token), str(gid)) for token, gid in rows if token is not None]


async def catch_up_collaborators(
    writer: AgentWriter,
    embedder: Embedder,
    now: datetime,
    limit: int = 100,
    bound: int = DEFAULT_MAX_PER_AGENT,
) -> int:
    """Teach collaborators the lessons a crash left untaught; returns how many were taught.
    For the scheduler (and a start of the daemon)."""
    async with writer.engine.connect() as conn:
        pending = await untaught_collaborations(conn, limit)
    taught = 0
    for token_id, generation_id in pending:
        taught += await _teach_later(writer, embedder, token_id, generation_id, now, bound)
    return taught


# -- reset and reading ----------------------------------------------------------------------


async def reset_learning(conn: AsyncConnection, agent: Any, now: datetime) -> dict[str, Any]:
    """Clear ``agent``'s learned weights and hide its entries so far (locked row)."""
    last = await conn.scalar(
        select(func.max(LearningEntry.id)).where(LearningEntry.token_id == agent.token_id)
    )
    evolution = {
        "weights": {d: {} for d in DIMENSIONS},
        "updatedAt": now.isoformat(),
        "lessons": 0,
        "resetAfter": max(int(last or 0), reset_after(agent.evolution)),
    }
    await conn.execute(
        update(Agent)
        .where(Agent.token_id == agent.token_id)
        .values(evolution=evolution, last_activity=now)
    )
    data = {"fields": ["learningData", "evolution"], "reset": True}
    data |= {"level": agent.level, "experience": agent.experience}
    await record_events(conn, [NewEvent("agent.updated", agent.token_id, data)])
    return evolution


async def learning_entries(
    conn: AsyncConnection,
    token_id: int,
    evolution: Mapping[str, Any] | None,
    limit: int,
    before: int | None,
) -> list[Entry]:
    """The visible entries (after the last reset), newest first, with ids below ``before``."""
    query = select(LearningEntry).where(
        LearningEntry.token_id == token_id, LearningEntry.id > reset_after(evolution)
    )
    if before is not None:
        query = query.where(LearningEntry.id < before)
    rows = await conn.execute(query.order_by(LearningEntry.id.desc()).limit(limit))
    return [Entry.from_row(r._mapping) for r in rows]
