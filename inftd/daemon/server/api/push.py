"""Owners' webhook subscriptions: ``/v1/agents/{tokenId}/webhooks`` (sent by events/push.py)."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web
from sqlalchemy import delete, func, insert, select

from inftd.agents.views import iso
from inftd.daemon.events.push import (
    OPERATOR,
    PushTargetError,
    check_target,
    new_secret,
    push_cursor,
)
from inftd.daemon.server.access import require_owner
from inftd.daemon.server.api.agents import token_id_of
from inftd.daemon.server.http import RUNTIME, ApiError, json_response, read_json
from inftd.store.models import EventRecord, PushDelivery, PushSubscription

MAX_SUBSCRIPTIONS = 10  # per agent
MAX_EVENT_TYPES = 32
DEAD_LETTERS_PAGE = 100


def _subscription_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "url": row.url,
        "events": row.event_types,
        "active": row.active,
        "createdAt": iso(row.created_at),
    }


def _event_types(body: dict[str, Any]) -> list[str]:
    types = body.get("events", [])
    if not isinstance(types, list) or len(types) > MAX_EVENT_TYPES:
        raise ApiError(400, "bad_events", f"events must be a list of at most {MAX_EVENT_TYPES}")
    if not all(isinstance(t, str) and 0 < len(t) <= 64 and t.isprintable() for t in types):
        raise ApiError(400, "bad_events", "each event type is 1 to 64 printable characters")
    return sorted(set(types))


def _is_uuid(raw: str) -> bool:
    """Whether ``raw`` is a UUID as this module writes them (``str(uuid4())``)."""
    try:
        return str(uuid.UUID(raw)) == raw
    except ValueError:
        return False


async def create_subscription(request: web.Request) -> web.Response:
    token_id = token_id_of(request)
    principal = await require_owner(request, token_id)
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("url"), str):
        raise ApiError(400, "bad_request", 'send {"url": "https://...", "events": [...]}')
    runtime = request.app[RUNTIME]
    if not body["url"].isprintable():  # control characters (NUL breaks PostgreSQL's text)
        raise ApiError(400, "bad_url", "the URL has control characters")
    try:
        await check_target(body["url"], runtime.settings.push.allow_private_targets)
    except PushTargetError as exc:
        raise ApiError(400, "bad_url", str(exc)) from None
    row = {
        "id": str(uuid.uuid4()),
        "token_id": token_id,
        "url": body["url"],
        "secret": new_secret(),
        "event_types": _event_types(body),
        "created_by": principal.address or OPERATOR,
    }
    async with runtime.engine.begin() as conn:
        count = await conn.scalar(select(func.count()).where(PushSubscription.token_id == token_id))
        if (count or 0) >= MAX_SUBSCRIPTIONS:
            raise ApiError(409, "too_many_webhooks", f"at most {MAX_SUBSCRIPTIONS} per agent")
        await push_cursor(conn)  # deliveries start no later than this subscription
        await conn.execute(insert(PushSubscription).values(**row))
        created = (
            await conn.execute(select(PushSubscription).where(PushSubscription.id == row["id"]))
        ).one()
    # The secret is shown this once: the owner verifies signatures with it (Standard Webhooks).
    return json_response(_subscription_json(created) | {"secret": row["secret"]}, 201)


async def list_subscriptions(request: web.Request) -> web.Response:
    token_id = token_id_of(request)
    await require_owner(request, token_id)
    async with request.app[RUNTIME].engine.connect() as conn:
        rows = await conn.execute(
            select(PushSubscription)
            .where(PushSubscription.token_id == token_id)
            .order_by(PushSubscription.created_at)
        )
        return json_response({"webhooks": [_subscription_json(r) for r in rows]})


async def delete_subscription(request: web.Request) -> web.Response:
    token_id = token_id_of(request)
    await require_owner(request, token_id)
    webhook_id = request.match_info["webhook_id"]
    if not _is_uuid(webhook_id):  # no webhook has it (and NUL breaks PostgreSQL's text)
        raise ApiError(404, "unknown_webhook", "no such webhook for this agent")
    async with request.app[RUNTIME].engine.begin() as conn:
        result = await conn.execute(
            delete(PushSubscription).where(
                PushSubscription.id == webhook_id,
                PushSubscription.token_id == token_id,
            )
        )
    if result.rowcount == 0:
        raise ApiError(404, "unknown_webhook", "no such webhook for this agent")
    return web.Response(status=204)


async def dead_letters(request: web.Request) -> web.Response:
    token_id = token_id_of(request)
    await require_owner(request, token_id)
    async with request.app[RUNTIME].engine.connect() as conn:
        rows = await conn.execute(
            select(PushDelivery, PushSubscription.url, EventRecord.type, EventRecord.payload)
            .join(PushSubscription, PushSubscription.id == PushDelivery.subscription_id)
            .join(EventRecord, EventRecord.seq == PushDelivery.event_seq)
            .where(PushSubscription.token_id == token_id, PushDelivery.status == "dead")
            .order_by(PushDelivery.id.desc())
            .limit(DEAD_LETTERS_PAGE)
        )
        letters = [
            {
                "deliveryId": r.id,
                "webhookId": r.subscription_id,
                "url": r.url,
                "seq": r.event_seq,
                "event": r.type,
                "data": r.payload,
                "attempts": r.attempts,
                "lastStatus": r.last_status,
                "lastError": r.last_error,
                "createdAt": iso(r.created_at),
            }
            for r in rows
        ]
    return json_response({"deadLetters": letters})


def add_routes(app: web.Application) -> None:
    base = "/v1/agents/{token_id}/webhooks"
    app.router.add_post(base, create_subscription)
    app.router.add_get(base, list_subscriptions)
    app.router.add_get(base + "/dead-letters", dead_letters)
    app.router.add_delete(base + "/{webhook_id}", delete_subscription)
