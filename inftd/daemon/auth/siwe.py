"""Sign-In with Ethereum (EIP-4361) messages: a strict, line-based parser and the formatter.

The message, as the spec's ABNF has it (``[...]`` optional, lines joined by ``\\n``, no
trailing newline)::

    [scheme://]domain wants you to sign in with your Ethereum account:
    0xChecksummedAddress

    [statement
    ]
    URI: uri
    Version: 1
    Chain ID: 1
    Nonce: alphanumeric, 8 or more
    Issued At: RFC 3339 date-time
    [Expiration Time: ...]
    [Not Before: ...]
    [Request ID: ...]
    [Resources:
    - uri
    - ...]

Anything else (a missing or extra line, a field out of order, a bad value) is a
``MalformedMessage`` naming what is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from eth_utils.address import is_checksum_address

HEADER_SUFFIX = " wants you to sign in with your Ethereum account:"
VERSION = "1"
MAX_MESSAGE_CHARS = 8192  # longer messages are refused before parsing

_DOMAIN = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*://)?[^\s/?#@]+(?::\d+)?$")
_NONCE = re.compile(r"^[a-zA-Z0-9]{8,}$")
_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:\S+$")
_CHAIN_ID = re.compile(r"^[1-9][0-9]{0,19}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})$")


class MalformedMessage(ValueError):
    """The text is not an EIP-4361 message; the message says which line is wrong."""


@dataclass(frozen=True)
class SiweMessage:
    domain: str  # the authority (host[:port]) that asks for the signature
    address: str  # EIP-55 checksummed
    uri: str
    chain_id: int
    nonce: str
    issued_at: datetime
    statement: str | None = None
    scheme: str | None = None
    version: str = VERSION
    expiration_time: datetime | None = None
    not_before: datetime | None = None
    request_id: str | None = None
    resources: tuple[str, ...] = ()

    def text(self) -> str:
        """The message as the wallet shows and signs it."""
        origin = f"{self.scheme}://{self.domain}" if self.scheme else self.domain
        lines = [origin + HEADER_SUFFIX, self.address, ""]
        if self.statement is not None:
            lines.append(self.statement)
        lines += ["", f"URI: {self.uri}", f"Version: {self.version}"]
        lines += [f"Chain ID: {self.chain_id}", f"Nonce: {self.nonce}"]
        lines.append(f"Issued At: {format_time(self.issued_at)}")
        if self.expiration_time is not None:
            lines.append(f"Expiration Time: {format_time(self.expiration_time)}")
        if self.not_before is not None:
            lines.append(f"Not Before: {format_time(self.not_before)}")
        if self.request_id is not None:
            lines.append(f"Request ID: {self.request_id}")
        if self.resources:
            lines += ["Resources:", *(f"- {r}" for r in self.resources)]
        return "\n".join(lines)


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with milliseconds, as wallets and the spec's examples write it."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str, label: str) -> datetime:
    if not _DATETIME.match(value):
        raise MalformedMessage(f"{label} is not an RFC 3339 date-time: {value!r}")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise MalformedMessage(f"{label} is not a valid date-time: {value!r}") from None


class _Lines:
    """A cursor over the message's lines."""

    def __init__(self, text: str) -> None:
        self.lines = text.split("\n")
        self.at = 0

    def next(self, what: str) -> str:
        if self.at >= len(self.lines):
            raise MalformedMessage(f"the message ends before {what}")
        line = self.lines[self.at]
        self.at += 1
        return line

    def peek(self) -> str | None:
        return self.lines[self.at] if self.at < len(self.lines) else None

    def blank(self, where: str) -> None:
        if self.next(f"the blank line {where}") != "":
            raise MalformedMessage(f"line {self.at}: expected a blank line {where}")

    def field(self, label: str) -> str:
        line = self.next(f"'{label}:'")
        prefix = f"{label}: "
        if not line.startswith(prefix):
            raise MalformedMessage(f"line {self.at}: expected '{label}: ...', got {line!r}")
        return line[len(prefix) :]

    def optional(self, label: str) -> str | None:
        line = self.peek()
        if line is None or not line.startswith(f"{label}: "):
            return None
        return self.field(label)


def _header(cursor: _Lines) -> tuple[str | None, str]:
    line = cursor.next("the header")
    if not line.endswith(HEADER_SUFFIX):
        raise MalformedMessage("line 1 must end with" + HEADER_SUFFIX)
    origin = line[: -len(HEADER_SUFFIX)]
    if not _DOMAIN.match(origin):
        raise MalformedMessage(f"line 1: not a valid domain: {origin!r}")
    scheme, found, domain = origin.partition("://")
    return (scheme, domain) if found else (None, origin)


def _address(cursor: _Lines) -> str:
    address = cursor.next("the address")
    if not is_checksum_address(address):
        raise MalformedMessage(f"line 2: not an EIP-55 checksummed address: {address!r}")
    return address


def _statement(cursor: _Lines) -> str | None:
    cursor.blank("after the address")
    if cursor.peek() == "":
        cursor.next("the blank line")
        return None
    statement = cursor.next("the statement")
    cursor.blank("after the statement")
    return statement


def _checked(value: str, pattern: re.Pattern[str], label: str) -> str:
    if not pattern.match(value):
        raise MalformedMessage(f"{label} is not valid: {value!r}")
    return value


def _resources(cursor: _Lines) -> tuple[str, ...]:
    if cursor.peek() != "Resources:":
        return ()
    cursor.next("Resources:")
    resources = []
    while (line := cursor.peek()) is not None and line.startswith("- "):
        resources.append(_checked(cursor.next("a resource")[2:], _URI, "a resource"))
    return tuple(resources)


def _optional_time(cursor: _Lines, label: str) -> datetime | None:
    value = cursor.optional(label)
    return None if value is None else parse_time(value, label)


def parse_message(text: str) -> SiweMessage:
    """Parse an EIP-4361 message strictly; raises ``MalformedMessage``."""
    if len(text) > MAX_MESSAGE_CHARS:
        raise MalformedMessage(f"the message is longer than {MAX_MESSAGE_CHARS} characters")
    if "\r" in text:
        raise MalformedMessage("lines must end with LF, not CR LF")
    cursor = _Lines(text)
    scheme, domain = _header(cursor)
    address = _address(cursor)
    statement = _statement(cursor)
    uri = _checked(cursor.field("URI"), _URI, "URI")
    version = cursor.field("Version")
    if version != VERSION:
        raise MalformedMessage(f"Version must be {VERSION}, got {version!r}")
    chain_id = int(_checked(cursor.field("Chain ID"), _CHAIN_ID, "Chain ID"))
    nonce = _checked(cursor.field("Nonce"), _NONCE, "Nonce")
    message = SiweMessage(
        domain=domain,
        address=address,
        uri=uri,
        chain_id=chain_id,
        nonce=nonce,
        issued_at=parse_time(cursor.field("Issued At"), "Issued At"),
        statement=statement,
        scheme=scheme,
        expiration_time=_optional_time(cursor, "Expiration Time"),
        not_before=_optional_time(cursor, "Not Before"),
        request_id=cursor.optional("Request ID"),
        resources=_resources(cursor),
    )
    if cursor.peek() is not None:
        raise MalformedMessage(f"line {cursor.at + 1}: unexpected {cursor.peek()!r}")
    return message
