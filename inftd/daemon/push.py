"""Outbound push notifications: agents' events POSTed to their owners' webhook URLs.

The dispatcher tails the events table from its own cursor (in ``sync_cursor``, name
``push``), turns each event into one delivery per matching subscription, and sends due
deliveries as signed POSTs::

    X-Inftd-Timestamp: <unix seconds>
    X-Inftd-Signature: sha256=HEX(HMAC_SHA256(subscription secret, "<timestamp>." + body))

A 2xx answer delivers; anything else is retried with exponential backoff and jitter, and a
delivery that fails ``push.max_attempts`` times becomes a dead letter, listed by the API.

Several processes may run a dispatcher on one PostgreSQL database. Enqueueing holds the
cursor row (``FOR UPDATE``), so one dispatcher at a time turns a range of events into
deliveries. Sending claims due deliveries with a lease (``lease_owner``,
``lease_expires_at``) under ``FOR UPDATE SKIP LOCKED``, so each attempt is made by one
dispatcher; a dispatcher that dies holding a lease has its deliveries taken over once the
lease (``push.lease``, longer than an attempt may take) expires. On SQLite, one process,
the same statements run without the row locks.

Only http(s) URLs to public addresses are accepted (checked at registration and again at
each send, against DNS rebinding) unless ``push.allow_private_targets`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from inftd.agents.events import Event
from inftd.daemon.config import PushSettings
from inftd.daemon.errors import DaemonError
from inftd.store.models import (
    Agent,
    EventRecord,
    PushDelivery,
    PushSubscription,
    SyncCursor,
    table_of,
)
from inftd.store.sql import insert_ignore

log = logging.getLogger(__name__)

CURSOR = "push"  # the dispatcher's row in sync_cursor (block_number holds the event seq)
EVENT_BATCH = 500  # events turned into deliveries per pass
SEND_BATCH = 50  # deliveries sent concurrently per pass
PASS_INTERVAL = 0.5  # seconds between passes when idle
MAX_URL = 2048  # characters of a webhook URL
OPERATOR = "operator"  # created_by of a subscription an operator made (api/push.py)
DELIVERIES = table_of(PushDelivery)


class PushTargetError(DaemonError):
    """A webhook URL this daemon will not call."""


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def check_url(url: str) -> tuple[str, int]:
    """(host, port) of an acceptable webhook URL, else PushTargetError."""
    if len(url) > MAX_URL:
        raise PushTargetError(f"URL longer than {MAX_URL} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PushTargetError("only http(s) URLs with a host are accepted")
    if parts.username or parts.password:
        raise PushTargetError("credentials in the URL are not accepted; sign with the secret")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise PushTargetError("the URL's port is not a number") from None
    return parts.hostname, port


async def check_target(url: str, allow_private: bool) -> None:
    """Refuse URLs that resolve to loopback, private, link-local or reserved addresses."""
    host, port = check_url(url)
    if allow_private:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise PushTargetError(f"cannot resolve {host}: {exc.strerror}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise PushTargetError(f"{host} resolves to a non-public address ({address})")


def backoff(settings: PushSettings, attempts: int) -> float:
    ceiling = min(settings.backoff_max, settings.backoff_base * 2.0**attempts)
    return random.uniform(0.5, 1.0) * ceiling


def dispatcher_name() -> str:
    """Who holds a lease: host, process and a random part (two dispatchers of one process)."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{secrets.token_hex(4)}"


class PushDispatcher:
    def __init__(self, engine: AsyncEngine, settings: PushSettings) -> None:
        self.engine = engine
        self.settings = settings
        self.name = dispatcher_name()  # in lease_owner of the deliveries it claims

    async def run(self, stop: asyncio.Event) -> None:
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not stop.is_set():
                try:
                    busy = await self.pass_once(session)
                except Exception:
                    log.exception("push dispatcher pass failed")
                    busy = False
                if not busy:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), PASS_INTERVAL)

    async def pass_once(self, session: aiohttp.ClientSession) -> bool:
        """Enqueue new events and send due deliveries; True if there was work."""
        queued = await self.enqueue()
        sent = await self.send_due(session)
        return queued + sent > 0

    async def enqueue(self) -> int:
        async with self.engine.begin() as conn:
            after = await push_cursor(conn)
            events = (
                await conn.execute(
                    select(
                        EventRecord.seq, EventRecord.token_id, EventRecord.type, EventRecord.private
                    )
                    .where(EventRecord.seq > after)
                    .order_by(EventRecord.seq)
                    .limit(EVENT_BATCH)
                )
            ).all()
            if not events:
                return 0
            rows = await _deliveries_for(conn, events)
            if rows:
                await conn.execute(insert_ignore(conn, table_of(PushDelivery)), rows)
            await _move_cursor(conn, events[-1].seq)
        return len(events)

    async def send_due(self, session: aiohttp.ClientSession) -> int:
        due = await self.claim_due()
        await asyncio.gather(*(self._deliver(session, row) for row in due))
        return len(due)

    async def claim_due(self) -> Sequence[Any]:
        """Lease up to SEND_BATCH due deliveries that no live dispatcher holds."""
        now = datetime.now(UTC)
        async with self.engine.begin() as conn:
            claimed = (
                await conn.scalars(
                    update(DELIVERIES)
                    .where(DELIVERIES.c.id.in_(_due(now).scalar_subquery()))
                    .values(
                        lease_owner=self.name,
                        lease_expires_at=now + timedelta(seconds=self.settings.lease),
                    )
                    .returning(DELIVERIES.c.id)
                )
            ).all()
            if not claimed:
                return []
            return (
                await conn.execute(
                    select(PushDelivery, PushSubscription.url, PushSubscription.secret)
                    .join(PushSubscription, PushSubscription.id == PushDelivery.subscription_id)
                    .where(PushDelivery.id.in_(claimed))
                    .order_by(PushDelivery.next_attempt_at, PushDelivery.id)
                )
            ).all()

    async def _deliver(self, session: aiohttp.ClientSession, row: Any) -> None:
        event = await self._event(row.event_seq)
        body = orjson.dumps(event.as_json())
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "inftd-push/1",
            "X-Inftd-Timestamp": stamp,
            "X-Inftd-Signature": signature(row.secret, stamp, body),
            "X-Inftd-Event": event.type,
            "X-Inftd-Delivery": str(row.id),
        }
        status, error = None, None
        try:
            # The whole attempt, DNS included, ends within the timeout: the lease outlasts it.
            async with asyncio.timeout(self.settings.timeout):
                await check_target(row.url, self.settings.allow_private_targets)
                async with session.post(row.url, data=body, headers=headers) as response:
                    status = response.status
                    error = None if 200 <= status < 300 else f"HTTP {status}"
        except PushTargetError as exc:
            error = str(exc)
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        await self._record(row, status, error)

    async def _event(self, seq: int) -> Event:
        async with self.engine.connect() as conn:
            r = (await conn.execute(select(EventRecord).where(EventRecord.seq == seq))).one()
        return Event.from_row(r)

    async def _record(self, row: Any, status: int | None, error: str | None) -> None:
        attempts = row.attempts + 1
        now = datetime.now(UTC)
        values: dict[str, Any] = {
            "attempts": attempts,
            "last_status": status,
            "last_error": error,
            "lease_expires_at": None,  # lease_owner stays: who made the last attempt
        }
        if error is None:
            values |= {"status": "delivered", "delivered_at": now}
        elif attempts >= self.settings.max_attempts:
            values |= {"status": "dead"}
            log.warning("push delivery %d is dead after %d attempts: %s", row.id, attempts, error)
        else:
            values |= {"next_attempt_at": now + timedelta(seconds=backoff(self.settings, attempts))}
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(DELIVERIES)
                .where(DELIVERIES.c.id == row.id, DELIVERIES.c.lease_owner == self.name)
                .values(**values)
            )
        if result.rowcount != 1:  # our lease ran out and another dispatcher took it over
            log.warning("push delivery %d: lease lost; its new holder records it", row.id)


def _due(now: datetime) -> Any:
    """Ids of due deliveries nobody holds; rows another transaction is claiming are skipped."""
    return (
        select(DELIVERIES.c.id)
        .where(
            DELIVERIES.c.status == "pending",
            DELIVERIES.c.next_attempt_at <= now,
            or_(DELIVERIES.c.lease_expires_at.is_(None), DELIVERIES.c.lease_expires_at <= now),
        )
        .order_by(DELIVERIES.c.next_attempt_at, DELIVERIES.c.id)
        .limit(SEND_BATCH)
        .with_for_update(skip_locked=True)  # ignored by SQLite, whose writers take turns
    )


async def push_cursor(conn: AsyncConnection) -> int:
    """The last event seq turned into deliveries, its row locked until the transaction ends
    (other processes' dispatchers wait); made on first use, from the newest event."""
    query = select(SyncCursor.block_number).where(SyncCursor.name == CURSOR).with_for_update()
    seq = await conn.scalar(query)
    if seq is not None:
        return int(seq)
    # A new dispatcher starts from now: subscriptions see events from their creation on.
    latest = int(await conn.scalar(select(EventRecord.seq).order_by(EventRecord.seq.desc())) or 0)
    await conn.execute(
        insert_ignore(conn, table_of(SyncCursor)),
        {"name": CURSOR, "block_number": latest, "block_hash": ""},
    )
    # Another process may have made it first (the insert then waited for it): lock theirs.
    return int((await conn.execute(query)).scalar_one())


async def _move_cursor(conn: AsyncConnection, seq: int) -> None:
    await conn.execute(
        update(table_of(SyncCursor))
        .where(table_of(SyncCursor).c.name == CURSOR)
        .values(block_number=seq)
    )


async def _deliveries_for(conn: AsyncConnection, events: Sequence[Any]) -> list[dict[str, Any]]:
    """One delivery per event and matching subscription. A private event goes only to the
    subscriptions of the agent's owner as it is now (or an operator's): a seller's webhook
    keeps the public events and gets no private one after the sale (invariant 5)."""
    tokens = {e.token_id for e in events if e.token_id is not None}
    subscriptions = (
        await conn.execute(
            select(
                PushSubscription.id,
                PushSubscription.token_id,
                PushSubscription.event_types,
                PushSubscription.created_by,
            ).where(and_(PushSubscription.token_id.in_(tokens), PushSubscription.active.is_(True)))
        )
    ).all()
    rows = await conn.execute(select(Agent.token_id, Agent.owner).where(Agent.token_id.in_(tokens)))
    owners: dict[int, str] = {token_id: owner for token_id, owner in rows}

    def entitled(s: Any, e: Any) -> bool:
        if not e.private or s.created_by == OPERATOR:
            return True
        owner = owners.get(e.token_id)
        return owner is not None and owner.lower() == s.created_by.lower()

    return [
        {"subscription_id": s.id, "event_seq": e.seq}
        for e in events
        for s in subscriptions
        if s.token_id == e.token_id
        and (not s.event_types or e.type in s.event_types)
        and entitled(s, e)
    ]
