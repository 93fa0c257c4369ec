"""Messages between agents: stored, published to both agents' owners, remembered by the
receiver.

A message is sent inside the sender's writer transaction (``AgentWriter.write(sender)``):
the row, a private ``message.sent`` event on the sender's channel and a private
``message.received`` event on the receiver's commit together. The receiver's memory of it
is written afterwards, in the receiver's own writer transaction (``remember_message``), so
no transaction locks two agents for writing. The message's foreign key still takes a
key-share lock on the receiver's row (PostgreSQL): A→B and B→A at once deadlock unless the
writer's row lock is ``FOR NO KEY UPDATE``, which does not conflict with it.

Bodies are JSON objects of at most ``MAX_BODY_BYTES`` as compact JSON with no NUL
anywhere (PostgreSQL's jsonb cannot hold one); a plain text message is ``{"text": ...}``.
A sender may send ``MESSAGES_PER_MINUTE`` messages in any sliding minute.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from inftd.agents.embeddings import Embedder
from inftd.agents.errors import (
    BadMessage,
    SelfMessage,
    TooManyMessages,
    UnknownMessage,
    UnknownPeer,
)
from inftd.agents.events import NewEvent, record_events
from inftd.agents.memory import DEFAULT_MAX_PER_AGENT, remember
from inftd.agents.owners import MAX_STORED_TOKEN_ID
from inftd.agents.views import iso
from inftd.store.models import Agent, AgentMessage, utcnow

MAX_BODY_BYTES = 4096  # a message body as compact JSON
MAX_TEXT_CHARS = 2000  # a plain text message
MESSAGES_PER_MINUTE = 30  # messages one agent may send in any sliding minute
RATE_WINDOW = timedelta(minutes=1)
MAX_PAGE = 100  # messages per page of an inbox or outbox
DEFAULT_PAGE = 20
DEFAULT_KIND = "text"
KIND = re.compile(r"[a-z][a-z0-9_.-]{0,31}")  # fits AgentMessage.kind (32 characters)
MEMORY_KIND = "message"
MEMORY_IMPORTANCE = 0.4  # a message matters less than the owner's own feedback
MEMORY_CHARS = 1000  # of the body kept in the receiver's memory

Box = Literal["inbox", "outbox"]


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    sender: int
    receiver: int
    kind: str
    body: dict[str, Any]
    created_at: datetime
    read_at: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> Message:
        return cls(
            row.id,
            row.from_token_id,
            row.to_token_id,
            row.kind,
            row.body,
            row.created_at,
            row.read_at,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "from": self.sender,
            "to": self.receiver,
            "kind": self.kind,
            "body": self.body,
            "createdAt": iso(self.created_at),
            "readAt": iso(self.read_at),
        }


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in k or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def check_kind(kind: Any) -> str:
    """The kind if it is a short lower-case name; raises ``BadMessage``."""
    if not isinstance(kind, str) or not KIND.fullmatch(kind):
        raise BadMessage(f"kind must match {KIND.pattern}, got {str(kind)!r:.60}")
    return kind


def message_body(text: Any = None, body: Any = None) -> dict[str, Any]:
    """The stored body from exactly one of ``text`` and ``body``; raises ``BadMessage``."""
    if (text is None) == (body is None):
        raise BadMessage('send exactly one of "text" (a string) and "body" (an object)')
    if text is not None:
        if not isinstance(text, str) or not 0 < len(text) <= MAX_TEXT_CHARS:
            raise BadMessage(f"text must be a string of 1 to {MAX_TEXT_CHARS} characters")
        body = {"text": text}
    if not isinstance(body, dict):
        raise BadMessage("body must be a JSON object")
    if _has_nul(body):
        raise BadMessage("a message may not contain NUL (\\u0000)")
    size = len(orjson.dumps(body))
    if size > MAX_BODY_BYTES:
        raise BadMessage(f"the body takes {size} bytes as JSON; at most {MAX_BODY_BYTES}")
    return dict(body)


async def _check_rate(conn: AsyncConnection, sender: int, now: datetime) -> None:
    since = now - RATE_WINDOW
    count, oldest = (
        await conn.execute(
            select(func.count(), func.min(AgentMessage.created_at)).where(
                AgentMessage.from_token_id == sender, AgentMessage.created_at > since
            )
        )
    ).one()
    if count >= MESSAGES_PER_MINUTE:
        oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
        wait = (oldest - since).total_seconds()
        raise TooManyMessages(sender, MESSAGES_PER_MINUTE, max(1, math.ceil(wait)))


async def _require_receiver(conn: AsyncConnection, receiver: int) -> None:
    if not 0 <= receiver <= MAX_STORED_TOKEN_ID or (
        await conn.scalar(select(Agent.token_id).where(Agent.token_id == receiver)) is None
    ):
        raise UnknownPeer(receiver, "recipient")


async def send_message(
    conn: AsyncConnection,
    sender: int,
    receiver: int,
    body: dict[str, Any],
    kind: str = DEFAULT_KIND,
) -> Message:
    """Store a message and its two events; the caller holds the sender's writer.

    Raises ``SelfMessage``, ``UnknownPeer`` (no such receiver), ``TooManyMessages``, or
    ``BadMessage`` for a kind or body of another shape.
    """
    body = message_body(body=body)
    kind = check_kind(kind)
    if sender == receiver:
        raise SelfMessage(sender)
    await _require_receiver(conn, receiver)
    now = utcnow()
    await _check_rate(conn, sender, now)
    row = {"from_token_id": sender, "to_token_id": receiver, "kind": kind, "body": body}
    inserted = await conn.execute(
        insert(AgentMessage).values(**row, created_at=now).returning(AgentMessage.id)
    )
    message = Message(inserted.scalar_one(), sender, receiver, kind, body, now, None)
    data = message.as_json()
    await record_events(
        conn,
        [
            NewEvent("message.sent", sender, data, private=True),
            NewEvent("message.received", receiver, data, private=True),
        ],
    )
    return message


def memory_text(message: Message) -> str:
    """What the receiver remembers of a message."""
    text = message.body.get("text")
    content = text if isinstance(text, str) else orjson.dumps(message.body).decode()
    return f"Message ({message.kind}) from agent {message.sender}: {content[:MEMORY_CHARS]}"


async def remember_message(
    conn: AsyncConnection,
    embedder: Embedder,
    message: Message,
    max_per_agent: int = DEFAULT_MAX_PER_AGENT,
) -> int:
    """Leave the message as a memory of its receiver (under the receiver's writer)."""
    return await remember(
        conn,
        embedder,
        message.receiver,
        MEMORY_KIND,
        memory_text(message),
        importance=MEMORY_IMPORTANCE,
        source_id=f"message:{message.id}",
        max_per_agent=max_per_agent,
    )


async def list_messages(
    conn: AsyncConnection,
    token_id: int,
    box: Box = "inbox",
    limit: int = DEFAULT_PAGE,
    before: int | None = None,
) -> list[Message]:
    """A page of the agent's received (inbox) or sent (outbox) messages, newest first;
    ``before`` is the id of the last message of the previous page."""
    mine = AgentMessage.to_token_id if box == "inbox" else AgentMessage.from_token_id
    query = select(AgentMessage).where(mine == token_id)
    if before is not None:
        query = query.where(AgentMessage.id < before)
    rows = await conn.execute(query.order_by(AgentMessage.id.desc()).limit(min(limit, MAX_PAGE)))
    return [Message.from_row(r) for r in rows]


async def unread_count(conn: AsyncConnection, token_id: int) -> int:
    count = await conn.scalar(
        select(func.count()).where(
            AgentMessage.to_token_id == token_id, AgentMessage.read_at.is_(None)
        )
    )
    return int(count or 0)


async def mark_read(conn: AsyncConnection, token_id: int, message_id: int) -> Message:
    """Mark a message the agent received as read (once: a second call changes nothing)."""
    mine = (AgentMessage.id == message_id) & (AgentMessage.to_token_id == token_id)
    if not 0 < message_id <= MAX_STORED_TOKEN_ID:
        raise UnknownMessage(token_id, message_id)
    await conn.execute(
        update(AgentMessage).where(mine, AgentMessage.read_at.is_(None)).values(read_at=utcnow())
    )
    row = (await conn.execute(select(AgentMessage).where(mine))).first()
    if row is None:
        raise UnknownMessage(token_id, message_id)
    return Message.from_row(row)
