"""Outbound push notifications: agents' events POSTed to their owners' webhook URLs.

The dispatcher tails the events table from its own cursor (in ``sync_cursor``, name
``push``), turns each event into one delivery per matching subscription, and sends due
deliveries as POSTs signed the Standard Webhooks way (https://www.standardwebhooks.com),
so receivers verify them with a ready library::

    webhook-id: <delivery id, the same on every retry>
    webhook-timestamp: <unix seconds>
    webhook-signature: v1,BASE64(HMAC_SHA256(key, "<id>.<timestamp>." + body))

The key is the base64 after ``whsec_`` of the subscription's secret (a secret made before
those, without the prefix, is its own UTF-8 bytes). The older ``X-Inftd-Timestamp`` and
``X-Inftd-Signature`` headers are still sent for one release (deprecated).

A 2xx answer delivers; anything else, a redirect included (never followed), is retried with
exponential backoff and jitter, and a delivery that fails ``push.max_attempts`` times becomes
a dead letter, listed by the API.

Several processes may run a dispatcher on one PostgreSQL database. Enqueueing holds the
cursor row (``FOR UPDATE``), so one dispatcher at a time turns a range of events into
deliveries. Sending claims due deliveries with a lease (``lease_owner``,
``lease_expires_at``) under ``FOR UPDATE SKIP LOCKED``, so each attempt is made by one
dispatcher; a dispatcher that dies holding a lease has its deliveries taken over once the
lease (``push.lease``, longer than an attempt may take) expires. On SQLite, one process,
the same statements run without the row locks.

Only http(s) URLs to public addresses are accepted unless ``push.allow_private_targets``
is set: checked at registration, and at each send on the address connected to (the push
session's resolver refuses names that answer a non-public address), so a name that rebinds
between the check and the connection gets nowhere.
"""

from __future__ import annotations

import asyncio
import base64
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
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
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


class RefusedAddress(OSError):
    """A name that resolved to a non-public address (an OSError: aiohttp's connector wraps it
    in ClientConnectorDNSError, as it does any failed lookup)."""


SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signing_key(secret: str) -> bytes:
    if secret.startswith(SECRET_PREFIX):
        return base64.b64decode(secret[len(SECRET_PREFIX) :] + "==")
    return secret.encode()  # made before whsec_ secrets: the receiver passes these bytes


def standard_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """``webhook-signature``: the id, the timestamp and the body, signed."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    mac = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The deprecated ``X-Inftd-Signature`` (it does not sign the delivery id)."""
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


def non_public(host: str, addresses: Iterable[str]) -> str | None:
    """Why ``host`` may not be called, if one of its addresses is not a public one."""
    for raw in addresses:
        try:
            address = ipaddress.ip_address(raw)
        except ValueError:
            return f"{host} resolves to an address that is not an IP address ({raw!r})"
        if not address.is_global:
            return f"{host} resolves to a non-public address ({address})"
    return None


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class PublicResolver(AbstractResolver):
    """Resolves through ``inner`` and refuses any name with a non-public address among its
    answers. On the push session's connector, the addresses checked are the ones connected
    to: no second lookup for a rebinding name to answer differently. (aiohttp resolves no
    IP literal: those are checked against the URL, at each send.)"""

    def __init__(self, inner: AbstractResolver) -> None:
        self.inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self.inner.resolve(host, port, family)
        refused = non_public(host, (answer["host"] for answer in answers))
        if refused:
            raise RefusedAddress(refused)
        return answers

    async def close(self) -> None:
        await self.inner.close()


def check_literal(url: str, allow_private: bool) -> tuple[str, int]:
    """check_url, and the check of each send that the resolver cannot make: the URL's host
    as an IP literal."""
    host, port = check_url(url)
    if not allow_private and is_ip_literal(host):
        refused = non_public(host, [host])
        if refused:
            raise PushTargetError(refused)
    return host, port


async def check_target(
    url: str, allow_private: bool, resolver: AbstractResolver | None = None
) -> None:
    """Refuse URLs that resolve to loopback, private, link-local or reserved addresses."""
    host, port = check_literal(url, allow_private)
    if allow_private or is_ip_literal(host):
        return
    public = PublicResolver(resolver or DefaultResolver())
    try:
        await public.resolve(host, port, socket.AF_UNSPEC)
    except RefusedAddress as exc:
        raise PushTargetError(str(exc)) from None
    except OSError as exc:
        raise PushTargetError(f"cannot resolve {host}: {exc.strerror or exc}") from None
    finally:
        await public.close()


def backoff(settings: PushSettings, attempts: int) -> float:
    ceiling = min(settings.backoff_max, settings.backoff_base * 2.0**attempts)
    return random.uniform(0.5, 1.0) * ceiling


def dispatcher_name() -> str:
    """Who holds a lease: host, process and a random part (two dispatchers of one process)."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{secrets.token_hex(4)}"


class PushDispatcher:
    def __init__(
        self,
        engine: AsyncEngine,
        settings: PushSettings,
        resolver: Callable[[], AbstractResolver] = DefaultResolver,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.resolver = resolver  # made in session(), on the running loop
        self.name = dispatcher_name()  # in lease_owner of the deliveries it claims

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[aiohttp.ClientSession]:
        """The session deliveries go out on: its resolver refuses non-public addresses
        (unless ``push.allow_private_targets``), no proxy from the environment, no cookies
        kept between receivers."""
        resolver = self.resolver()
        if not self.settings.allow_private_targets:
            resolver = PublicResolver(resolver)
        try:
            async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(resolver=resolver),
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout),
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
            ) as session:
                yield session
        finally:
            await resolver.close()  # the connector closes only a resolver it made

    async def run(self, stop: asyncio.Event) -> None:
        async with self.session() as session:
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
        status, error = None, None
        try:
            check_literal(row.url, self.settings.allow_private_targets)
            # The whole attempt, DNS included, ends within the timeout: the lease outlasts it.
            async with asyncio.timeout(self.settings.timeout):
                async with session.post(
                    row.url, data=body, headers=headers(row, event, body), allow_redirects=False
                ) as response:
                    status = response.status
                    error = None if 200 <= status < 300 else _failure(response)
        except PushTargetError as exc:
            error = str(exc)
        except aiohttp.ClientConnectorDNSError as exc:
            refused = isinstance(exc.os_error, RefusedAddress)
            error = str(exc.os_error) if refused else f"{type(exc).__name__}: {exc}"
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


def headers(row: Any, event: Event, body: bytes) -> dict[str, str]:
    delivery, stamp = str(row.id), str(int(time.time()))
    return {
        "Content-Type": "application/json",
        "User-Agent": "inftd-push/1",
        "webhook-id": delivery,
        "webhook-timestamp": stamp,
        "webhook-signature": standard_signature(row.secret, delivery, stamp, body),
        "X-Inftd-Event": event.type,
        "X-Inftd-Delivery": delivery,
        # Deprecated: the Standard Webhooks headers above replace these after one release.
        "X-Inftd-Timestamp": stamp,
        "X-Inftd-Signature": signature(row.secret, stamp, body),
    }


def _failure(response: aiohttp.ClientResponse) -> str:
    if 300 <= response.status < 400:
        return f"HTTP {response.status}: redirects are not followed"
    return f"HTTP {response.status}"


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
