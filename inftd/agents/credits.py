"""Operations on an agent's credits, through the ledger.

Every function takes a connection whose transaction holds the agent's row locked (from
``AgentWriter.write(token_id)``, or the caller's own ``lock_agent``), so the generation
daemon can reserve in the same transaction that queues a job. Each one looks its key up,
moves the cached balance columns (the UPDATE itself refuses a balance below zero), appends
its entries and publishes ``credits.changed``, all in that transaction (one statement
each). A refused operation raises a ``CreditsError`` having written nothing, so the caller
may go on with its transaction (to mark a job failed, say).

Idempotency: every operation carries the caller's key. The same key again (for the same
agent and operation) writes nothing and returns the first result with ``replayed`` set;
the balances returned are then the current ones. A refused operation uses up no key. Keys
are stored as ``<operation>:<token id>:<key>``, so callers need not make them unique
across agents.

Reservations: ``reserve`` holds credits under a key; ``commit`` (what was used, the rest
released) or ``release`` settles that reservation, once: a second settlement of the same
reservation is a replay of the first. ``spend`` is a reservation settled at once, under a
reservation key like any other (a spend whose key names a reservation already is a replay).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from inftd.agents.errors import (
    BadCreditRequest,
    CreditsError,
    InsufficientCredits,
    OverCommit,
    OverRefund,
    UnknownReservation,
)
from inftd.agents.events import NewEvent, record_events
from inftd.agents.ledger import (
    NO_CHANGE,
    Balances,
    LedgerEntry,
    NewEntry,
    append_entries,
    cached_balances,
    effect,
    entries_with_keys,
    move_cached,
)
from inftd.store.models import CreditEntry

MAX_KEY_CHARS = 128  # an idempotency key, as callers give it
MAX_AMOUNT = 10**12  # credits one operation may move; sums stay far inside BIGINT
MAX_NOTE_CHARS = 1000
MAX_GENERATION_ID_CHARS = 36  # the generations.id column
EVENT = "credits.changed"
GRANT_KINDS = ("grant", "topup")
RESERVATION = "reserve"  # the operation in a reservation's stored key ...
SETTLEMENT = "settle"  # ... and in its settlement's (usage.credits_today pairs them)


@dataclass(frozen=True)
class CreditChange:
    """What an operation did: the entries it wrote (the first time) and the balances now."""

    token_id: int
    kind: str  # the operation: grant, topup, reserve, commit, release, refund, adjust, spend
    amount: int  # the credits it moved; for commit and spend, the credits used
    entries: tuple[LedgerEntry, ...]
    balances: Balances
    replayed: bool = False  # the key was applied before: nothing was written this time

    @property
    def released(self) -> int:
        """Credits a settlement gave back to the available balance."""
        return sum(e.amount for e in self.entries if e.kind == "release")


# -- checks -----------------------------------------------------------------------------


def _check_amount(amount: Any, name: str = "amount", *, zero: bool = False) -> int:
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise BadCreditRequest(f"{name} must be an integer number of credits")
    low = 0 if zero else 1
    if not low <= amount <= MAX_AMOUNT:
        raise BadCreditRequest(f"{name} must be between {low} and {MAX_AMOUNT}, got {amount}")
    return amount


def _check_text(value: Any, name: str, most: int) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= most:
        raise BadCreditRequest(f"{name} must be a string of 1 to {most} characters")
    return value


def _check_key(key: Any) -> str:
    checked = _check_text(key, "idempotency key", MAX_KEY_CHARS)
    if not checked.isprintable():
        raise BadCreditRequest("idempotency key must be printable characters")
    return checked


def _check_optional(value: Any, name: str, most: int) -> str | None:
    if value is None:
        return None
    checked = _check_text(value, name, most)
    if "\x00" in checked:  # PostgreSQL's text cannot hold it
        raise BadCreditRequest(f"{name} may not contain NUL")
    return checked


def stored_key(operation: str, token_id: int, key: str) -> str:
    """The ledger's key for ``key`` of ``operation`` on the agent."""
    return f"{operation}:{token_id}:{key}"


# -- writing ----------------------------------------------------------------------------

Refusal = Callable[[Balances], CreditsError]  # the error for the balances that refused


def _short(token_id: int, needed: int) -> Refusal:
    return lambda now: InsufficientCredits(token_id, needed, now.available)


def _unspent(token_id: int, amount: int) -> Refusal:
    return lambda now: OverRefund(token_id, amount, now.used)


async def _write(
    conn: AsyncConnection,
    token_id: int,
    kind: str,
    amount: int,
    entries: list[NewEntry],
    refused: Refusal | None = None,
) -> CreditChange:
    """Move the cache, append the entries, publish; or raise ``refused`` having written
    nothing if the move would take a balance below zero (the UPDATE's own condition is
    the check, so it holds against any writer)."""
    change = sum((effect(e.kind, e.amount) for e in entries), NO_CHANGE)
    balances = await move_cached(conn, token_id, change)
    if balances is None:
        refusal = refused or _short(token_id, -change.available)
        raise refusal(await cached_balances(conn, token_id))
    written = await append_entries(conn, token_id, entries)
    await record_events(
        conn, [NewEvent(EVENT, token_id, _payload(kind, amount, written, balances))]
    )
    return CreditChange(token_id, kind, amount, tuple(written), balances)


def _payload(
    kind: str, amount: int, entries: list[LedgerEntry], balances: Balances
) -> dict[str, Any]:
    """Public, like the balances on the agent: no generation ids or notes (the ledger's)."""
    payload: dict[str, Any] = {"kind": kind, "amount": amount, **balances.as_json()}
    if kind in ("commit", "release"):
        payload["released"] = sum(e.amount for e in entries if e.kind == "release")
    return payload


async def _replay(
    conn: AsyncConnection, token_id: int, kind: str, entries: Sequence[LedgerEntry]
) -> CreditChange:
    used = sum(e.amount for e in entries if e.kind == "commit")
    amount = used if kind in ("commit", "spend") else sum(e.amount for e in entries)
    balances = await cached_balances(conn, token_id)
    return CreditChange(token_id, kind, amount, tuple(entries), balances, replayed=True)


async def _once(
    conn: AsyncConnection,
    token_id: int,
    kind: str,
    entry: NewEntry,
    refused: Refusal | None = None,
) -> CreditChange:
    """An operation of one entry: its first result again if its key was applied."""
    if found := await entries_with_keys(conn, [entry.key]):
        return await _replay(conn, token_id, kind, found)
    return await _write(conn, token_id, kind, entry.amount, [entry], refused)


# -- operations -------------------------------------------------------------------------


async def grant(
    conn: AsyncConnection, agent: Any, amount: int, key: str, kind: str = "grant"
) -> CreditChange:
    """Add credits to the total (the chain's grants and top-ups come through the indexer)."""
    if kind not in GRANT_KINDS:
        raise BadCreditRequest(f"a grant is one of {GRANT_KINDS}, not {kind!r}")
    amount, key, token_id = _check_amount(amount), _check_key(key), agent.token_id
    entry = NewEntry(kind, amount, stored_key(kind, token_id, key))
    return await _once(conn, token_id, kind, entry)


async def reserve(
    conn: AsyncConnection, agent: Any, amount: int, key: str, generation_id: str | None = None
) -> CreditChange:
    """Hold ``amount`` credits under ``key`` until it is committed or released."""
    amount, key, token_id = _check_amount(amount), _check_key(key), agent.token_id
    generation_id = _check_optional(generation_id, "generation id", MAX_GENERATION_ID_CHARS)
    entry = NewEntry("reserve", amount, stored_key(RESERVATION, token_id, key), generation_id)
    return await _once(conn, token_id, "reserve", entry, _short(token_id, amount))


def _reservation_keys(token_id: int, key: str) -> tuple[str, str, str]:
    """The stored keys of a reservation, of its settlement, and of the rest's release."""
    first = stored_key(SETTLEMENT, token_id, key)
    return stored_key(RESERVATION, token_id, key), first, first + ":rest"


async def commit(conn: AsyncConnection, agent: Any, key: str, used: int) -> CreditChange:
    """Spend ``used`` credits of the reservation ``key`` and release the rest (all of it
    if ``used`` is 0: the change is then a ``release``)."""
    key, used = _check_key(key), _check_amount(used, "used", zero=True)
    return await _settle(conn, agent.token_id, key, used)


async def release(conn: AsyncConnection, agent: Any, key: str) -> CreditChange:
    """Give the whole reservation ``key`` back (the work failed or was cancelled)."""
    return await _settle(conn, agent.token_id, _check_key(key), 0)


async def _settle(conn: AsyncConnection, token_id: int, key: str, used: int) -> CreditChange:
    held, first, rest = _reservation_keys(token_id, key)
    found = {e.key: e for e in await entries_with_keys(conn, [held, first, rest])}
    if held not in found:
        raise UnknownReservation(token_id, key)
    if settled := [found[k] for k in (first, rest) if k in found]:
        return await _replay(conn, token_id, settled[0].kind, settled)
    reservation = found[held]
    if used > reservation.amount:
        raise OverCommit(token_id, key, used, reservation.amount)
    gen = reservation.generation_id
    entries = [NewEntry("commit", used, first, gen)] if used else []
    if reservation.amount > used:
        entries.append(NewEntry("release", reservation.amount - used, rest if used else first, gen))
    kind = "commit" if used else "release"
    return await _write(conn, token_id, kind, used or reservation.amount, entries)


async def spend(
    conn: AsyncConnection, agent: Any, amount: int, key: str, generation_id: str | None = None
) -> CreditChange:
    """Reserve and commit ``amount`` at once, under ``key`` (a reservation key like any)."""
    amount, key, token_id = _check_amount(amount), _check_key(key), agent.token_id
    generation_id = _check_optional(generation_id, "generation id", MAX_GENERATION_ID_CHARS)
    held, first, _ = keys = _reservation_keys(token_id, key)
    if found := await entries_with_keys(conn, keys):
        return await _replay(conn, token_id, "spend", found)
    entries = [
        NewEntry("reserve", amount, held, generation_id),
        NewEntry("commit", amount, first, generation_id),
    ]
    return await _write(conn, token_id, "spend", amount, entries, _short(token_id, amount))


async def refund(
    conn: AsyncConnection, agent: Any, amount: int, key: str, generation_id: str | None = None
) -> CreditChange:
    """Give back spent credits: at most what was used (of that generation, if one is named)."""
    amount, key, token_id = _check_amount(amount), _check_key(key), agent.token_id
    generation_id = _check_optional(generation_id, "generation id", MAX_GENERATION_ID_CHARS)
    entry = NewEntry("refund", amount, stored_key("refund", token_id, key), generation_id)
    if found := await entries_with_keys(conn, [entry.key]):
        return await _replay(conn, token_id, "refund", found)
    if generation_id is not None:
        spent = await _spent_on(conn, token_id, generation_id)
        if amount > spent:
            raise OverRefund(token_id, amount, spent)
    return await _write(conn, token_id, "refund", amount, [entry], _unspent(token_id, amount))


async def _spent_on(conn: AsyncConnection, token_id: int, generation_id: str) -> int:
    """Credits committed to a generation less those refunded for it."""
    rows = await conn.execute(
        select(CreditEntry.kind, func.sum(CreditEntry.amount))
        .where(
            CreditEntry.token_id == token_id,
            CreditEntry.generation_id == generation_id,
            CreditEntry.kind.in_(("commit", "refund")),
        )
        .group_by(CreditEntry.kind)
    )
    sums = {kind: int(total) for kind, total in rows}
    return sums.get("commit", 0) - sums.get("refund", 0)


async def adjust(
    conn: AsyncConnection, agent: Any, amount: int, key: str, note: str | None = None
) -> CreditChange:
    """The operator's correction of the total: negative ones never below spent + reserved."""
    if not isinstance(amount, int) or isinstance(amount, bool) or amount == 0:
        raise BadCreditRequest("amount must be a non-zero integer number of credits")
    _check_amount(abs(amount))
    key, note, token_id = (
        _check_key(key),
        _check_optional(note, "note", MAX_NOTE_CHARS),
        agent.token_id,
    )
    entry = NewEntry("adjust", amount, stored_key("adjust", token_id, key), note=note)
    return await _once(conn, token_id, "adjust", entry, _short(token_id, -amount))
