"""Owners' webhook subscriptions: ``/v1/agents/{tokenId}/webhooks`` (sent by events/push.py).

    POST   /v1/agents/{tokenId}/webhooks                  subscribe {url, events?}
    GET    /v1/agents/{tokenId}/webhooks                  the agent's subscriptions
    GET    /v1/agents/{tokenId}/webhooks/dead-letters     deliveries that gave up
    DELETE /v1/agents/{tokenId}/webhooks/{webhookId}      unsubscribe

``AgentEvent`` is what each delivery POSTs (the document's ``webhooks.agentEvent``).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import Field
from sqlalchemy import delete, func, insert, select

from inftd.daemon.auth.tokens import Principal
from inftd.daemon.events.push import MAX_URL, OPERATOR, check_target, new_secret, push_cursor
from inftd.daemon.server.api import webhooks
from inftd.daemon.server.contract.routes import OWNER, Answer, Routes
from inftd.daemon.server.contract.wire import (
    Body,
    Code,
    Count,
    Time,
    TokenId,
    WebhookId,
    Wire,
)
from inftd.daemon.server.http import RUNTIME, ApiError
from inftd.store.models import EventRecord, PushDelivery, PushSubscription

ROUTES = Routes(webhooks.ROUTES.tag, webhooks.ROUTES.description)
WEBHOOKS = "/v1/agents/{token_id}/webhooks"
MAX_SUBSCRIPTIONS = 10  # per agent
MAX_EVENT_TYPES = 32
MAX_EVENT_TYPE_CHARS = 64
DEAD_LETTERS_PAGE = 100
# Visible ASCII, as a URI is (RFC 3986): no spaces, no controls (NUL breaks PostgreSQL).
URL = "^[!-~]+$"
EventType = Annotated[
    str,
    Field(min_length=1, max_length=MAX_EVENT_TYPE_CHARS, pattern="^[ -~]+$"),
    Field(description="Printable ASCII, e.g. credits.changed"),
]


class AgentEvent(Wire):
    """One event of an agent, as a webhook gets it (the WebSockets send the same)."""

    type: Literal["event"]
    seq: Count
    event: str = Field(description="What happened, e.g. credits.changed")
    token_id: Count | None = Field(description="The agent it concerns; null for none")
    data: dict[str, Any] = Field(description="The event's payload; its shape depends on event")
    at: Time


class WebhookRequest(Body):
    url: Annotated[str, Field(max_length=MAX_URL, pattern=URL), Code("bad_url")] = Field(
        description="http(s), no credentials; a public address unless the server allows "
        "private targets",
        examples=["https://example.com/hook", "http://127.0.0.1:9/hook"],
        json_schema_extra={"format": "uri"},
    )
    events: Annotated[list[EventType], Field(max_length=MAX_EVENT_TYPES), Code("bad_events")] = (
        Field(default_factory=list, description="Event types to send; none or empty: every event")
    )


class Webhook(Wire):
    id: uuid.UUID
    url: str = Field(json_schema_extra={"format": "uri"})
    events: list[str] = Field(description="Empty: every event")
    active: bool
    created_at: Time | None


class WebhookCreated(Webhook):
    secret: Annotated[str, Field(pattern="^whsec_[A-Za-z0-9+/]+={0,2}$")] = Field(
        description="Shown this once: the Standard Webhooks secret that signs the pushes "
        "(`whsec_` and the key in base64)"
    )


class WebhookList(Wire):
    webhooks: list[Webhook]


class DeadLetter(Wire):
    delivery_id: int
    webhook_id: str
    url: str
    seq: int
    event: str
    data: dict[str, Any]
    attempts: Count
    last_status: int | None
    last_error: str | None
    created_at: Time | None


class DeadLetters(Wire):
    dead_letters: list[DeadLetter]


def _webhook(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "url": row.url,
        "events": row.event_types,
        "active": row.active,
        "created_at": row.created_at,
    }


@ROUTES.post(
    WEBHOOKS,
    "createWebhook",
    "Subscribe a URL to the agent's events (owner or operator)",
    auth=OWNER,
    ok=Answer(
        "Subscribed; the secret is shown this once",
        WebhookCreated,
        status=201,
        links={
            "deleteWebhook": {
                "operationId": "deleteWebhook",
                "parameters": {
                    "token_id": "$request.path.token_id",
                    "webhook_id": "$response.body#/id",
                },
            },
            "listWebhooks": {
                "operationId": "listWebhooks",
                "parameters": {"token_id": "$request.path.token_id"},
            },
        },
    ),
    errors={400: ("bad_url",), 409: ("too_many_webhooks",)},
)
async def create_subscription(
    request: web.Request, token_id: TokenId, body: WebhookRequest, principal: Principal | None
) -> WebhookCreated:
    runtime = request.app[RUNTIME]
    await check_target(body.url, runtime.settings.push.allow_private_targets)
    row = {
        "id": str(uuid.uuid4()),
        "token_id": token_id,
        "url": body.url,
        "secret": new_secret(),
        "event_types": sorted(set(body.events)),
        "created_by": (principal and principal.address) or OPERATOR,
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
    return WebhookCreated(**_webhook(created), secret=row["secret"])


@ROUTES.get(
    WEBHOOKS,
    "listWebhooks",
    "The agent's webhooks (owner or operator)",
    auth=OWNER,
    ok=Answer("The webhooks", WebhookList),
)
async def list_subscriptions(request: web.Request, token_id: TokenId) -> WebhookList:
    async with request.app[RUNTIME].engine.connect() as conn:
        rows = await conn.execute(
            select(PushSubscription)
            .where(PushSubscription.token_id == token_id)
            .order_by(PushSubscription.created_at)
        )
        return WebhookList(webhooks=[Webhook(**_webhook(r)) for r in rows])


@ROUTES.get(
    WEBHOOKS + "/dead-letters",
    "deadLetters",
    f"The newest {DEAD_LETTERS_PAGE} deliveries that exhausted their retries",
    auth=OWNER,
    ok=Answer("The dead letters", DeadLetters),
)
async def dead_letters(request: web.Request, token_id: TokenId) -> DeadLetters:
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
            DeadLetter(
                delivery_id=r.id,
                webhook_id=r.subscription_id,
                url=r.url,
                seq=r.event_seq,
                event=r.type,
                data=r.payload,
                attempts=r.attempts,
                last_status=r.last_status,
                last_error=r.last_error,
                created_at=r.created_at,
            )
            for r in rows
        ]
    return DeadLetters(dead_letters=letters)


@ROUTES.delete(
    WEBHOOKS + "/{webhook_id}",
    "deleteWebhook",
    "Remove a webhook (owner or operator)",
    auth=OWNER,
    ok=Answer("Removed", status=204),
    errors={404: ("unknown_webhook",)},
)
async def delete_subscription(
    request: web.Request, token_id: TokenId, webhook_id: WebhookId
) -> web.Response:
    async with request.app[RUNTIME].engine.begin() as conn:
        result = await conn.execute(
            delete(PushSubscription).where(
                PushSubscription.id == str(webhook_id),
                PushSubscription.token_id == token_id,
            )
        )
    if result.rowcount == 0:
        raise ApiError(404, "unknown_webhook", "no such webhook for this agent")
    return web.Response(status=204)


add_routes = ROUTES.add_to
