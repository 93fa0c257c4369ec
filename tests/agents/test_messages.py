"""Messages between agents: stored with private events for both owners, remembered by the
receiver, paged, marked read, refused when malformed, to oneself, to nobody, or too many."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.agents.embeddings import LocalEmbedder
from inftd.agents.errors import (
    BadMessage,
    SelfMessage,
    TooManyMessages,
    UnknownMessage,
    UnknownPeer,
)
from inftd.agents.memory import recall
from inftd.agents.messages import (
    MAX_BODY_BYTES,
    MAX_TEXT_CHARS,
    MESSAGES_PER_MINUTE,
    Message,
    list_messages,
    mark_read,
    message_body,
    remember_message,
    send_message,
    unread_count,
)
from inftd.agents.writer import AgentWriter
from inftd.store.db import create_async
from inftd.store.models import Agent, AgentMessage, EventRecord, Memory, utcnow
from tests.support.schema import at_head

EMBEDDER = LocalEmbedder(64)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """Agents 1, 2 and 3."""
    at_head(database_url)
    engine = create_async(database_url)
    async with engine.begin() as conn:
        for token_id in (1, 2, 3):
            await conn.execute(
                insert(Agent).values(
                    token_id=token_id,
                    package_type=0,
                    owner="0x" + f"{token_id:02x}" * 20,
                    created_block=1,
                    owner_since_block=1,
                )
            )
    yield engine
    await engine.dispose()


async def send(engine: AsyncEngine, sender: int, receiver: int, body: Any, **kw: Any) -> Message:
    async with AgentWriter(engine).write(sender) as (conn, _):
        return await send_message(conn, sender, receiver, body, **kw)


async def counts(engine: AsyncEngine) -> tuple[int, int]:
    async with engine.connect() as conn:
        messages = await conn.scalar(select(func.count()).select_from(AgentMessage))
        events = await conn.scalar(select(func.count()).select_from(EventRecord))
    return int(messages or 0), int(events or 0)


async def test_a_message_is_stored_and_published_privately_to_both(engine: AsyncEngine) -> None:
    sent = await send(engine, 1, 2, {"text": "hello, two"}, kind="greeting")
    assert (sent.sender, sent.receiver, sent.kind, sent.read_at) == (1, 2, "greeting", None)
    async with engine.connect() as conn:
        (stored,) = await list_messages(conn, 2, "inbox")
        assert (stored.id, stored.body, stored.sender) == (sent.id, {"text": "hello, two"}, 1)
        assert await list_messages(conn, 1, "outbox") == [stored]
        assert await list_messages(conn, 1, "inbox") == []
        assert await list_messages(conn, 3, "inbox") == []
        events = (await conn.execute(select(EventRecord).order_by(EventRecord.seq))).all()
    published = [(e.type, e.token_id, e.private, e.payload["id"]) for e in events]
    assert published == [
        ("message.sent", 1, True, sent.id),
        ("message.received", 2, True, sent.id),
    ]
    assert events[1].payload["body"] == {"text": "hello, two"}


async def test_the_receiver_remembers_the_message(engine: AsyncEngine) -> None:
    sent = await send(engine, 3, 1, {"text": "watercolour lighthouses at dawn"})
    async with AgentWriter(engine).write(1) as (conn, _):
        memory_id = await remember_message(conn, EMBEDDER, sent)
    async with engine.connect() as conn:
        memory = (await conn.execute(select(Memory).where(Memory.id == memory_id))).one()
        assert (memory.token_id, memory.kind, memory.source_id) == (
            1,
            "message",
            f"message:{sent.id}",
        )
        assert "from agent 3" in memory.text
        assert "watercolour lighthouses" in memory.text
        (best, *_) = await recall(conn, EMBEDDER, 1, "lighthouse watercolour", 3)
        assert best.id == memory_id
        added = await conn.scalar(
            select(func.count()).where(
                EventRecord.type == "memory.added", EventRecord.token_id == 1
            )
        )
    assert added == 1


@pytest.mark.parametrize(
    ("text", "body", "problem"),
    [
        (None, None, "exactly one"),
        ("hi", {"text": "hi"}, "exactly one"),
        ("", None, "1 to"),
        (7, None, "1 to"),
        ("x" * (MAX_TEXT_CHARS + 1), None, "1 to"),
        ("a\x00b", None, "NUL"),
        (None, [1, 2], "JSON object"),
        (None, "hi", "JSON object"),
        (None, {"deep": [{"k\x00": 1}]}, "NUL"),
        (None, {"k": "x" * MAX_BODY_BYTES}, f"at most {MAX_BODY_BYTES}"),
    ],
)
def test_bodies_of_another_shape_are_refused(text: Any, body: Any, problem: str) -> None:
    with pytest.raises(BadMessage, match=problem):
        message_body(text, body)


def test_a_body_at_the_size_limit_passes() -> None:
    body = {"k": "x" * (MAX_BODY_BYTES - len('{"k":""}'))}
    assert message_body(body=body) == body
    assert message_body("x" * MAX_TEXT_CHARS) == {"text": "x" * MAX_TEXT_CHARS}


async def test_refused_messages_store_nothing(engine: AsyncEngine) -> None:
    with pytest.raises(SelfMessage):
        await send(engine, 1, 1, {"text": "me"})
    for nobody in (9, 2**63, 2**70, -1):
        with pytest.raises(UnknownPeer) as caught:
            await send(engine, 1, nobody, {"text": "anyone?"})
        assert caught.value.role == "recipient"
    with pytest.raises(BadMessage, match="kind"):
        await send(engine, 1, 2, {"text": "x"}, kind="Not A Kind")
    with pytest.raises(BadMessage):
        await send(engine, 1, 2, {"text": "\x00"})
    assert await counts(engine) == (0, 0)


async def test_a_sender_is_capped_per_minute(engine: AsyncEngine) -> None:
    # Messages older than the minute do not count.
    async with engine.begin() as conn:
        old = utcnow() - timedelta(minutes=2)
        for _ in range(MESSAGES_PER_MINUTE):
            await conn.execute(
                insert(AgentMessage).values(
                    from_token_id=1, to_token_id=2, kind="text", body={}, created_at=old
                )
            )
    for i in range(MESSAGES_PER_MINUTE):
        await send(engine, 1, 2 + i % 2, {"n": i})
    before = await counts(engine)
    with pytest.raises(TooManyMessages) as caught:
        await send(engine, 1, 3, {"n": "one too many"})
    assert caught.value.limit == MESSAGES_PER_MINUTE
    assert 1 <= caught.value.retry_after <= 60
    assert "MESSAGES_PER_MINUTE" in str(caught.value)
    assert await counts(engine) == before
    await send(engine, 2, 1, {"text": "others may still send"})


async def test_boxes_are_paged_newest_first_without_gaps(engine: AsyncEngine) -> None:
    sent = [(await send(engine, 1 + i % 2, 3, {"n": i})).id for i in range(7)]
    await send(engine, 3, 1, {"n": "not in 3's inbox"})
    seen: list[int] = []
    before = None
    async with engine.connect() as conn:
        while page := await list_messages(conn, 3, "inbox", limit=3, before=before):
            assert len(page) <= 3
            seen += [m.id for m in page]
            before = page[-1].id
        assert [m.id for m in await list_messages(conn, 2, "outbox")] == sent[1::2][::-1]
    assert seen == sent[::-1]


async def test_only_the_receiver_marks_a_message_read_once(engine: AsyncEngine) -> None:
    sent = await send(engine, 1, 2, {"text": "read me"})
    async with engine.begin() as conn:
        assert await unread_count(conn, 2) == 1
        with pytest.raises(UnknownMessage):
            await mark_read(conn, 1, sent.id)  # the sender's, not its inbox
        for missing in (sent.id + 1, 0, 2**64):
            with pytest.raises(UnknownMessage):
                await mark_read(conn, 2, missing)
        first = await mark_read(conn, 2, sent.id)
    assert first.read_at is not None
    async with engine.begin() as conn:
        again = await mark_read(conn, 2, sent.id)
        assert again.read_at == first.read_at
        assert await unread_count(conn, 2) == 0
