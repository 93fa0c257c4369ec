"""Authentication: Sign-In with Ethereum nonces and logins, bearer tokens, the operator key.

A client asks for a nonce for its address, signs the EIP-4361 message it gets back with
``personal_sign`` (EIP-191), and trades message and signature for a bearer token. The
address may be a smart wallet's: its signature is then asked of the chain (EIP-1271, and
EIP-6492 for an account not deployed yet). The
token is stateless: ``base64url(payload).base64url(HMAC-SHA256(secret, payload))``, the
payload holding the address, issue and expiry times (Unix seconds) and a random id. What
a token may do is decided per request from the agent's current owner, so a transfer of
the package token moves control at once, whatever tokens are out.

Every refusal is an ``AuthError`` with a stable ``code`` the API returns as is.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from eth_utils.address import is_checksum_address, to_checksum_address
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from inftd.daemon.auth.signatures import signed_by
from inftd.daemon.auth.siwe import MalformedMessage, SiweMessage, parse_message
from inftd.daemon.config import Settings
from inftd.daemon.errors import DaemonError
from inftd.indexer.rpc import ChainRpc
from inftd.store.models import AuthNonce

log = logging.getLogger(__name__)

STATEMENT = "Sign in to inftd to control your INFT agents."
NONCE_BYTES = 16  # random bytes of a sign-in nonce (32 hex characters)
NONCE_RETENTION = timedelta(hours=1)  # expired nonces are deleted this long after expiry
TOKEN_ID_BYTES = 12  # random bytes of a token's id
SECRET_BYTES = 32  # size of the per-process token key when INFTD_AUTH_SECRET is unset
MAX_TOKEN_CHARS = 512  # longer bearer values are refused before decoding

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


class AuthError(DaemonError):
    """A refused sign-in or credential; ``code`` is what the API answers."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


@dataclass(frozen=True)
class Principal:
    """Who makes a request: a signed-in address, the operator, or both unknown."""

    address: str | None = None
    operator: bool = False


@dataclass(frozen=True)
class IssuedToken:
    token: str
    address: str
    expires_at: datetime


@dataclass(frozen=True)
class IssuedNonce:
    nonce: str
    address: str
    message: SiweMessage

    @property
    def expires_at(self) -> datetime:
        assert self.message.expiration_time is not None
        return self.message.expiration_time


def checksum_address(raw: str) -> str:
    """The EIP-55 form of an address; raises ``ValueError`` if ``raw`` is not one."""
    if not _ADDRESS.match(raw):
        raise ValueError(f"not an Ethereum address: {raw!r:.60}")
    digits = raw[2:]
    if digits not in (digits.lower(), digits.upper()) and not is_checksum_address(raw):
        raise ValueError(f"mixed-case address with a wrong EIP-55 checksum: {raw}")
    return to_checksum_address(raw)


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise AuthError("invalid_token", "the bearer token is not well-formed") from None


def _timestamp(value: datetime) -> datetime:
    """Datetimes read back from SQLite are naive; they were written in UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class TokenSigner:
    """Issues and checks bearer tokens with one HMAC key."""

    def __init__(self, key: bytes, ttl: float) -> None:
        self._key = key
        self.ttl = ttl

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenSigner:
        secret = settings.auth_secret.get_secret_value() if settings.auth_secret else ""
        if secret:
            return cls(secret.encode(), settings.api.token_ttl)
        log.warning(
            "INFTD_AUTH_SECRET is not set: bearer tokens are signed with a random key of this "
            "process, so they end with it; set it when several API processes serve one database"
        )
        return cls(secrets.token_bytes(SECRET_BYTES), settings.api.token_ttl)

    def _mac(self, payload: str) -> str:
        return _b64encode(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def issue(self, address: str, now: datetime) -> IssuedToken:
        issued = int(now.timestamp())
        expires = issued + max(1, round(self.ttl))
        claims = {"sub": address, "iat": issued, "exp": expires, "jti": _token_id()}
        payload = _b64encode(orjson.dumps(claims))
        expires_at = datetime.fromtimestamp(expires, UTC)
        return IssuedToken(f"{payload}.{self._mac(payload)}", address, expires_at)

    def verify(self, token: str, now: datetime) -> str:
        """The address a token was issued to; raises ``AuthError`` (invalid or expired)."""
        payload, dot, mac = token.partition(".")
        if not dot or len(token) > MAX_TOKEN_CHARS:
            raise AuthError("invalid_token", "the bearer token is not well-formed")
        if not hmac.compare_digest(mac.encode(), self._mac(payload).encode()):
            raise AuthError("invalid_token", "the bearer token's signature does not match")
        claims = _claims(_b64decode(payload))
        if claims["exp"] <= now.timestamp():
            raise AuthError("token_expired", "the bearer token has expired; sign in again")
        return str(claims["sub"])


def _token_id() -> str:
    return secrets.token_hex(TOKEN_ID_BYTES)


def _claims(raw: bytes) -> dict[str, Any]:
    try:
        claims = orjson.loads(raw)
    except orjson.JSONDecodeError:
        claims = None
    valid = (
        isinstance(claims, dict)
        and isinstance(claims.get("sub"), str)
        and is_checksum_address(claims["sub"])
        and isinstance(claims.get("exp"), int)
    )
    if not valid:
        raise AuthError("invalid_token", "the bearer token's payload is not valid")
    assert isinstance(claims, dict)
    return claims


def is_operator_key(settings: Settings, presented: str) -> bool:
    """Constant-time check of the operator API key (never true when none is configured)."""
    key = settings.operator_api_key.get_secret_value() if settings.operator_api_key else ""
    return bool(key) and hmac.compare_digest(presented.encode(), key.encode())


async def issue_nonce(
    conn: AsyncConnection,
    address: str,
    *,
    domain: str,
    uri: str,
    chain_id: int,
    ttl: float,
    now: datetime,
) -> IssuedNonce:
    """Store a single-use nonce for ``address`` and build the message to sign with it."""
    await conn.execute(delete(AuthNonce).where(AuthNonce.expires_at < now - NONCE_RETENTION))
    nonce = secrets.token_hex(NONCE_BYTES)
    issued_at = now.astimezone(UTC).replace(microsecond=now.microsecond // 1000 * 1000)
    expires_at = issued_at + timedelta(seconds=ttl)
    await conn.execute(
        insert(AuthNonce).values(
            nonce=nonce, address=address, created_at=issued_at, expires_at=expires_at
        )
    )
    message = SiweMessage(
        domain=domain,
        address=address,
        uri=uri,
        chain_id=chain_id,
        nonce=nonce,
        issued_at=issued_at,
        statement=STATEMENT,
        expiration_time=expires_at,
    )
    return IssuedNonce(nonce, address, message)


def check_message(text: str, *, domain: str, chain_id: int, now: datetime) -> SiweMessage:
    """Everything about a login's message but its signature; raises ``AuthError``."""
    try:
        message = parse_message(text)
    except MalformedMessage as exc:
        raise AuthError("malformed_message", str(exc)) from None
    if message.domain != domain:
        raise AuthError("wrong_domain", f"the message is for {message.domain!r}, not {domain!r}")
    if message.chain_id != chain_id:
        raise AuthError(
            "wrong_chain", f"the message is for chain {message.chain_id}, not {chain_id}"
        )
    if message.expiration_time is not None and message.expiration_time <= now:
        raise AuthError("message_expired", "the message's Expiration Time has passed")
    if message.not_before is not None and message.not_before > now:
        raise AuthError("message_not_yet_valid", "the message's Not Before time is ahead")
    return message


async def check_signature(
    rpc: ChainRpc | None, text: str, signature: str, message: SiweMessage
) -> None:
    """``bad_signature`` unless the signature is the address's: its key's, or its smart
    wallet's asked of the chain (``inftd.daemon.auth.signatures``)."""
    if not await signed_by(rpc, text, signature, message.address):
        raise AuthError("bad_signature", f"the signature is not {message.address}'s")


async def consume_nonce(conn: AsyncConnection, message: SiweMessage, now: datetime) -> None:
    """Mark the message's nonce used, once: of two concurrent logins only one wins."""
    used = await conn.execute(
        update(AuthNonce)
        .where(
            AuthNonce.nonce == message.nonce,
            AuthNonce.address == message.address,
            AuthNonce.used_at.is_(None),
            AuthNonce.expires_at > now,
        )
        .values(used_at=now)
    )
    if used.rowcount != 1:
        raise await _nonce_refusal(conn, message, now)


async def _nonce_refusal(conn: AsyncConnection, message: SiweMessage, now: datetime) -> AuthError:
    row = (await conn.execute(select(AuthNonce).where(AuthNonce.nonce == message.nonce))).first()
    if row is None or row.address != message.address:
        return AuthError("unknown_nonce", f"no nonce {message.nonce} was issued to this address")
    if row.used_at is not None:
        return AuthError("nonce_used", "this nonce was used already; ask for a new one")
    if _timestamp(row.expires_at) <= now:
        return AuthError("nonce_expired", "this nonce has expired; ask for a new one")
    return AuthError("nonce_used", "this nonce was used by a concurrent sign-in")
