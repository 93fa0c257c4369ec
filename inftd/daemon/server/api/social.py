"""Messages between agents and collaboration grants.

    POST   /v1/agents/{tokenId}/messages                 send (owner of the sender)
    GET    /v1/agents/{tokenId}/messages?box&limit&before inbox or outbox (owner)
    POST   /v1/agents/{tokenId}/messages/{id}/read       mark read (owner of the receiver)
    POST   /v1/agents/{tokenId}/collaborators            grant (owner of the granter)
    DELETE /v1/agents/{tokenId}/collaborators/{grantee}  revoke (owner of the granter)
    GET    /v1/agents/{tokenId}/collaborators            both directions (public)

The WebSocket ``message`` command (``inftd.daemon.server.api.ws``) sends through
``socket_send`` here, whose fields are checked by the same model as the POST's body.
Grants are listed publicly: they are permissions between agents and carry no content,
and the grantee's owner needs to see what it may borrow. Messages are private.
"""

from __future__ import annotations

import logging
import math
from typing import Annotated, Any, Literal, TypeGuard

from aiohttp import web
from pydantic import Field, ValidationError, WithJsonSchema

from inftd.agents import messages
from inftd.agents.collaboration import Grant, collaborations, grant, revoke
from inftd.agents.errors import AgentError, TooManyMessages, UnknownPeer
from inftd.agents.messages import (
    DEFAULT_KIND,
    DEFAULT_PAGE,
    MAX_PAGE,
    Message,
    list_messages,
    mark_read,
    message_body,
    remember_message,
    send_message,
    unread_count,
)
from inftd.agents.owners import current_owner
from inftd.daemon.auth.tokens import Principal
from inftd.daemon.runtime import Runtime
from inftd.daemon.server.access import owner_or_operator
from inftd.daemon.server.contract.routes import OWNER, Answer, Routes, validation_error
from inftd.daemon.server.contract.wire import (
    ADDRESS,
    DECIMAL,
    MAX_BIGINT,
    UINT256_TEXT,
    Body,
    Code,
    Count,
    NoNul,
    PathValue,
    Query,
    Time,
    TokenId,
    Wire,
)
from inftd.daemon.server.errors import answer_for
from inftd.daemon.server.http import RUNTIME, ApiError, error_response

log = logging.getLogger(__name__)

ROUTES = Routes("social", "Messages between agents and collaboration grants")
MESSAGES = "/v1/agents/{token_id}/messages"
COLLABORATORS = "/v1/agents/{token_id}/collaborators"
# Beyond BIGINT no agent is stored: such an id is refused, not looked for.
AgentId = Annotated[int, Field(ge=0, le=MAX_BIGINT)]
# Not a message id (not digits, 0, beyond BIGINT): no message has it, a 404 as before.
MessageId = Annotated[
    int,
    DECIMAL,
    Field(ge=1, le=MAX_BIGINT),
    WithJsonSchema({"type": "string", "pattern": "^[0-9]{1,19}$", "examples": ["1", "2"]}),
    PathValue("unknown_message", "The message's id", status=404),
]
GranteeId = Annotated[
    int,
    DECIMAL,
    WithJsonSchema({**UINT256_TEXT, "examples": ["2", "3"]}),
    PathValue("bad_token_id", "The grantee's package token id, a uint256 in decimal"),
]


# -- requests ------------------------------------------------------------------------------


class SocialMessageRequest(Body):
    """A message to another agent: exactly one of "text" and "body"."""

    to: AgentId = Field(description="The receiving agent's package token id")
    kind: Annotated[str, Field(pattern=f"^{messages.KIND.pattern}$"), Code("bad_message")] = Field(
        DEFAULT_KIND, description=f"Default {DEFAULT_KIND!r}"
    )
    # Codes at the top: pydantic keeps no metadata of one member of a union for the field.
    text: Annotated[
        Annotated[NoNul, Field(min_length=1, max_length=messages.MAX_TEXT_CHARS)] | None,
        Code("bad_message"),
    ] = None
    body: Annotated[dict[str, Any] | None, Code("bad_message")] = Field(
        None,
        description=f"A JSON object of at most {messages.MAX_BODY_BYTES} bytes as compact "
        "JSON, with no NUL",
    )


class SocialBoxQuery(Query):
    box: Literal["inbox", "outbox"] = Field("inbox", description="inbox (default) or outbox")
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = Field(
        DEFAULT_PAGE, description=f"Messages per page, 1 to {MAX_PAGE}"
    )
    before: Annotated[int, Field(ge=1, le=MAX_BIGINT)] | None = Field(
        None, description="Only messages with smaller ids: the previous page's nextBefore"
    )


class SocialGrantRequest(Body):
    token_id: AgentId = Field(description="The grantee")


# -- answers -------------------------------------------------------------------------------


class SocialMessage(Wire):
    id: Count
    sender: Count = Field(alias="from")
    receiver: Count = Field(alias="to")
    kind: str
    body: dict[str, Any] = Field(description='A text message is {"text": ...}')
    created_at: Time | None
    read_at: Time | None

    @classmethod
    def of(cls, message: Message) -> SocialMessage:
        return cls.model_validate(message, from_attributes=True)


class SocialMessagePage(Wire):
    messages: list[SocialMessage]
    unread: Count
    next_before: Count | None = Field(description="Pass as before for more")


class SocialGrant(Wire):
    granter: Count
    grantee: Count
    granted_by: Annotated[str, Field(pattern=ADDRESS)] | Literal["operator"]
    created_at: Time | None
    revoked_at: Time | None

    @classmethod
    def of(cls, made: Grant) -> SocialGrant:
        return cls.model_validate(made, from_attributes=True)


class SocialCollaborations(Wire):
    package_token_id: Count
    granted: list[SocialGrant]
    received: list[SocialGrant]


# -- sending -------------------------------------------------------------------------------


async def send(runtime: Runtime, sender: int, request: SocialMessageRequest) -> Message:
    """Send a message from ``sender`` (whose owner is already checked); the receiver
    remembers it. Raises ``ApiError`` or a domain error (``TooManyMessages`` among them)."""
    body = message_body(request.text, request.body)
    try:
        async with runtime.writer.write(sender) as (conn, _):
            message = await send_message(conn, sender, request.to, body, request.kind)
    except UnknownPeer as exc:  # the table's unknown_agent is the sender's
        raise ApiError(404, "unknown_recipient", f"no agent {exc.token_id} to send to") from None
    runtime.hub.poke()
    await _remember(runtime, message)
    return message


async def _remember(runtime: Runtime, message: Message) -> None:
    """The receiver's memory of the message, in the receiver's own writer transaction:
    no transaction holds two agents' writers (see inftd.agents.messages)."""
    try:
        async with runtime.writer.write(message.receiver) as (conn, _):
            limit = runtime.settings.memory.max_per_agent
            await remember_message(conn, runtime.embedder, message, limit)
    except Exception:
        # The message is delivered and committed: failing the request now would make the
        # client send it twice. The memory is what is lost; the log says so.
        log.exception("message %d: the receiver's memory of it was not stored", message.id)
        return
    runtime.hub.poke()


def too_many(exc: TooManyMessages) -> web.Response:
    response = error_response(429, "too_many_messages", str(exc))
    response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    return response


def _is_token(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


async def socket_send(runtime: Runtime, principal: Principal, command: dict[str, Any]) -> Message:
    """The WebSocket ``message`` command: ``tokenId`` (the sender, which the socket's
    principal must own now) and the fields of a send request."""
    sender = command.get("tokenId")
    if not _is_token(sender):
        raise ApiError(400, "bad_token_id", "tokenId must be a non-negative integer")
    if principal.address is None and not principal.operator:
        raise ApiError(401, "unauthenticated", "sending needs the owner's sign-in token")
    await owner_or_operator(runtime.live, principal, sender)
    fields = {k: v for k, v in command.items() if k not in ("type", "tokenId")}
    try:
        return await send(runtime, sender, SocialMessageRequest.model_validate(fields, strict=True))
    except ValidationError as exc:
        raise validation_error(SocialMessageRequest, exc) from None
    except AgentError as exc:  # the socket answers codes as the middleware would
        mapped = answer_for(exc)
        if mapped is None:  # TooManyMessages, which the socket answers itself
            raise
        raise ApiError(*mapped, str(exc)) from None


# -- routes --------------------------------------------------------------------------------


@ROUTES.post(
    MESSAGES,
    "sendMessage",
    "Send a message from this agent to another (owner of the sender, or operator)",
    auth=OWNER,
    ok=Answer("Sent; the receiver's owner gets message.received", SocialMessage, status=201),
    errors={
        400: ("bad_message", "self_message"),
        404: ("unknown_recipient",),
        429: ("too_many_messages",),  # MESSAGES_PER_MINUTE from one sender
    },
)
async def post_message(
    request: web.Request, token_id: TokenId, body: SocialMessageRequest
) -> SocialMessage | web.Response:
    try:
        message = await send(request.app[RUNTIME], token_id, body)
    except TooManyMessages as exc:  # with its own Retry-After
        return too_many(exc)
    return SocialMessage.of(message)


@ROUTES.get(
    MESSAGES,
    "listMessages",
    "A page of the agent's inbox or outbox, newest first (owner or operator)",
    auth=OWNER,
    ok=Answer("The page", SocialMessagePage),
)
async def get_messages(
    request: web.Request, token_id: TokenId, query: SocialBoxQuery
) -> SocialMessagePage:
    async with request.app[RUNTIME].engine.connect() as conn:
        page = await list_messages(conn, token_id, query.box, query.limit, query.before)
        unread = await unread_count(conn, token_id)
    more = page[-1].id if len(page) == query.limit else None
    listed = [SocialMessage.of(m) for m in page]
    return SocialMessagePage(messages=listed, unread=unread, next_before=more)


@ROUTES.post(
    MESSAGES + "/{message_id}/read",
    "readMessage",
    "Mark a message of the agent's inbox read (owner of the receiver, or operator)",
    auth=OWNER,
    ok=Answer("The message, with readAt", SocialMessage),
    errors={404: ("unknown_message",)},
)
async def post_read(
    request: web.Request, token_id: TokenId, message_id: MessageId
) -> SocialMessage:
    async with request.app[RUNTIME].writer.write(token_id) as (conn, _):
        message = await mark_read(conn, token_id, message_id)
    return SocialMessage.of(message)


GRANTED = Answer("Granted (or granted again after a revoke)", SocialGrant, status=201)


@ROUTES.post(
    COLLABORATORS,
    "grantCollaboration",
    "Let another agent borrow this agent's influences (owner or operator)",
    auth=OWNER,
    ok=(GRANTED, Answer("Granted already: nothing changed", SocialGrant)),
    errors={400: ("self_collaboration",), 404: ("unknown_grantee",)},
)
async def post_collaborator(
    request: web.Request, token_id: TokenId, body: SocialGrantRequest, principal: Principal | None
) -> web.Response:
    runtime = request.app[RUNTIME]
    by = (principal.address if principal else None) or "operator"
    try:
        async with runtime.writer.write(token_id) as (conn, _):
            made, new = await grant(conn, token_id, body.token_id, by)
    except UnknownPeer as exc:  # the table's unknown_agent is the granter's
        raise ApiError(404, "unknown_grantee", f"no agent {exc.token_id} to grant to") from None
    runtime.hub.poke()
    answer = SocialGrant.of(made).to_json()
    status = GRANTED.status if new else 200
    return web.Response(body=answer, status=status, content_type="application/json")


@ROUTES.delete(
    COLLABORATORS + "/{grantee_id}",
    "revokeCollaboration",
    "Revoke a grant (the granter's current owner, or operator)",
    auth=OWNER,
    ok=Answer("Revoked", status=204),
    errors={404: ("unknown_collaboration",)},
)
async def delete_collaborator(
    request: web.Request, token_id: TokenId, grantee_id: GranteeId
) -> web.Response:
    runtime = request.app[RUNTIME]
    async with runtime.writer.write(token_id) as (conn, _):
        await revoke(conn, token_id, grantee_id)
    runtime.hub.poke()
    return web.Response(status=204)


@ROUTES.get(
    COLLABORATORS,
    "listCollaborations",
    "The agent's active grants, both ways (public)",
    ok=Answer("The grants", SocialCollaborations),
    errors={404: ("unknown_agent",)},
)
async def get_collaborators(request: web.Request, token_id: TokenId) -> SocialCollaborations:
    async with request.app[RUNTIME].engine.connect() as conn:
        await current_owner(conn, token_id)  # the agent exists
        found = await collaborations(conn, token_id)
    return SocialCollaborations(
        package_token_id=token_id,
        granted=[SocialGrant.of(g) for g in found["granted"]],
        received=[SocialGrant.of(g) for g in found["received"]],
    )


add_routes = ROUTES.add_to
