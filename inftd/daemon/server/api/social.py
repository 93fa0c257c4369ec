"""Messages between agents and collaboration grants.

    POST   /v1/agents/{tokenId}/messages                 send (owner of the sender)
    GET    /v1/agents/{tokenId}/messages?box&limit&before inbox or outbox (owner)
    POST   /v1/agents/{tokenId}/messages/{id}/read       mark read (owner of the receiver)
    POST   /v1/agents/{tokenId}/collaborators            grant (owner of the granter)
    DELETE /v1/agents/{tokenId}/collaborators/{grantee}  revoke (owner of the granter)
    GET    /v1/agents/{tokenId}/collaborators            both directions (public)

The WebSocket ``message`` command (``inftd.daemon.server.api.ws``) sends through ``send`` here.
Grants are listed publicly: they are permissions between agents and carry no content,
and the grantee's owner needs to see what it may borrow. Messages are private.
"""

from __future__ import annotations

import logging
import math
from typing import Any, TypeGuard

from aiohttp import web

from inftd.agents.collaboration import collaborations, grant, revoke
from inftd.agents.errors import (
    BadMessage,
    SelfCollaboration,
    SelfMessage,
    TooManyMessages,
    UnknownAgent,
    UnknownCollaboration,
    UnknownMessage,
    UnknownPeer,
)
from inftd.agents.messages import (
    DEFAULT_KIND,
    DEFAULT_PAGE,
    MAX_PAGE,
    Box,
    Message,
    check_kind,
    list_messages,
    mark_read,
    message_body,
    remember_message,
    send_message,
    unread_count,
)
from inftd.agents.owners import MAX_STORED_TOKEN_ID, current_owner
from inftd.daemon.auth.tokens import Principal
from inftd.daemon.runtime import Runtime
from inftd.daemon.server.access import owner_or_operator, require_owner
from inftd.daemon.server.api.agents import MAX_TOKEN_DIGITS, token_id_of
from inftd.daemon.server.http import RUNTIME, ApiError, error_response, json_response, read_json

log = logging.getLogger(__name__)

SEND_FIELDS = frozenset({"to", "kind", "text", "body"})
BOXES = ("inbox", "outbox")
NO_MESSAGE = "no such message in this agent's inbox"
SEND_HELP = 'send {"to": <tokenId>, "kind"?: "...", and "text": "..." or "body": {...}}'


def _digits(raw: str) -> int | None:
    """A decimal in ASCII digits (``str.isdigit`` also takes "²"), else None."""
    if raw.isascii() and raw.isdigit() and len(raw) <= MAX_TOKEN_DIGITS:
        return int(raw)
    return None


def _is_token(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def parse_send(command: Any) -> tuple[int, str, dict[str, Any]]:
    """(receiver, kind, body) of a send request; 400 if it has another shape."""
    if not isinstance(command, dict) or "to" not in command or set(command) - SEND_FIELDS:
        raise ApiError(400, "bad_request", SEND_HELP)
    if not _is_token(command["to"]):
        raise ApiError(400, "bad_request", "to must be a token id (a non-negative integer)")
    try:
        kind = check_kind(command.get("kind", DEFAULT_KIND))
        return command["to"], kind, message_body(command.get("text"), command.get("body"))
    except BadMessage as exc:
        raise ApiError(400, "bad_message", str(exc)) from None


async def send(runtime: Runtime, sender: int, command: Any) -> Message:
    """Send a message from ``sender`` (whose owner is already checked); the receiver
    remembers it. Raises ``ApiError``, or ``TooManyMessages`` for the caller to answer."""
    receiver, kind, body = parse_send(command)
    try:
        async with runtime.writer.write(sender) as (conn, _):
            message = await send_message(conn, sender, receiver, body, kind)
    except UnknownPeer as exc:
        raise ApiError(404, "unknown_recipient", f"no agent {exc.token_id} to send to") from None
    except UnknownAgent as exc:
        raise ApiError(404, "unknown_agent", str(exc)) from None
    except SelfMessage as exc:
        raise ApiError(400, "self_message", str(exc)) from None
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


async def post_message(request: web.Request) -> web.Response:
    sender = token_id_of(request)
    await require_owner(request, sender)
    command = await read_json(request)
    try:
        message = await send(request.app[RUNTIME], sender, command)
    except TooManyMessages as exc:
        return too_many(exc)
    return json_response(message.as_json(), 201)


def _int_query(request: web.Request, name: str, low: int, high: int) -> int | None:
    """The query parameter as an integer of at least ``low``, capped at ``high``."""
    raw = request.query.get(name)
    if raw is None:
        return None
    value = _digits(raw)
    if value is None or value < low:
        raise ApiError(400, "bad_query", f"{name} must be an integer of at least {low}")
    return min(value, high)


async def get_messages(request: web.Request) -> web.Response:
    token_id = token_id_of(request)
    await require_owner(request, token_id)
    raw_box = request.query.get("box", "inbox")
    if raw_box not in BOXES:
        raise ApiError(400, "bad_query", "box must be inbox or outbox")
    box: Box = "outbox" if raw_box == "outbox" else "inbox"
    limit = _int_query(request, "limit", 1, MAX_PAGE) or DEFAULT_PAGE
    # Ids beyond the column's range: "before" them is every message.
    before = _int_query(request, "before", 1, MAX_STORED_TOKEN_ID)
    async with request.app[RUNTIME].engine.connect() as conn:
        page = await list_messages(conn, token_id, box, limit, before)
        unread = await unread_count(conn, token_id)
    more = page[-1].id if len(page) == limit else None
    return json_response(
        {"messages": [m.as_json() for m in page], "unread": unread, "nextBefore": more}
    )


async def post_read(request: web.Request) -> web.Response:
    token_id = token_id_of(request)
    await require_owner(request, token_id)
    message_id = _digits(request.match_info["message_id"])
    if message_id is None:  # not an id: no message has it
        raise ApiError(404, "unknown_message", NO_MESSAGE)
    try:
        async with request.app[RUNTIME].writer.write(token_id) as (conn, _):
            message = await mark_read(conn, token_id, message_id)
    except UnknownMessage:
        raise ApiError(404, "unknown_message", NO_MESSAGE) from None
    except UnknownAgent as exc:
        raise ApiError(404, "unknown_agent", str(exc)) from None
    return json_response(message.as_json())


async def post_collaborator(request: web.Request) -> web.Response:
    granter = token_id_of(request)
    principal = await require_owner(request, granter)
    body = await read_json(request)
    if not isinstance(body, dict) or set(body) != {"tokenId"} or not _is_token(body["tokenId"]):
        raise ApiError(400, "bad_request", 'send {"tokenId": <the grantee\'s token id>}')
    runtime = request.app[RUNTIME]
    try:
        async with runtime.writer.write(granter) as (conn, _):
            made, new = await grant(conn, granter, body["tokenId"], principal.address or "operator")
    except SelfCollaboration as exc:
        raise ApiError(400, "self_collaboration", str(exc)) from None
    except UnknownPeer as exc:
        raise ApiError(404, "unknown_grantee", f"no agent {exc.token_id} to grant to") from None
    except UnknownAgent as exc:
        raise ApiError(404, "unknown_agent", str(exc)) from None
    runtime.hub.poke()
    return json_response(made.as_json(), 201 if new else 200)


async def delete_collaborator(request: web.Request) -> web.Response:
    granter = token_id_of(request)
    await require_owner(request, granter)
    grantee = _digits(request.match_info["grantee_id"])
    if grantee is None:
        raise ApiError(400, "bad_token_id", "the grantee must be a uint256 in decimal")
    runtime = request.app[RUNTIME]
    try:
        async with runtime.writer.write(granter) as (conn, _):
            await revoke(conn, granter, grantee)
    except UnknownCollaboration as exc:
        raise ApiError(404, "unknown_collaboration", str(exc)) from None
    except UnknownAgent as exc:
        raise ApiError(404, "unknown_agent", str(exc)) from None
    runtime.hub.poke()
    return web.Response(status=204)


async def get_collaborators(request: web.Request) -> web.Response:
    token_id = token_id_of(request)
    async with request.app[RUNTIME].engine.connect() as conn:
        try:
            await current_owner(conn, token_id)  # the agent exists
        except UnknownAgent as exc:
            raise ApiError(404, "unknown_agent", str(exc)) from None
        found = await collaborations(conn, token_id)
    return json_response(
        {
            "packageTokenId": token_id,
            **{name: [g.as_json() for g in grants] for name, grants in found.items()},
        }
    )


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
    return await send(runtime, sender, fields)


def add_routes(app: web.Application) -> None:
    messages = "/v1/agents/{token_id}/messages"
    collaborators = "/v1/agents/{token_id}/collaborators"
    app.router.add_post(messages, post_message)
    app.router.add_get(messages, get_messages)
    app.router.add_post(messages + "/{message_id}/read", post_read)
    app.router.add_post(collaborators, post_collaborator)
    app.router.add_get(collaborators, get_collaborators)
    app.router.add_delete(collaborators + "/{grantee_id}", delete_collaborator)
