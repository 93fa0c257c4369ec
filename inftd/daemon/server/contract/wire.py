"""The base models and field types of the wire: answers, bodies, queries and path values.

Names on the wire are camelCase (``packageTokenId``); Python code uses the snake_case field
names. Request models are strict (a JSON string is not a number, ``true`` is not 1) so the
document's types are the ones the server takes; each field may name the error code a bad
value of it gets (``Code``), else the model's ``error_code`` applies.
"""

from __future__ import annotations

import re
import types
import typing
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from pydantic.alias_generators import to_camel

from inftd.agents.learning import MAX_ID_CHARS

MAX_UINT256 = 2**256 - 1
MAX_BIGINT = 2**63 - 1
ADDRESS = "^0x[0-9a-fA-F]{40}$"
HEX = "^0x[0-9a-fA-F]*$"


@dataclass(frozen=True)
class Code:
    """Field metadata: the error code of a request whose value for this field is bad."""

    code: str


@dataclass(frozen=True)
class PathValue:
    """Metadata of a path parameter's type: its error code, description, and the status of
    a value that is not one (404 where such a value cannot name anything that exists)."""

    code: str
    description: str
    status: int = 400


class Wire(BaseModel):
    """An answer's shape: closed, every field present (``None`` written as ``null``)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        extra="forbid",
        json_schema_serialization_defaults_required=True,
    )

    def to_json(self) -> bytes:
        return self.__pydantic_serializer__.to_json(self, by_alias=True)


class Body(BaseModel):
    """A JSON request body: strict, closed, wire names only."""

    model_config = ConfigDict(alias_generator=to_camel, strict=True, extra="forbid")
    error_code: ClassVar[str] = "bad_request"


class Query(BaseModel):
    """Query parameters: decimal digits become integers; unknown parameters are ignored."""

    model_config = ConfigDict(alias_generator=to_camel, extra="ignore")
    error_code: ClassVar[str] = "bad_query"

    @field_validator("*", mode="before")
    @classmethod
    def _integers_in_digits(cls, value: Any, info: ValidationInfo) -> Any:
        kind = cls.model_fields[str(info.field_name)].annotation
        return _decimal(value) if _is_int(kind) else value


def _is_int(kind: Any) -> bool:
    """Whether ``kind`` is ``int``, maybe annotated, maybe optional."""
    if typing.get_origin(kind) is Annotated:
        return _is_int(typing.get_args(kind)[0])
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        others = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        return len(others) == 1 and _is_int(others[0])
    return kind is int


def _decimal(value: Any) -> Any:
    """Only ASCII digits: ``int()`` also takes ``"²"``, ``" 1"``, ``"1_0"`` and ``"+1"``."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("must be an integer in decimal digits")
    if isinstance(value, str) and len(value) > len(str(MAX_UINT256)):
        raise ValueError("has too many digits")
    return value


def _no_nul(value: str) -> str:
    if "\x00" in value:  # PostgreSQL cannot store it: refused on every database alike
        raise ValueError("may not contain NUL (\\u0000)")
    return value


DECIMAL = BeforeValidator(_decimal)  # an integer path value: ASCII digits, nothing else
NO_NUL = "^[^\\u0000]*$"
# The pattern first: after a validator pydantic checks it but leaves it out of the schema.
NoNul = Annotated[str, Field(pattern=NO_NUL), AfterValidator(_no_nul)]
# A uint256 is text on the wire (JSON readers in JavaScript cannot hold it as a number).
UINT256_TEXT = {"type": "string", "pattern": f"^[0-9]{{1,{len(str(MAX_UINT256))}}}$"}
TokenId = Annotated[
    int,
    DECIMAL,
    WithJsonSchema({**UINT256_TEXT, "examples": ["1", "2", "0"]}),
    PathValue("bad_token_id", "The package token id, a uint256 in decimal"),
]
Address = Annotated[str, Field(pattern=ADDRESS)]
# What inftd.agents.learning.generation_id_ok takes; anything else names no generation (a
# 404, as an id that could be one and is not).
GenerationId = Annotated[
    str,
    Field(
        pattern=f"^[A-Za-z0-9_-]{{1,{MAX_ID_CHARS}}}$",
        examples=["0b6f3c9e-8d2a-4f4e-9a51-3c2d1e0f9a77"],
    ),
    PathValue("unknown_generation", "The generation's id", status=404),
]
UUID = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


def _hyphenated(value: Any) -> Any:
    """Only the hyphenated form: pydantic's UUID also takes ``{...}``, ``urn:uuid:``, 32 hex."""
    if isinstance(value, str) and not re.fullmatch(UUID, value):
        raise ValueError("must be a UUID, 8-4-4-4-12 hexadecimal digits")
    return value


WebhookId = Annotated[
    uuid.UUID,
    BeforeValidator(_hyphenated),
    WithJsonSchema({"type": "string", "format": "uuid", "pattern": UUID}),
    PathValue("bad_webhook_id", "The webhook's id (a UUID), as created"),
]

# Python's str.strip() whitespace, spelled out: JSON Schema, Python and Rust regexes each
# mean something else by \s, and a text that strips to nothing is refused by the domain.
_ASCII_SPACE = "\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0"
_SPACE = _ASCII_SPACE + "\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
VISIBLE = f"^[^\\x00]*[^\\x00{_SPACE}][^\\x00]*$"  # a character that is not space; no NUL
Visible = Annotated[str, Field(pattern=VISIBLE)]


def _iso(value: datetime) -> str:
    """ISO 8601 in UTC, as ``datetime.isoformat``; SQLite hands back naive UTC datetimes."""
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


Time = Annotated[
    datetime,
    PlainSerializer(_iso, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization"),
]
Count = Annotated[int, Field(ge=0)]
Unit = Annotated[float, Field(ge=0, le=1)]
