"""Collaboration grants: agent A (the granter) lets agent B (the grantee) borrow its
influences, until A revokes it.

A grant belongs to the two agents, not to the addresses that own them: whoever owns A's
package token now may revoke it (the API checks that), and a transfer of A moves that
power to the new owner. ``granted_by`` records which address made the grant. Changes run
in the granter's writer transaction; ``collaboration.granted`` and
``collaboration.revoked`` are published, in the same transaction, on both agents'
channels (public: a grant is a permission between agents and carries no content).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from inftd.agents.errors import SelfCollaboration, UnknownCollaboration, UnknownPeer
from inftd.agents.events import NewEvent, record_events
from inftd.agents.owners import MAX_STORED_TOKEN_ID
from inftd.agents.views import iso
from inftd.store.models import Agent, Collaboration, utcnow

MAX_LISTED = 500  # active grants listed per direction


@dataclass(frozen=True, slots=True)
class Grant:
    granter: int
    grantee: int
    granted_by: str
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> Grant:
        return cls(
            row.granter_token_id,
            row.grantee_token_id,
            row.granted_by,
            row.created_at,
            row.revoked_at,
        )

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def as_json(self) -> dict[str, Any]:
        return {
            "granter": self.granter,
            "grantee": self.grantee,
            "grantedBy": self.granted_by,
            "createdAt": iso(self.created_at),
            "revokedAt": iso(self.revoked_at),
        }


def _pair(granter: int, grantee: int) -> Any:
    return (Collaboration.granter_token_id == granter) & (Collaboration.grantee_token_id == grantee)


async def _stored(conn: AsyncConnection, granter: int, grantee: int) -> Grant | None:
    row = (await conn.execute(select(Collaboration).where(_pair(granter, grantee)))).first()
    return None if row is None else Grant.from_row(row)


async def _publish(conn: AsyncConnection, kind: str, grant: Grant) -> None:
    data = grant.as_json()
    await record_events(
        conn, [NewEvent(kind, grant.granter, data), NewEvent(kind, grant.grantee, data)]
    )


async def grant(
    conn: AsyncConnection, granter: int, grantee: int, granted_by: str
) -> tuple[Grant, bool]:
    """Let ``grantee`` borrow ``granter``'s influences; the caller holds the granter's writer.

    Returns the grant and whether it is new (or re-activated after a revoke); granting an
    active grant again changes nothing. Raises ``SelfCollaboration`` or ``UnknownPeer``.
    """
    if granter == grantee:
        raise SelfCollaboration(granter)
    if not 0 <= grantee <= MAX_STORED_TOKEN_ID or (
        await conn.scalar(select(Agent.token_id).where(Agent.token_id == grantee)) is None
    ):
        raise UnknownPeer(grantee, "grantee")
    existing = await _stored(conn, granter, grantee)
    if existing is not None and existing.active:
        return existing, False
    now = utcnow()
    values = {"granted_by": granted_by, "created_at": now, "revoked_at": None}
    if existing is None:
        pair = {"granter_token_id": granter, "grantee_token_id": grantee}
        await conn.execute(insert(Collaboration).values(**pair, **values))
    else:  # re-activated: the grant starts anew, by whoever grants it now
        await conn.execute(update(Collaboration).where(_pair(granter, grantee)).values(**values))
    made = Grant(granter, grantee, granted_by, now, None)
    await _publish(conn, "collaboration.granted", made)
    return made, True


async def revoke(conn: AsyncConnection, granter: int, grantee: int) -> Grant:
    """End an active grant; the caller holds the granter's writer. Raises
    ``UnknownCollaboration`` if there is none."""
    stored = 0 <= grantee <= MAX_STORED_TOKEN_ID  # a larger id is no agent (nor a BIGINT)
    existing = await _stored(conn, granter, grantee) if stored else None
    if existing is None or not existing.active:
        raise UnknownCollaboration(granter, grantee)
    now = utcnow()
    await conn.execute(update(Collaboration).where(_pair(granter, grantee)).values(revoked_at=now))
    revoked = Grant(granter, grantee, existing.granted_by, existing.created_at, now)
    await _publish(conn, "collaboration.revoked", revoked)
    return revoked


async def can_borrow(conn: AsyncConnection, granter: int, grantee: int) -> bool:
    """Whether ``grantee`` may borrow ``granter``'s influences now."""
    found = await conn.scalar(
        select(Collaboration.id).where(_pair(granter, grantee), Collaboration.revoked_at.is_(None))
    )
    return found is not None


async def collaborations(conn: AsyncConnection, token_id: int) -> dict[str, list[Grant]]:
    """The agent's active grants: ``granted`` (it lends to) and ``received`` (it borrows
    from), oldest first."""
    active = Collaboration.revoked_at.is_(None)
    found: dict[str, list[Grant]] = {}
    for name, mine in (
        ("granted", Collaboration.granter_token_id),
        ("received", Collaboration.grantee_token_id),
    ):
        rows = await conn.execute(
            select(Collaboration)
            .where(mine == token_id, active)
            .order_by(Collaboration.created_at, Collaboration.id)
            .limit(MAX_LISTED)
        )
        found[name] = [Grant.from_row(r) for r in rows]
    return found
