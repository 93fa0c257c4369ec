"""``collectionInfluences``: the styles an agent absorbs from other agents.

Three sources, each ranked on its own, scaled to [0, 1] by its best score, weighted by
``SOURCE_WEIGHTS`` and summed per style; the ``MAX_INFLUENCES`` best (at least
``MIN_SCORE``) become the agent's ``collection_influences`` column:

- **collection**: the other agents of its package type (the ``MAX_PEERS`` most recently
  active). Each peer gives its ``PEER_STYLES`` strongest positive style weights, decayed to
  now and normalised so every peer counts once, times ``1 + (level - 1) / LEVEL_SCALE``
  (experienced agents weigh more). Shown as styles with a score and a number of agents.
- **collaborators**: agents that granted it collaboration (``collaborations`` rows with
  ``revoked_at IS NULL``): their strongest styles, named with their token ids (a grant is
  public).
- **shared**, only for an agent whose owner opted in (``share_learning``): the anonymous
  view, per package type, of which styles rate well, built from the feedback of opted-in
  agents only (``SHARED_WINDOW`` newest ratings). It holds a style, its average rating and
  its number of ratings; a style appears only once ``MIN_SHARED_AGENTS`` different agents
  rated it, and nothing names an agent or an owner.

``refresh_influences`` recomputes and stores the column (after feedback, on opting in or
out, and from the scheduler); ``compute_influences`` only reads.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from inftd.agents.errors import UnknownAgent
from inftd.agents.events import NewEvent, record_events
from inftd.agents.learning import styles_of, top_weights
from inftd.agents.writer import AgentWriter
from inftd.store.models import Agent, Collaboration, Generation, LearningEntry

MAX_INFLUENCES = 8  # styles in collection_influences
MIN_SCORE = 0.1  # a style weaker than this (of at most 2.4) is noise
SOURCE_WEIGHTS = {"collaborators": 1.0, "shared": 0.8, "collection": 0.6}
MAX_PEERS = 200  # agents of the collection read, the most recently active
PEER_STYLES = 5  # styles each peer or lender gives
LEVEL_SCALE = 10  # a level-11 peer weighs twice a level-1 one
MAX_LENDERS = 50  # active grants read
SHARED_WINDOW = 2000  # newest ratings of opted-in agents in the shared view
MIN_SHARED_AGENTS = 3  # distinct agents that must have rated a style before it is shown
MIN_SHARED_RATING = 3.5  # average rating a style needs to count as rating well
SHARED_PRIOR = 5  # ratings of a neutral 3 blended into each average before ranking


@dataclass(frozen=True, slots=True)
class StyleScore:
    style: str
    score: float
    agents: int = 1  # how many agents it comes from


@dataclass(frozen=True, slots=True)
class Lender:
    token_id: int
    styles: list[StyleScore]


@dataclass(frozen=True, slots=True)
class SharedStyle:
    style: str
    average_rating: float
    ratings: int


@dataclass(frozen=True, slots=True)
class Influences:
    styles: list[str]  # what collection_influences becomes
    collection: list[StyleScore] = field(default_factory=list)
    collaborators: list[Lender] = field(default_factory=list)
    shared: list[SharedStyle] | None = None  # None: the agent did not opt in


def lendable_styles(evolution: Mapping[str, Any] | None, now: datetime) -> list[StyleScore]:
    """An agent's strongest positive styles: what it lends and what its collection sees."""
    return [StyleScore(s, w) for s, w in top_weights(evolution, "styles", now, PEER_STYLES)]


def _normalised(styles: Sequence[StyleScore]) -> list[StyleScore]:
    total = sum(s.score for s in styles)
    return [StyleScore(s.style, s.score / total) for s in styles] if total > 0 else []


def collection_styles(peers: Iterable[Any], now: datetime) -> list[StyleScore]:
    """Aggregate peers (rows with ``level`` and ``evolution``): each counts once, by level."""
    scores: dict[str, float] = defaultdict(float)
    agents: dict[str, int] = defaultdict(int)
    for peer in peers:
        factor = 1 + (max(int(peer.level), 1) - 1) / LEVEL_SCALE
        for style in _normalised(lendable_styles(peer.evolution, now)):
            scores[style.style] += style.score * factor
            agents[style.style] += 1
    ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    return [StyleScore(s, score, agents[s]) for s, score in ranked]


def shared_view(ratings: Iterable[tuple[int, int, Sequence[str], Any]]) -> list[SharedStyle]:
    """From (agent, rating, tags, options) tuples: the styles that rate well, anonymous."""
    totals: dict[str, list[int]] = defaultdict(list)
    raters: dict[str, set[int]] = defaultdict(set)
    for agent, rating, tags, options in ratings:
        for style in styles_of(options, tags):
            totals[style].append(rating)
            raters[style].add(agent)
    shown = [
        SharedStyle(style, sum(values) / len(values), len(values))
        for style, values in totals.items()
        if len(raters[style]) >= MIN_SHARED_AGENTS
    ]
    good = [s for s in shown if s.average_rating >= MIN_SHARED_RATING]
    return sorted(good, key=lambda s: (-_blended(s), s.style))


def _blended(style: SharedStyle) -> float:
    """The average pulled towards 3 by ``SHARED_PRIOR`` ratings: many 4s beat one 5."""
    total = style.average_rating * style.ratings + 3 * SHARED_PRIOR
    return total / (style.ratings + SHARED_PRIOR)


def merge(
    collection: Sequence[StyleScore],
    lenders: Sequence[Lender],
    shared: Sequence[SharedStyle] | None,
) -> list[str]:
    """The influences: each source scaled by its best, weighted, summed per style."""
    sources: dict[str, list[tuple[str, float]]] = {
        "collection": [(s.style, s.score) for s in collection],
        "collaborators": [(s.style, s.score) for lender in lenders for s in lender.styles],
        "shared": [(s.style, _blended(s) - 3) for s in shared or ()],
    }
    totals: dict[str, float] = defaultdict(float)
    for name, scored in sources.items():
        best = max((score for _, score in scored), default=0.0)
        for style, score in scored:
            if best > 0:
                totals[style] += SOURCE_WEIGHTS[name] * score / best
    ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))
    return [style for style, score in ranked if score >= MIN_SCORE][:MAX_INFLUENCES]


# -- the database ---------------------------------------------------------------------------


async def _peers(conn: AsyncConnection, agent: Any) -> list[Any]:
    rows = await conn.execute(
        select(Agent.token_id, Agent.level, Agent.evolution)
        .where(Agent.package_type == agent.package_type, Agent.token_id != agent.token_id)
        .order_by(Agent.last_activity.desc(), Agent.token_id)
        .limit(MAX_PEERS)
    )
    return list(rows)


async def _lenders(conn: AsyncConnection, token_id: int, now: datetime) -> list[Lender]:
    rows = await conn.execute(
        select(Agent.token_id, Agent.evolution)
        .join(Collaboration, Collaboration.granter_token_id == Agent.token_id)
        .where(Collaboration.grantee_token_id == token_id, Collaboration.revoked_at.is_(None))
        .order_by(Collaboration.created_at.desc(), Collaboration.id.desc())
        .limit(MAX_LENDERS)
    )
    lenders = [Lender(r.token_id, lendable_styles(r.evolution, now)) for r in rows]
    return [lender for lender in lenders if lender.styles]


async def shared_styles(conn: AsyncConnection, package_type: int) -> list[SharedStyle]:
    """The anonymous view of which styles rate well in a package type (opted-in agents)."""
    rows = await conn.execute(
        select(LearningEntry.token_id, LearningEntry.rating, LearningEntry.tags, Generation.options)
        .join(Generation, Generation.id == LearningEntry.generation_id)
        .join(Agent, Agent.token_id == LearningEntry.token_id)
        .where(
            Generation.token_id == LearningEntry.token_id,  # the owner's own rating only
            Agent.package_type == package_type,
            Agent.share_learning.is_(True),
        )
        .order_by(LearningEntry.id.desc())
        .limit(SHARED_WINDOW)
    )
    return shared_view((r.token_id, r.rating, r.tags or [], r.options) for r in rows)


async def _agent(conn: AsyncConnection, token_id: int) -> Any:
    row = (await conn.execute(select(Agent).where(Agent.token_id == token_id))).first()
    if row is None:
        raise UnknownAgent(token_id)
    return row


async def compute_influences(conn: AsyncConnection, agent: Any, now: datetime) -> Influences:
    """What ``agent`` (a row of ``agents``) absorbs now, and from where; reads only."""
    collection = collection_styles(await _peers(conn, agent), now)
    lenders = await _lenders(conn, agent.token_id, now)
    shared = await shared_styles(conn, agent.package_type) if agent.share_learning else None
    return Influences(merge(collection, lenders, shared), collection, lenders, shared)


async def influences_of(conn: AsyncConnection, token_id: int, now: datetime) -> Influences:
    """``compute_influences`` by token id; raises ``UnknownAgent``."""
    return await compute_influences(conn, await _agent(conn, token_id), now)


async def refresh_influences(conn: AsyncConnection, token_id: int, now: datetime) -> Influences:
    """Recompute and store the agent's collection_influences, in its writer transaction
    (it reads the row afresh); publishes ``agent.updated`` when they changed."""
    agent = await _agent(conn, token_id)
    found = await compute_influences(conn, agent, now)
    if found.styles != list(agent.collection_influences or []):
        await conn.execute(
            update(Agent)
            .where(Agent.token_id == agent.token_id)
            .values(collection_influences=found.styles)
        )
        data = {"fields": ["collectionInfluences"], "collectionInfluences": found.styles}
        await record_events(conn, [NewEvent("agent.updated", agent.token_id, data)])
    return found


async def refresh_influences_of(writer: AgentWriter, token_id: int, now: datetime) -> Influences:
    """``refresh_influences`` in the agent's own writer transaction (for the scheduler)."""
    async with writer.write(token_id) as (conn, _):
        return await refresh_influences(conn, token_id, now)
