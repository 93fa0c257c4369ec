"""Credits through the ledger: reserve, commit, release, refund, adjust, spend.

The property test runs any sequence of operations (with repeated keys) against a small model
and checks after each step that available = total - used - reserved >= 0, that the cached
balances equal the ledger's, and that a key applied once is never applied again.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.agents import credits
from inftd.agents.credits import MAX_AMOUNT, MAX_KEY_CHARS, CreditChange
from inftd.agents.errors import (
    BadCreditRequest,
    CreditsError,
    InsufficientCredits,
    OverCommit,
    OverRefund,
    UnknownAgent,
    UnknownReservation,
)
from inftd.agents.ledger import Balances, ledger_page, move_cached
from inftd.agents.writer import AgentWriter
from inftd.store.db import create_async, is_sqlite
from inftd.store.models import EventRecord
from tests.agents.credits_helpers import add_agent, as_writer, both_balances, entry_count
from tests.support.schema import at_head


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    at_head(database_url)
    engine = create_async(database_url)
    await add_agent(engine, 1, credits=10)
    yield engine
    await engine.dispose()


@pytest.fixture
def writer(engine: AsyncEngine) -> AgentWriter:
    return AgentWriter(engine)


async def balances(engine: AsyncEngine, token_id: int = 1) -> Balances:
    async with engine.connect() as conn:
        cached, ledger = await both_balances(conn, token_id)
    assert cached == ledger
    return cached


async def events(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(EventRecord.payload)
            .where(EventRecord.type == "credits.changed")
            .order_by(EventRecord.seq)
        )
        return [r[0] for r in rows]


async def entries(engine: AsyncEngine, token_id: int = 1) -> int:
    async with engine.connect() as conn:
        return await entry_count(conn, token_id)


# Focused cases


async def test_reserve_then_commit_spends_what_was_used_and_releases_the_rest(
    engine: AsyncEngine, writer: AgentWriter
) -> None:
    held = await as_writer(writer, 1, credits.reserve, 4, "job-1", "gen-1")
    assert (held.kind, held.amount, held.replayed) == ("reserve", 4, False)
    assert held.balances == Balances(total=10, used=0, reserved=4) == await balances(engine)
    done = await as_writer(writer, 1, credits.commit, "job-1", 3)
    assert (done.kind, done.amount, done.released) == ("commit", 3, 1)
    assert [(e.kind, e.amount, e.generation_id) for e in done.entries] == [
        ("commit", 3, "gen-1"),
        ("release", 1, "gen-1"),
    ]
    assert await balances(engine) == Balances(total=10, used=3, reserved=0)
    assert (await balances(engine)).available == 7


async def test_release_gives_the_whole_reservation_back(
    engine: AsyncEngine, writer: AgentWriter
) -> None:
    await as_writer(writer, 1, credits.reserve, 6, "job")
    released = await as_writer(writer, 1, credits.release, "job")
    assert (released.kind, released.amount, released.released) == ("release", 6, 6)
    assert await balances(engine) == Balances(10, 0, 0)


async def test_the_same_key_twice_writes_once_and_returns_the_first_result(
    engine: AsyncEngine, writer: AgentWriter
) -> None:
    calls: list[tuple[Any, ...]] = [
        (credits.reserve, 3, "r"),
        (credits.commit, "r", 2),
        (credits.spend, 2, "s"),
        (credits.refund, 1, "f"),
        (credits.adjust, -1, "a"),
        (credits.grant, 5, "g"),
    ]
    for operation, *args in calls:
        first: CreditChange = await as_writer(writer, 1, operation, *args)
        before, count, published = (
            await balances(engine),
            await entries(engine),
            await events(engine),
        )
        again: CreditChange = await as_writer(writer, 1, operation, *args)
        assert again.replayed
        assert not first.replayed
        assert again.entries == first.entries
        assert (again.kind, again.amount) == (first.kind, first.amount)
        assert again.balances == before == await balances(engine)
        assert await entries(engine) == count
        assert await events(engine) == published  # a replay publishes nothing
    assert await balances(engine) == Balances(total=10 - 1 + 5, used=2 + 2 - 1, reserved=0)


async def test_a_reservation_settles_once_whichever_way(
    engine: AsyncEngine, writer: AgentWriter
) -> None:
    await as_writer(writer, 1, credits.reserve, 5, "job")
    await as_writer(writer, 1, credits.commit, "job", 5)
    late_release = await as_writer(writer, 1, credits.release, "job")
    assert late_release.replayed
    assert (late_release.kind, late_release.amount) == ("commit", 5)
    recommit = await as_writer(writer, 1, credits.commit, "job", 1)
    assert recommit.replayed
    assert await balances(engine) == Balances(10, 5, 0)


async def test_keys_belong_to_their_agent(engine: AsyncEngine, writer: AgentWriter) -> None:
    await add_agent(engine, 2, credits=3)
    one = await as_writer(writer, 1, credits.spend, 2, "same")
    two = await as_writer(writer, 2, credits.spend, 2, "same")
    assert not one.replayed
    assert not two.replayed
    assert (await balances(engine, 1)).used == (await balances(engine, 2)).used == 2


async def test_insufficient_credits_is_refused_and_writes_nothing(
    engine: AsyncEngine, writer: AgentWriter
) -> None:
    await as_writer(writer, 1, credits.reserve, 8, "big")
    count, published = await entries(engine), await events(engine)
    with pytest.raises(InsufficientCredits) as refused:
        await as_writer(writer, 1, credits.spend, 3, "too-much")
    assert (refused.value.token_id, refused.value.needed, refused.value.available) == (1, 3, 2)
    assert str(refused.value) == "package token 1 needs 3 credits, has 2 available"
    with pytest.raises(InsufficientCredits):
        await as_writer(writer, 1, credits.reserve, 3, "too-much")
    with pytest.raises(InsufficientCredits):  # the total never drops below spent + reserved
        await as_writer(writer, 1, credits.adjust, -3, "cut")
    assert await entries(engine) == count
    assert await events(engine) == published
    assert await balances(engine) == Balances(10, 0, 8)
    # A refused key was not used up: it applies once there are credits.
    await as_writer(writer, 1, credits.release, "big")
    assert not (await as_writer(writer, 1, credits.spend, 3, "too-much")).replayed


async def test_a_refusal_caught_inside_the_transaction_leaves_nothing_behind(
    engine: AsyncEngine, writer: AgentWriter
) -> None:
    async with writer.write(1) as (conn, agent):
        with pytest.raises(InsufficientCredits):
            await credits.spend(conn, agent, 11, "job")
        await credits.spend(conn, agent, 1, "after")  # the transaction goes on and commits
    assert await entries(engine) == 1 + 2
    assert await balances(engine) == Balances(10, 1, 0)


async def test_the_cache_refuses_a_move_below_zero_even_without_the_lock(
    engine: AsyncEngine,
) -> None:
    async with engine.begin() as conn:
        assert await move_cached(conn, 1, Balances(0, 0, 11)) is None
        assert await move_cached(conn, 1, Balances(0, -1, 0)) is None
        assert await move_cached(conn, 1, Balances(-11, 0, 0)) is None
        assert await move_cached(conn, 1, Balances(0, 0, 10)) == Balances(10, 0, 10)


async def test_commit_never_more_than_reserved_nor_an_unknown_reservation(
    engine: AsyncEngine, writer: AgentWriter
) -> None:
    await as_writer(writer, 1, credits.reserve, 2, "job")
    with pytest.raises(OverCommit, match="cannot commit 3 credits of reservation 'job'"):
        await as_writer(writer, 1, credits.commit, "job", 3)
    with pytest.raises(UnknownReservation, match="no reservation 'nope'"):
        await as_writer(writer, 1, credits.commit, "nope", 1)
    with pytest.raises(UnknownReservation):
        await as_writer(writer, 1, credits.release, "nope")
    assert await balances(engine) == Balances(10, 0, 2)


async def test_refunds_return_at_most_what_was_spent(
    engine: AsyncEngine, writer: AgentWriter
) -> None:
    await as_writer(writer, 1, credits.spend, 3, "a", "gen-a")
    await as_writer(writer, 1, credits.spend, 4, "b", "gen-b")
    with pytest.raises(OverRefund, match=r"cannot refund 8 credits.*7 spent"):
        await as_writer(writer, 1, credits.refund, 8, "too-much")
    with pytest.raises(OverRefund, match="3 spent"):  # of that generation
        await as_writer(writer, 1, credits.refund, 4, "a-4", "gen-a")
    await as_writer(writer, 1, credits.refund, 2, "a-2", "gen-a")
    with pytest.raises(OverRefund, match="1 spent"):
        await as_writer(writer, 1, credits.refund, 2, "a-2-again", "gen-a")
    assert await balances(engine) == Balances(10, 5, 0)


async def test_adjustments_move_the_total_with_their_note(
    engine: AsyncEngine, writer: AgentWriter
) -> None:
    await as_writer(writer, 1, credits.spend, 4, "used")
    up = await as_writer(writer, 1, credits.adjust, 5, "bonus", note="goodwill")
    assert up.entries[0].note == "goodwill"
    await as_writer(writer, 1, credits.adjust, -11, "claw-back")  # exactly down to spent
    assert await balances(engine) == Balances(4, 4, 0)
    with pytest.raises(InsufficientCredits):
        await as_writer(writer, 1, credits.adjust, -1, "below")


@pytest.mark.parametrize(
    ("operation", "args", "problem"),
    [
        (credits.reserve, (0, "k"), "between 1 and"),
        (credits.reserve, (-1, "k"), "between 1 and"),
        (credits.reserve, (MAX_AMOUNT + 1, "k"), "between 1 and"),
        (credits.reserve, (1.5, "k"), "integer"),
        (credits.reserve, (True, "k"), "integer"),
        (credits.reserve, (1, ""), "1 to 128"),
        (credits.reserve, (1, "k" * (MAX_KEY_CHARS + 1)), "1 to 128"),
        (credits.reserve, (1, "a\nb"), "printable"),
        (credits.reserve, (1, 7), "string"),
        (credits.reserve, (1, "k", "g" * 37), "generation id"),
        (credits.commit, ("k", -1), "between 0 and"),
        (credits.adjust, (0, "k"), "non-zero"),
        (credits.adjust, (-MAX_AMOUNT - 1, "k"), "between 1 and"),
        (credits.adjust, (1, "k", "a\x00b"), "NUL"),
        (credits.grant, (1, "k", "adjust"), "grant is one of"),
    ],
)
async def test_bad_requests_are_refused_before_anything_is_written(
    engine: AsyncEngine, writer: AgentWriter, operation: Any, args: tuple[Any, ...], problem: str
) -> None:
    with pytest.raises(BadCreditRequest, match=problem):
        await as_writer(writer, 1, operation, *args)
    assert await entries(engine) == 1
    assert await balances(engine) == Balances(10, 0, 0)


async def test_unknown_agents_are_refused(writer: AgentWriter) -> None:
    for token_id in (2, 2**64):
        with pytest.raises(UnknownAgent):
            await as_writer(writer, token_id, credits.spend, 1, "k")


async def test_each_change_publishes_its_balances_in_the_same_transaction(
    engine: AsyncEngine, writer: AgentWriter
) -> None:
    await as_writer(writer, 1, credits.reserve, 4, "job", "gen-secret")
    await as_writer(writer, 1, credits.commit, "job", 1)
    published = await events(engine)
    assert published[-2:] == [
        {
            "kind": "reserve",
            "amount": 4,
            "totalCredits": 10,
            "usedCredits": 0,
            "reservedCredits": 4,
            "availableCredits": 6,
        },
        {
            "kind": "commit",
            "amount": 1,
            "released": 3,
            "totalCredits": 10,
            "usedCredits": 1,
            "reservedCredits": 0,
            "availableCredits": 9,
        },
    ]
    # Rolled back with the caller's transaction: neither the entry nor its event stays.
    with pytest.raises(RuntimeError, match="the caller's work failed"):
        await spend_then_fail(writer)
    assert await events(engine) == published
    assert await balances(engine) == Balances(10, 1, 0)


async def test_the_ledger_pages_newest_first(engine: AsyncEngine, writer: AgentWriter) -> None:
    for i in range(4):
        await as_writer(writer, 1, credits.spend, 1, f"s{i}")  # a reserve and a commit each
    async with engine.connect() as conn:
        first, cursor = await ledger_page(conn, 1, limit=5)
        assert cursor == first[-1].id
        rest, end = await ledger_page(conn, 1, limit=5, before=cursor)
    ids = [e.id for e in first + rest]
    assert ids == sorted(ids, reverse=True)
    assert len(ids) == 9
    assert end is None
    assert [e.kind for e in first[:2]] == ["commit", "reserve"]
    assert rest[-1].kind == "grant"


async def spend_then_fail(writer: AgentWriter) -> None:
    async with writer.write(1) as (conn, agent):
        await credits.spend(conn, agent, 2, "undone")
        raise RuntimeError("the caller's work failed")


# Any sequence of operations keeps the invariants


KEYS = st.sampled_from(["a", "b", "c", "d"])  # few keys, so they repeat
AMOUNTS = st.integers(1, 12)
OPERATIONS = st.one_of(
    st.tuples(st.just("grant"), AMOUNTS, KEYS),
    st.tuples(st.just("reserve"), AMOUNTS, KEYS),
    st.tuples(st.just("commit"), KEYS, st.integers(0, 12)),
    st.tuples(st.just("release"), KEYS),
    st.tuples(st.just("refund"), AMOUNTS, KEYS),
    st.tuples(st.just("adjust"), st.integers(-12, 12).filter(bool), KEYS),
    st.tuples(st.just("spend"), AMOUNTS, KEYS),
)


@dataclass
class Model:
    """What the ledger should hold: balances, reservations and applied keys."""

    total: int = 0
    used: int = 0
    reserved: int = 0
    reservations: dict[str, list[int]] = field(default_factory=dict)  # key: [amount, settled]
    applied: set[tuple[str, str]] = field(default_factory=set)
    entries: int = 0
    events: int = 0

    @property
    def available(self) -> int:
        return self.total - self.used - self.reserved

    def balances(self) -> Balances:
        return Balances(self.total, self.used, self.reserved)

    def step(self, name: str, *args: Any) -> str | type[CreditsError]:
        """Apply an operation; "applied", "replayed" or the error it must raise."""
        result: str | type[CreditsError] = getattr(self, name)(*args)
        return result

    def _once(self, name: str, key: str) -> bool:
        if (name, key) in self.applied:
            return False
        self.applied.add((name, key))
        return True

    def _write(self, entries: int) -> str:
        self.entries += entries
        self.events += 1  # one credits.changed per operation that writes
        return "applied"

    def grant(self, amount: int, key: str) -> str | type[CreditsError]:
        if not self._once("grant", key):
            return "replayed"
        self.total += amount
        return self._write(1)

    def reserve(self, amount: int, key: str) -> str | type[CreditsError]:
        if key in self.reservations:
            return "replayed"
        if amount > self.available:
            return InsufficientCredits
        self.reserved += amount
        self.reservations[key] = [amount, 0]
        return self._write(1)

    def spend(self, amount: int, key: str) -> str | type[CreditsError]:
        if key in self.reservations:
            return "replayed"
        if amount > self.available:
            return InsufficientCredits
        self.used += amount
        self.reservations[key] = [amount, 1]
        return self._write(2)

    def commit(self, key: str, used: int) -> str | type[CreditsError]:
        if key not in self.reservations:
            return UnknownReservation
        amount, settled = self.reservations[key]
        if settled:
            return "replayed"
        if used > amount:
            return OverCommit
        self.reservations[key][1] = 1
        self.reserved -= amount
        self.used += used
        return self._write(int(used > 0) + int(amount > used))

    def release(self, key: str) -> str | type[CreditsError]:
        return self.commit(key, 0)

    def refund(self, amount: int, key: str) -> str | type[CreditsError]:
        if ("refund", key) in self.applied:
            return "replayed"
        if amount > self.used:
            return OverRefund
        self._once("refund", key)
        self.used -= amount
        return self._write(1)

    def adjust(self, amount: int, key: str) -> str | type[CreditsError]:
        if ("adjust", key) in self.applied:
            return "replayed"
        if amount < -self.available:
            return InsufficientCredits
        self._once("adjust", key)
        self.total += amount
        return self._write(1)


async def run_operation(writer: AgentWriter, token_id: int, name: str, *args: Any) -> str | type:
    try:
        change: CreditChange = await as_writer(writer, token_id, getattr(credits, name), *args)
    except CreditsError as exc:
        return type(exc)
    return "replayed" if change.replayed else "applied"


async def check_invariants(engine: AsyncEngine, token_id: int, model: Model) -> None:
    async with engine.connect() as conn:
        cached, ledger = await both_balances(conn, token_id)
        count = await entry_count(conn, token_id)
        published = await conn.scalar(
            select(func.count()).select_from(EventRecord).where(EventRecord.token_id == token_id)
        )
    assert cached == ledger == model.balances()
    assert cached.available >= 0
    assert count == model.entries  # a replayed key wrote nothing
    assert published == model.events


async def run_sequence(url: str, token_id: int, operations: list[tuple[Any, ...]]) -> None:
    engine = create_async(url)
    try:
        await add_agent(engine, token_id)
        writer, model = AgentWriter(engine), Model()
        for name, *args in operations:
            expected = model.step(name, *args)
            assert await run_operation(writer, token_id, name, *args) == expected, (name, args)
            await check_invariants(engine, token_id, model)
    finally:
        await engine.dispose()


def test_any_sequence_keeps_the_invariants(database_url: str) -> None:
    at_head(database_url)
    token_ids = itertools.count(100)

    @settings(
        max_examples=100 if is_sqlite(database_url) else 25,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(operations=st.lists(OPERATIONS, max_size=30))
    def sequence_keeps_invariants(operations: list[tuple[Any, ...]]) -> None:
        asyncio.run(run_sequence(database_url, next(token_ids), operations))

    sequence_keeps_invariants()
