"""The AsyncAPI 3.0 document of the two WebSockets (``inftd.daemon.server.api.ws``), served at
``GET /asyncapi.json`` beside ``/openapi.json``.

OpenAPI can say that ``/v1/agents/{token_id}/ws`` and ``/v1/ws`` upgrade, not what flows
over them afterwards; this document does. Every frame either side sends is a pydantic model
here (closed, ``type`` its discriminator, camelCase on the wire), and the document's
``components.schemas`` are those models' JSON schemas. The agent of a snapshot and the
generation of ``generationQueued`` are free-form objects: their shapes are ``Agent`` and
``Generation`` of ``/openapi.json``, which this document does not copy.

The route is declared with ``contract.routes`` so that ``/openapi.json`` (built from the
declarations at start, refusing a route it cannot describe) lists it too.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

import orjson
from aiohttp import WSCloseCode, web
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import (
    GenerateJsonSchema,
    JsonSchemaMode,
    JsonSchemaValue,
    SkipJsonSchema,
)
from pydantic_core import CoreSchema, core_schema

import inftd
from inftd.agents import messages
from inftd.agents.learning import MAX_SIGNAL_CHARS, MAX_SIGNALS
from inftd.agents.owners import MAX_STORED_TOKEN_ID
from inftd.daemon.config import ApiSettings
from inftd.daemon.generation.requests import MAX_PROMPT_CHARS, PROVIDERS
from inftd.daemon.generation.types import Kind, Quality, Strategy
from inftd.daemon.server.api.generations import MAX_KEY_CHARS
from inftd.daemon.server.api.ws import (
    CLOSE_TOO_SLOW,
    HEARTBEAT_JITTER,
    MAX_CLIENT_MESSAGE,
)
from inftd.daemon.server.contract.routes import Answer, Routes

PATH = "/asyncapi.json"
ASYNCAPI = web.AppKey("asyncapi", bytes)  # the document, serialized once at start
REF_TEMPLATE = "#/components/schemas/{model}"
NO_NUL = "^[^\\u0000]*$"  # PostgreSQL text holds no NUL: the server refuses one

Count = Annotated[int, Field(ge=0)]
TokenId = Annotated[int, Field(ge=0, description="A package token id")]
Seq = Annotated[int, Field(ge=0, description="The seq of the last event dispatched")]
Absent = SkipJsonSchema[None]  # leave the field out; the document does not offer null


class Frame(BaseModel):
    """One JSON text frame: closed, camelCase names on the wire, strict types."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        extra="forbid",
        strict=True,
        json_schema_serialization_defaults_required=True,
    )


# -- what the server sends -----------------------------------------------------------------


class Snapshot(Frame):
    """An agent as it is now: one on connect, one per subscribe; its events follow."""

    type: Literal["snapshot"]
    token_id: TokenId
    seq: Seq
    agent: dict[str, Any] = Field(
        description="The agent as GET /v1/agents/{token_id} answers it (Agent in /openapi.json)"
    )


class AgentEvent(Frame):
    """An event, replayed (after ?since=) or live, in seq order; private ones only to the
    agent's owner (at subscribe time) and the operator."""

    type: Literal["event"]
    seq: Annotated[int, Field(ge=1, description="The event's place in the log of all events")]
    event: str = Field(description="What happened, e.g. credits.changed, generation.progress")
    token_id: TokenId | None = Field(description="The agent it concerns; null for none")
    data: dict[str, Any] = Field(description="The event's payload; its shape depends on event")
    at: datetime = Field(description="When it was recorded")


class Error(Frame):
    """A refused frame or command; the socket stays open."""

    type: Literal["error"]
    code: str = Field(
        description="bad_message (not a JSON object with a type), unknown_command, "
        "bad_token_id, unknown_agent, or the code POST /v1/agents/{token_id}/messages or "
        "/generations would answer (unauthenticated, not_owner, bad_request, ...)"
    )
    message: str


class Pong(Frame):
    """The answer to ping."""

    type: Literal["pong"]
    seq: Seq


class Unsubscribed(Frame):
    """The answer to unsubscribe."""

    type: Literal["unsubscribed"]
    token_id: TokenId | None = Field(description="null if the command's tokenId was not one")


class SocialMessage(Frame):
    """A message between agents, as GET /v1/agents/{token_id}/messages lists it."""

    id: Count
    sender: TokenId = Field(alias="from")
    to: TokenId
    kind: str
    body: dict[str, Any] = Field(description='A text message is {"text": ...}')
    created_at: datetime | None
    read_at: datetime | None


class MessageSent(Frame):
    """The answer to message: the message as stored."""

    type: Literal["messageSent"]
    message: SocialMessage


class GenerationQueued(Frame):
    """The answer to generate: the generation queued (or, for a repeated idempotencyKey,
    the first one)."""

    type: Literal["generationQueued"]
    generation: dict[str, Any] = Field(
        description="As POST /v1/agents/{token_id}/generations answers it "
        "(Generation in /openapi.json)"
    )
    replayed: bool = Field(description="Whether the idempotencyKey named an earlier one")


# -- what a client sends -------------------------------------------------------------------


class Subscribe(Frame):
    """Add an agent's events; answered by its snapshot (or unknown_agent)."""

    type: Literal["subscribe"]
    token_id: TokenId


class Unsubscribe(Frame):
    """Stop an agent's events; answered unsubscribed."""

    type: Literal["unsubscribe"]
    token_id: TokenId


class Ping(Frame):
    """Answered pong, with the last seq dispatched."""

    type: Literal["ping"]


def _one_of(names: tuple[str, ...]) -> AfterValidator:
    def check(value: str) -> str:
        if value not in names:
            raise ValueError(f"must be one of {', '.join(names)}")
        return value

    return AfterValidator(check)


Provider = Annotated[str, _one_of(PROVIDERS), WithJsonSchema({"enum": list(PROVIDERS)})]
Signal = Annotated[str, Field(min_length=1, max_length=MAX_SIGNAL_CHARS, pattern=NO_NUL)]
Signals = Signal | Annotated[list[Signal], Field(min_length=1, max_length=MAX_SIGNALS)]


class GenerationOptions(Frame):
    """How to generate; defaults: standard quality, the single strategy."""

    quality: Quality | Absent = None
    size: Annotated[str, Field(pattern="^[0-9]{2,4}x[0-9]{2,4}$")] | Absent = Field(
        None, description="Images only: WIDTHxHEIGHT, 64 to 4096 pixels a side"
    )
    strategy: Strategy | Absent = None
    provider: Provider | Absent = Field(None, description="Tried first, if it is up")
    style: Signals | Absent = None
    styles: Signals | Absent = None
    subject: Signals | Absent = None
    subjects: Signals | Absent = None
    modifier: Signals | Absent = None
    modifiers: Signals | Absent = None


class SendMessage(Frame):
    """Send a message as tokenId, whose owner the socket signed in as (or the operator):
    the fields of POST /v1/agents/{token_id}/messages; answered messageSent."""

    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": ["text"]}, {"required": ["body"]}]}
    )

    type: Literal["message"]
    token_id: TokenId = Field(description="The sender")
    to: TokenId = Field(description="The receiving agent")
    kind: Annotated[str, Field(pattern=f"^{messages.KIND.pattern}$")] | Absent = Field(
        None, description=f"Default {messages.DEFAULT_KIND!r}"
    )
    text: (
        Annotated[str, Field(min_length=1, max_length=messages.MAX_TEXT_CHARS, pattern=NO_NUL)]
        | Absent
    ) = None
    body: dict[str, Any] | Absent = Field(
        None,
        description=f"At most {messages.MAX_BODY_BYTES} bytes as compact JSON, with no NUL",
    )

    @model_validator(mode="after")
    def _text_or_body(self) -> SendMessage:
        if (self.text is None) == (self.body is None):
            raise ValueError('send exactly one of "text" and "body"')
        return self


class Generate(Frame):
    """Queue a generation for tokenId, whose owner the socket signed in as (or the
    operator): the fields of POST /v1/agents/{token_id}/generations; answered
    generationQueued, then its events follow on the agent's channel."""

    type: Literal["generate"]
    token_id: TokenId
    idempotency_key: (
        Annotated[str, Field(min_length=1, max_length=MAX_KEY_CHARS, pattern="^[ -~]+$")] | Absent
    ) = Field(None, description="The same key and request: the first generation")
    kind: Kind
    prompt: Annotated[str, Field(min_length=1, max_length=MAX_PROMPT_CHARS, pattern=NO_NUL)] = (
        Field(description="Not blank; the package's max_prompt_chars applies")
    )
    options: GenerationOptions | Absent = None
    collaborator_token_id: Annotated[int, Field(ge=0, le=MAX_STORED_TOKEN_ID)] | Absent = Field(
        None, description="An agent that granted this one its collaboration"
    )


SERVER_FRAMES: tuple[type[Frame], ...] = (
    Snapshot,
    AgentEvent,
    Error,
    Pong,
    Unsubscribed,
    MessageSent,
    GenerationQueued,
)
# Each command, and the frames that answer it.
COMMANDS: dict[type[Frame], tuple[type[Frame], ...]] = {
    Subscribe: (Snapshot, Error),
    Unsubscribe: (Unsubscribed,),
    Ping: (Pong,),
    SendMessage: (MessageSent, Error),
    Generate: (GenerationQueued, Error),
}
OWNERS_ONLY = (SendMessage, Generate)  # commands that act for an agent's owner


def summary(model: type[Frame]) -> str:
    """The first paragraph of the model's docstring, on one line."""
    return " ".join((inspect.getdoc(model) or "").split("\n\n")[0].split())


def wire_type(model: type[Frame]) -> str:
    """The ``type`` a frame of ``model`` carries."""
    return str(get_args(model.model_fields["type"].annotation)[0])


def _examples() -> dict[type[Frame], Frame]:
    """One frame of each kind, for readers (the tests check them against the schemas)."""
    at = datetime(2024, 3, 1, tzinfo=UTC)
    sent = SocialMessage(
        id=7, sender=1, to=2, kind="text", body={"text": "hi"}, created_at=at, read_at=None
    )
    return {
        Snapshot: Snapshot(type="snapshot", token_id=1, seq=41, agent={"packageTokenId": 1}),
        AgentEvent: AgentEvent(
            type="event", seq=42, event="credits.changed", token_id=1, data={"credits": 5}, at=at
        ),
        Error: Error(type="error", code="unknown_command", message="unknown command 'dance'"),
        Pong: Pong(type="pong", seq=42),
        Unsubscribed: Unsubscribed(type="unsubscribed", token_id=2),
        MessageSent: MessageSent(type="messageSent", message=sent),
        GenerationQueued: GenerationQueued(
            type="generationQueued", generation={"id": "3f1c…", "status": "queued"}, replayed=False
        ),
        Subscribe: Subscribe(type="subscribe", token_id=2),
        Unsubscribe: Unsubscribe(type="unsubscribe", token_id=2),
        Ping: Ping(type="ping"),
        SendMessage: SendMessage(type="message", token_id=1, to=2, text="hello"),
        Generate: Generate(
            type="generate", token_id=1, idempotency_key="k-1", kind="text", prompt="a haiku"
        ),
    }


# -- the document --------------------------------------------------------------------------


class JsonSchema(GenerateJsonSchema):
    """pydantic's JSON Schema less what would mislead: a field left out has no default
    null (the document does not offer null), and fields get no title (their name is it)."""

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        if self.get_default_value(schema) is None:
            return self.generate_inner(schema["schema"])
        return super().default_schema(schema)

    def field_title_should_be_set(self, schema: CoreSchema | Any) -> bool:
        return False


def model_schemas() -> tuple[dict[type[Frame], dict[str, Any]], dict[str, Any]]:
    """Each frame model's schema (a $ref) and every schema they name, by model name."""
    modes: list[tuple[type[Frame], JsonSchemaMode]] = [
        *((model, "serialization") for model in SERVER_FRAMES),  # what the server writes
        *((model, "validation") for model in COMMANDS),  # what it takes
    ]
    inputs = [(model, mode, TypeAdapter(model)) for model, mode in modes]
    described, defs = TypeAdapter.json_schemas(
        inputs, by_alias=True, ref_template=REF_TEMPLATE, schema_generator=JsonSchema
    )
    return {model: schema for (model, _), schema in described.items()}, defs.get("$defs", {})


def _message(model: type[Frame], payload: dict[str, Any], example: Frame) -> dict[str, Any]:
    # A command's None is a field left out; a server frame writes every field.
    written = example.model_dump(mode="json", by_alias=True, exclude_none=model in COMMANDS)
    return {
        "name": wire_type(model),
        "title": model.__name__,
        "summary": summary(model),
        "contentType": "application/json",
        "payload": payload,
        "examples": [{"name": wire_type(model), "payload": written}],
    }


def _close_codes() -> dict[str, str]:
    return {
        str(int(WSCloseCode.OK)): "The client closed the socket",
        str(int(WSCloseCode.GOING_AWAY)): "The server is shutting down",
        str(int(WSCloseCode.ABNORMAL_CLOSURE)): "No close frame: the connection was dropped, "
        "e.g. a client that stopped answering the heartbeat's pings, or one too slow that "
        "would not even take its close frame",
        str(int(WSCloseCode.INVALID_TEXT)): "A text frame that is not UTF-8",
        str(int(WSCloseCode.MESSAGE_TOO_BIG)): f"A client frame over {MAX_CLIENT_MESSAGE} bytes",
        str(CLOSE_TOO_SLOW): "Too slow: the client fell more than api.ws_queue events "
        f"(default {ApiSettings.model_fields['ws_queue'].default}) behind; reconnect with "
        "?since=<the last seq seen> to get what it missed",
    }


def _query(since: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "since": {
                "type": "string",
                "pattern": "^[0-9]+$",
                "description": since,
            },
            "access_token": {
                "type": "string",
                "description": "A sign-in token or the operator key, for clients that cannot "
                "set the Authorization header (browsers)",
            },
        },
    }


def _channel(address: str, title: str, description: str, since: str) -> dict[str, Any]:
    names = [wire_type(model) for model in (*SERVER_FRAMES, *COMMANDS)]
    codes = _close_codes()
    closes = "; ".join(f"{code}: {text}" for code, text in codes.items())
    channel: dict[str, Any] = {
        "address": address,
        "title": title,
        "description": f"{description}\n\nClose codes: {closes}.",
        "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in names},
        "bindings": {
            "ws": {
                "method": "GET",
                "query": _query(since),
                "headers": {
                    "type": "object",
                    "properties": {
                        "Authorization": {
                            "type": "string",
                            "pattern": "^Bearer .+$",
                            "description": "Bearer and a sign-in token or the operator key",
                        }
                    },
                },
                "bindingVersion": "0.1.0",
            }
        },
        "x-close-codes": codes,
    }
    if "{token_id}" in address:
        channel["parameters"] = {
            "token_id": {
                "description": "The package token id, a uint256 in decimal",
                "examples": ["1"],
            }
        }
    return channel


def _channels() -> dict[str, Any]:
    return {
        "agent": _channel(
            "/v1/agents/{token_id}/ws",
            "One agent's events",
            "On connect: the agent's snapshot, then (with ?since=) every event of it after "
            "that seq, then live events. subscribe adds more agents. Public events need no "
            "credential; the owner's sign-in token also brings the private events of the "
            "agents it owns when it subscribes, until one is sold; the operator sees all. "
            "Refused before the upgrade with a JSON error: 400 bad_token_id or bad_since, "
            "401 invalid_token or token_expired, 404 unknown_agent, 429.",
            "Replay every event of the agent after this seq before the live ones",
        ),
        "firehose": _channel(
            "/v1/ws",
            "Every event (operator)",
            "Every event of every agent, private ones too, from the moment of connecting "
            "(with ?since=, every event after that seq first). No snapshot on connect; "
            "subscribe still answers one. Needs the operator key; refused before the "
            "upgrade with a JSON error: 400 bad_since, 401 unauthenticated, invalid_token "
            "or token_expired, 429.",
            "Replay every event after this seq before the live ones",
        ),
    }


def _refs(channel: str, models: Iterable[type[Frame]]) -> list[dict[str, str]]:
    return [{"$ref": f"#/channels/{channel}/messages/{wire_type(m)}"} for m in models]


def _security(names: Iterable[str]) -> list[dict[str, str]]:
    return [{"$ref": f"#/components/securitySchemes/{name}"} for name in names]


def _operations(channel: str, security: Mapping[type[Frame], tuple[str, ...]]) -> dict[str, Any]:
    """What the server sends on ``channel``, and each command it takes with its answers;
    ``security``: the credentials a command needs (any one of them), none if absent."""
    target = {"$ref": f"#/channels/{channel}"}
    operations: dict[str, Any] = {
        f"{channel}Send": {
            "action": "send",
            "channel": target,
            "summary": "Snapshots, events, and the answers to commands",
            "messages": _refs(channel, SERVER_FRAMES),
        }
    }
    for command, answers in COMMANDS.items():
        name = wire_type(command)
        operation: dict[str, Any] = {
            "action": "receive",
            "channel": target,
            "summary": summary(command),
            "messages": _refs(channel, [command]),
            "reply": {"channel": target, "messages": _refs(channel, answers)},
        }
        if security.get(command):
            operation["security"] = _security(security[command])
        operations[channel + name[0].upper() + name[1:]] = operation
    return operations


def _security_schemes() -> dict[str, Any]:
    return {
        "signIn": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "inftd sign-in token",
            "description": "A token from POST /v1/auth/login, in the Authorization header",
        },
        "operatorKey": {
            "type": "http",
            "scheme": "bearer",
            "description": "INFTD_OPERATOR_API_KEY: acts for any owner, opens the firehose",
        },
        "accessToken": {
            "type": "httpApiKey",
            "in": "query",
            "name": "access_token",
            "description": "A sign-in token or the operator key in the query (browsers "
            "cannot set headers on a WebSocket)",
        },
    }


def _description() -> str:
    api = ApiSettings.model_fields
    heartbeat = api["ws_heartbeat"].default
    return (
        "The daemon's WebSockets; its HTTP API is described by /openapi.json.\n\n"
        "The server's host is a variable: AsyncAPI 3.0 requires one and the daemon's is "
        "only known where it runs (its default is api.host:api.port; behind a TLS proxy "
        "use wss).\n\n"
        "Every frame is a JSON text object with a `type`. The server sends snapshots, "
        "events (each with its `seq`, in order) and the answers to commands; a client "
        "sends commands (subscribe, unsubscribe, ping, message, generate). Binary frames "
        "are ignored; a frame that is not a JSON object with a type is answered "
        f"`error` bad_message. Client frames are at most {MAX_CLIENT_MESSAGE} bytes. The "
        f"server pings every api.ws_heartbeat seconds (default {heartbeat}, each socket "
        f"± {int(HEARTBEAT_JITTER * 100)}%); a client that does not answer is dropped.\n\n"
        "The payload schemas are pydantic's JSON Schema, using only keywords that draft-07 "
        "(the AsyncAPI Schema Object's base) reads alike. A snapshot's `agent` and "
        "generationQueued's `generation` are free-form objects here: their shapes are "
        "Agent and Generation in /openapi.json."
    )


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of ``/v1/agents/{token_id}/ws`` and ``/v1/ws``."""
    refs, defs = model_schemas()
    examples = _examples()
    api = ApiSettings.model_fields
    owner = ("signIn", "operatorKey", "accessToken")
    operator = ("operatorKey", "accessToken")
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "inftd WebSockets",
            "version": inftd.__version__,
            "description": _description(),
            "license": {"name": "MIT"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "daemon": {
                "host": "{host}",
                "protocol": "ws",
                "title": "The inftd daemon",
                "variables": {
                    "host": {
                        "default": f"{api['host'].default}:{api['port'].default}",
                        "description": "The daemon's host and port",
                    }
                },
            }
        },
        "channels": _channels(),
        "operations": {
            **_operations("agent", {command: owner for command in OWNERS_ONLY}),
            **_operations("firehose", {command: operator for command in COMMANDS}),
        },
        "components": {
            "schemas": defs,
            "messages": {
                wire_type(model): _message(model, schema, examples[model])
                for model, schema in refs.items()
            },
            "securitySchemes": _security_schemes(),
        },
    }


# -- the route -----------------------------------------------------------------------------

# The meta tag's description as the OpenAPI document has it: a declaration's replaces it.
ROUTES = Routes("meta", "Health, status, metrics and this document")


@ROUTES.get(
    PATH,
    "asyncapi",
    "The AsyncAPI 3.0 document of the WebSockets",
    ok=Answer("The AsyncAPI 3.0.0 document", dict[str, Any]),
)
async def asyncapi_endpoint(request: web.Request) -> web.Response:
    return web.Response(body=request.app[ASYNCAPI], content_type="application/json")


def add_routes(app: web.Application) -> None:
    """Serve the document, serialized once as the app starts."""

    async def build(app: web.Application) -> None:
        app[ASYNCAPI] = orjson.dumps(asyncapi_document())

    ROUTES.add_to(app)
    app.on_startup.append(build)
