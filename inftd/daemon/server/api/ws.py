"""WebSockets: ``GET /v1/agents/{tokenId}/ws`` (one agent, more by command) and ``GET /v1/ws``
(the operator's firehose).

Reading public events needs nothing; an owner's sign-in token (``Authorization: Bearer``, or
``?access_token=`` since browsers cannot set headers on a WebSocket) also brings the
private events of the agents it owns at the moment it subscribes, until one is sold
(the hub follows ``owner.changed``; the operator sees them all).

On connect a client gets a snapshot of the agent, then, with ``?since=<seq>``, every event
it missed, then live events, each with its ``seq``. Client commands are JSON objects with
a ``type``: ``subscribe`` / ``unsubscribe`` (``tokenId``), ``ping``, and ``message``
(``tokenId`` the sender, which the socket's sign-in must own, and the fields of
``POST /v1/agents/{tokenId}/messages``; answered ``messageSent`` or an error), and
``generate`` (``tokenId``, which the socket's sign-in must own, ``idempotencyKey``, and
the fields of ``POST /v1/agents/{tokenId}/generations``; answered ``generationQueued`` or
an error). A client whose buffer overflows is closed with code 4008; one that stops
answering pings is closed by the heartbeat. The AsyncAPI document (``server.asyncapi``)
describes every frame; the routes' 101 answers in /openapi.json point to it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any

import orjson
from aiohttp import WSCloseCode, WSMsgType, web
from pydantic import Field

from inftd.agents.errors import TooManyMessages, UnknownAgent
from inftd.daemon.auth.tokens import Principal
from inftd.daemon.events.hub import Subscription
from inftd.daemon.server.access import principal_for, principal_of
from inftd.daemon.server.api import generations, social
from inftd.daemon.server.contract.routes import UNAUTHORIZED, Answer, Auth, Routes
from inftd.daemon.server.contract.wire import MAX_BIGINT, Code, Query, TokenId
from inftd.daemon.server.http import RUNTIME, ApiError

SOCKETS = web.AppKey("sockets", set[web.WebSocketResponse])  # open, for shutdown
CLOSE_TOO_SLOW = 4008  # the client fell more than api.ws_queue events behind
MAX_CLIENT_MESSAGE = 64 * 1024  # bytes per client message
REPLAY_PAGE = 500  # events read per query when replaying since a seq
CLOSE_GRACE = 2.0  # seconds a cut-off client gets to take the close frame
HEARTBEAT_JITTER = 0.25  # each socket pings every api.ws_heartbeat x (1 ± this)

ASYNCAPI = "/asyncapi.json"  # asyncapi.PATH (that module describes this one's frames)
ROUTES = Routes("websockets", "Live events")

Command = Callable[["SocketSession", dict[str, Any]], Awaitable[None]]


class SocketQuery(Query):
    error_code = "bad_since"
    since: Annotated[int, Field(ge=0, le=MAX_BIGINT), Code("bad_since")] | None = Field(
        None, description="Replay the events after this seq before the live ones"
    )


class SocketSession:
    def __init__(
        self,
        request: web.Request,
        ws: web.WebSocketResponse,
        sub: Subscription,
        principal: Principal,
    ) -> None:
        self.principal = principal
        self.transport = request.transport  # kept: aiohttp lets go of it while closing
        self.ws = ws
        self.runtime = request.app[RUNTIME]
        self.sub = sub
        self._send_lock = asyncio.Lock()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    async def send(self, message: dict[str, Any]) -> None:
        await self.send_text(orjson.dumps(message))

    async def send_text(self, text: bytes) -> None:
        """A text frame of UTF-8 JSON, as serialized (events are, once for all sockets)."""
        async with self._send_lock:
            await self.ws.send_frame(text, WSMsgType.TEXT)

    async def snapshot(self, token_id: int) -> None:
        # Decided afresh on each subscribe: an unsubscribed token's sale went unseen.
        if await may_see_private(self, token_id):
            self.sub.private_tokens.add(token_id)
        else:
            self.sub.private_tokens.discard(token_id)
        seq = self.runtime.hub.last_seq  # before the read: events after it follow live
        entry = await self.runtime.live.agent(token_id)
        await self.send(
            {
                "type": "snapshot",
                "tokenId": token_id,
                "seq": seq,
                "agent": orjson.Fragment(entry.document),
            }
        )

    async def run(self, since: int | None, snapshots: list[int]) -> None:
        hub = self.runtime.hub
        live_from = hub.subscribe(self.sub)  # live events wait in the buffer meanwhile
        try:
            for token_id in snapshots:
                await self.snapshot(token_id)
            await self._replay(since, live_from)
            sender = asyncio.create_task(self._send_live())
            reader = asyncio.create_task(self._read_commands())
            cut_off = asyncio.create_task(self.sub.cut_off.wait())
            try:
                await asyncio.wait({reader, cut_off}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (sender, reader, cut_off):
                    task.cancel()
                await asyncio.gather(sender, reader, cut_off, return_exceptions=True)
            if self.sub.overflowed:
                await self._cut_off()
        finally:
            hub.unsubscribe(self.sub)

    async def _replay(self, since: int | None, until: int) -> None:
        after = since
        while after is not None and after < until:
            tokens = None if self.sub.everything else self.sub.tokens
            events = await self.runtime.hub.read(after, REPLAY_PAGE, until=until, tokens=tokens)
            for event in events:
                if self.sub.wants(event):
                    await self.send_text(event.wire())
            after = events[-1].seq if events else None

    async def _send_live(self) -> None:
        while (event := await self.sub.next()) is not None:
            await self.send_text(event.wire())

    async def _cut_off(self) -> None:
        """Close a client that fell behind, even if a send to it was stuck (its whole frame
        was buffered, so stopping the send mid-way corrupts nothing)."""
        closing = asyncio.create_task(
            self.ws.close(code=CLOSE_TOO_SLOW, message=b"too slow: buffer overflowed")
        )
        done, _ = await asyncio.wait({closing}, timeout=CLOSE_GRACE)
        if not done:  # it does not read at all: drop the connection
            self.abort()
            closing.cancel()
            await asyncio.wait({closing}, timeout=CLOSE_GRACE)

    async def _read_commands(self) -> None:
        async for message in self.ws:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                command = orjson.loads(message.data)
                name = command["type"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                await self.error("bad_message", 'send JSON objects with a "type"')
                continue
            handler = COMMANDS.get(name)
            if handler is None:
                await self.error("unknown_command", f"unknown command {name!r}")
            else:
                await handler(self, command)

    async def error(self, code: str, message: str) -> None:
        await self.send({"type": "error", "code": code, "message": message})


def _command_token(command: dict[str, Any]) -> int | None:
    token = command.get("tokenId")
    return token if isinstance(token, int) and not isinstance(token, bool) and token >= 0 else None


async def _subscribe(session: SocketSession, command: dict[str, Any]) -> None:
    token_id = _command_token(command)
    if token_id is None:
        await session.error("bad_token_id", "tokenId must be a non-negative integer")
        return
    session.sub.tokens.add(token_id)
    try:
        await session.snapshot(token_id)
    except UnknownAgent as exc:
        session.sub.tokens.discard(token_id)
        await session.error("unknown_agent", str(exc))


async def _unsubscribe(session: SocketSession, command: dict[str, Any]) -> None:
    token_id = _command_token(command)
    if token_id is not None:
        session.sub.tokens.discard(token_id)
        session.sub.private_tokens.discard(token_id)
    await session.send({"type": "unsubscribed", "tokenId": token_id})


async def _ping(session: SocketSession, command: dict[str, Any]) -> None:
    await session.send({"type": "pong", "seq": session.runtime.hub.last_seq})


async def _generate(session: SocketSession, command: dict[str, Any]) -> None:
    try:
        created = await generations.socket_generate(session.runtime, session.principal, command)
    except ApiError as exc:
        await session.error(exc.code, exc.message)
    else:
        answer = {"generation": created.generation, "replayed": created.replayed}
        await session.send({"type": "generationQueued", **answer})


async def _message(session: SocketSession, command: dict[str, Any]) -> None:
    try:
        sent = await social.socket_send(session.runtime, session.principal, command)
    except ApiError as exc:
        await session.error(exc.code, exc.message)
    except TooManyMessages as exc:
        await session.error("too_many_messages", str(exc))
    else:
        await session.send({"type": "messageSent", "message": sent.as_json()})


COMMANDS: dict[str, Command] = {
    "subscribe": _subscribe,
    "unsubscribe": _unsubscribe,
    "ping": _ping,
    "message": _message,
    "generate": _generate,
}


async def _open(request: web.Request) -> web.WebSocketResponse:
    api = request.app[RUNTIME].settings.api
    # Each socket's own period, so sockets opened together do not all ping at once (1,000
    # pings in one burst held an event's fan-out back by some 60 ms).
    heartbeat = api.ws_heartbeat * random.uniform(1 - HEARTBEAT_JITTER, 1 + HEARTBEAT_JITTER)
    ws = web.WebSocketResponse(heartbeat=heartbeat, max_msg_size=MAX_CLIENT_MESSAGE)
    await ws.prepare(request)
    request.app[SOCKETS].add(ws)
    return ws


async def _close_all(app: web.Application) -> None:
    sockets = app[SOCKETS]
    for ws in list(sockets):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")


async def _reader(request: web.Request, path: Mapping[str, Any]) -> Principal | None:
    """Anyone reads public events; a credential that is not valid is refused."""
    return socket_principal(request)


async def _operator(request: web.Request, path: Mapping[str, Any]) -> Principal | None:
    principal = socket_principal(request)
    if not principal.operator:
        raise ApiError(401, "unauthenticated", "the firehose needs the operator API key")
    return principal


# Credentials in the Authorization header, or in ?access_token= (browsers set no headers).
READER = Auth(
    ({}, {"signIn": []}, {"operatorKey": []}, {"accessToken": []}),
    {401: ("invalid_token", "token_expired")},
    _reader,
)
OPERATOR_SOCKET = Auth(({"operatorKey": []}, {"accessToken": []}), {401: UNAUTHORIZED}, _operator)
NO_HANDSHAKE = {400: ("bad_request",)}  # aiohttp's answer to a GET that does not upgrade


def _opened(channel: str, **links: Any) -> Answer:
    """The 101 of a socket; its frames are the AsyncAPI document's ``channel``."""
    return Answer(
        f"Switching Protocols: the WebSocket is open. Its frames are described by the "
        f"AsyncAPI document at {ASYNCAPI} (channel {channel})",
        status=101,
        extensions={"x-asyncapi": {"document": ASYNCAPI, "channel": f"#/channels/{channel}"}},
        links=links,
    )


@ROUTES.get(
    "/v1/agents/{token_id}/ws",
    "agentSocket",
    "WebSocket of one agent's events (more by command); private ones to its owner",
    auth=READER,
    ok=_opened(
        "agent",
        getAgent={
            "operationId": "getAgent",
            "parameters": {"token_id": "$request.path.token_id"},
            "description": "The agent the socket's snapshot shows",
        },
    ),
    errors={**NO_HANDSHAKE, 404: ("unknown_agent",)},
)
async def agent_socket(
    request: web.Request, token_id: TokenId, query: SocketQuery, principal: Principal | None
) -> web.WebSocketResponse:
    runtime = request.app[RUNTIME]
    principal = principal or Principal()
    await runtime.live.agent(token_id)  # an unknown agent is refused before the upgrade
    ws = await _open(request)
    viewer = None if principal.operator else principal.address  # the operator sees all
    sub = Subscription(runtime.settings.api.ws_queue, tokens={token_id}, viewer=viewer)
    try:
        await SocketSession(request, ws, sub, principal).run(query.since, [token_id])
    finally:
        request.app[SOCKETS].discard(ws)
    return ws


def socket_principal(request: web.Request) -> Principal:
    token = request.query.get("access_token")
    return principal_for(request, token) if token is not None else principal_of(request)


async def may_see_private(session: SocketSession, token_id: int) -> bool:
    principal = session.principal
    if principal.operator:
        return True
    if principal.address is None:
        return False
    return await session.runtime.live.owner(token_id) == principal.address


@ROUTES.get(
    "/v1/ws",
    "firehose",
    "WebSocket of every event (operator)",
    auth=OPERATOR_SOCKET,
    ok=_opened("firehose"),
    errors=NO_HANDSHAKE,
)
async def firehose(request: web.Request, query: SocketQuery) -> web.WebSocketResponse:
    runtime = request.app[RUNTIME]
    ws = await _open(request)
    sub = Subscription(runtime.settings.api.ws_queue, everything=True)
    try:
        await SocketSession(request, ws, sub, Principal(operator=True)).run(query.since, [])
    finally:
        request.app[SOCKETS].discard(ws)
    return ws


def add_routes(app: web.Application) -> None:
    app[SOCKETS] = set()
    app.on_shutdown.append(_close_all)
    ROUTES.add_to(app)
