"""Sign-in logic: bearer tokens, message checks, and single-use nonces on both databases."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.daemon.auth.siwe import SiweMessage
from inftd.daemon.auth.tokens import (
    AuthError,
    IssuedNonce,
    TokenSigner,
    check_message,
    check_signature,
    consume_nonce,
    is_operator_key,
    issue_nonce,
)
from inftd.daemon.cli.devnet import BUYER, FRIEND
from inftd.daemon.config import Settings
from inftd.store.db import create_async
from inftd.store.models import AuthNonce
from tests.support.api import sign
from tests.support.schema import at_head

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DOMAIN = "inftd.example"
CHAIN = 31337


def _message(**changes: object) -> SiweMessage:
    base = SiweMessage(
        domain=DOMAIN,
        address=BUYER.address,
        uri="https://inftd.example",
        chain_id=CHAIN,
        nonce="abcdef0123456789",
        issued_at=NOW,
        statement="Sign in.",
        expiration_time=NOW + timedelta(minutes=5),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


async def _check(message: SiweMessage, key: str = BUYER.key, now: datetime = NOW) -> SiweMessage:
    """The message and a key's signature checked, with no chain (as a key's needs none)."""
    return await _check_signed(message.text(), sign(message.text(), key), now)


async def _check_signed(text: str, signature: str, now: datetime = NOW) -> SiweMessage:
    checked = check_message(text, domain=DOMAIN, chain_id=CHAIN, now=now)
    await check_signature(None, text, signature, checked)
    return checked


# --- bearer tokens ----------------------------------------------------------------------


def test_a_token_names_its_address_until_it_expires() -> None:
    signer = TokenSigner(b"k" * 32, ttl=60)
    issued = signer.issue(BUYER.address, NOW)
    assert issued.expires_at == NOW + timedelta(seconds=60)
    assert signer.verify(issued.token, NOW + timedelta(seconds=59)) == BUYER.address
    with pytest.raises(AuthError) as expired:
        signer.verify(issued.token, NOW + timedelta(seconds=60))
    assert expired.value.code == "token_expired"


def test_every_token_is_different() -> None:
    signer = TokenSigner(b"k" * 32, ttl=60)
    assert signer.issue(BUYER.address, NOW).token != signer.issue(BUYER.address, NOW).token


def _forge(token: str, **claims: object) -> str:
    payload = token.split(".")[0]
    data = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data.update(claims)
    forged = base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()
    return f"{forged}.{token.split('.')[1]}"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: "",
        lambda t: "garbage",
        lambda t: "a.b.c",
        lambda t: t + "x",
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),
        lambda t: _forge(t, sub=FRIEND.address),  # someone else's address, old MAC
        lambda t: _forge(t, exp=2**40),  # a longer life, old MAC
        lambda t: t.split(".")[0] + "." + "!" * 43,
        lambda t: "x" * 600 + "." + t,
    ],
)
def test_a_changed_or_foreign_token_is_invalid(mangle: Callable[[str], str]) -> None:
    signer = TokenSigner(b"k" * 32, ttl=60)
    token = signer.issue(BUYER.address, NOW).token
    with pytest.raises(AuthError) as refused:
        signer.verify(mangle(token), NOW)
    assert refused.value.code == "invalid_token"


def test_a_token_of_another_key_is_invalid() -> None:
    token = TokenSigner(b"a" * 32, ttl=60).issue(BUYER.address, NOW).token
    with pytest.raises(AuthError, match="signature does not match"):
        TokenSigner(b"b" * 32, ttl=60).verify(token, NOW)


def test_a_valid_mac_over_a_bad_payload_is_invalid() -> None:
    signer = TokenSigner(b"k" * 32, ttl=60)
    for payload in (b"[]", b"{}", b'{"sub": "0xabc", "exp": 1}', b"not json"):
        encoded = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
        token = f"{encoded}.{signer._mac(encoded)}"
        with pytest.raises(AuthError, match="payload is not valid"):
            signer.verify(token, NOW)


def test_without_a_secret_the_key_is_random_and_said_so(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INFTD_AUTH_SECRET", raising=False)
    with caplog.at_level(logging.WARNING, "inftd.daemon.auth.tokens"):
        one = TokenSigner.from_settings(Settings.load())
        two = TokenSigner.from_settings(Settings.load())
    assert "INFTD_AUTH_SECRET is not set" in caplog.text
    token = one.issue(BUYER.address, NOW).token
    with pytest.raises(AuthError):
        two.verify(token, NOW)


def test_with_a_secret_processes_share_tokens(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFTD_AUTH_SECRET", "s3cret-shared-by-all-api-processes")
    with caplog.at_level(logging.WARNING, "inftd.daemon.auth.tokens"):
        one = TokenSigner.from_settings(Settings.load())
        two = TokenSigner.from_settings(Settings.load())
    assert caplog.text == ""
    assert two.verify(one.issue(BUYER.address, NOW).token, NOW) == BUYER.address


def test_operator_key(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not is_operator_key(Settings.load(), "")
    monkeypatch.setenv("INFTD_OPERATOR_API_KEY", "op-key")
    settings = Settings.load()
    assert is_operator_key(settings, "op-key")
    assert not is_operator_key(settings, "op-key ")
    assert not is_operator_key(settings, "")


# --- message checks ---------------------------------------------------------------------


async def test_a_good_message_passes() -> None:
    assert await _check(_message()) == _message()


@pytest.mark.parametrize(
    ("message", "key", "code"),
    [
        (_message(domain="evil.example"), BUYER.key, "wrong_domain"),
        (_message(chain_id=1), BUYER.key, "wrong_chain"),
        (_message(expiration_time=NOW), BUYER.key, "message_expired"),
        (_message(not_before=NOW + timedelta(seconds=1)), BUYER.key, "message_not_yet_valid"),
        (_message(), FRIEND.key, "bad_signature"),  # signed by another account
        (_message(address=FRIEND.address), BUYER.key, "bad_signature"),
    ],
)
async def test_a_bad_message_is_refused(message: SiweMessage, key: str, code: str) -> None:
    with pytest.raises(AuthError) as refused:
        await _check(message, key)
    assert refused.value.code == code


@pytest.mark.parametrize("signature", ["", "0x", "0x" + "00" * 65, "zz", "0x" + "ab" * 64])
async def test_a_broken_signature_is_refused(signature: str) -> None:
    with pytest.raises(AuthError) as refused:
        await _check_signed(_message().text(), signature)
    assert refused.value.code == "bad_signature"


async def test_a_changed_message_no_longer_matches_its_signature() -> None:
    text = _message().text()
    signature = sign(text, BUYER.key)
    with pytest.raises(AuthError) as refused:
        await _check_signed(text.replace("Sign in.", "Sign in!"), signature)
    assert refused.value.code == "bad_signature"


def test_a_malformed_message_is_refused() -> None:
    with pytest.raises(AuthError) as refused:
        check_message("hello", domain=DOMAIN, chain_id=CHAIN, now=NOW)
    assert refused.value.code == "malformed_message"


# --- nonces, on both databases -----------------------------------------------------------


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    at_head(database_url)
    engine = create_async(database_url)
    yield engine
    await engine.dispose()


async def _issue(engine: AsyncEngine, address: str = BUYER.address) -> IssuedNonce:
    async with engine.begin() as conn:
        return await issue_nonce(
            conn, address, domain=DOMAIN, uri="https://x.example", chain_id=CHAIN, ttl=300, now=NOW
        )


async def _consume(engine: AsyncEngine, message: SiweMessage, now: datetime = NOW) -> str:
    try:
        async with engine.begin() as conn:
            await consume_nonce(conn, message, now)
    except AuthError as exc:
        return exc.code
    return "ok"


async def test_a_nonce_is_bound_to_its_address_and_used_once(engine: AsyncEngine) -> None:
    issued = await _issue(engine)
    assert issued.expires_at == NOW + timedelta(seconds=300)
    assert issued.message.statement == "Sign in to inftd to control your INFT agents."
    message = issued.message
    assert await _consume(engine, replace(message, address=FRIEND.address)) == "unknown_nonce"
    assert await _consume(engine, replace(message, nonce="f" * 32)) == "unknown_nonce"
    assert await _consume(engine, message) == "ok"
    assert await _consume(engine, message) == "nonce_used"


async def test_an_expired_nonce_is_refused(engine: AsyncEngine) -> None:
    issued = await _issue(engine)
    later = issued.expires_at + timedelta(seconds=1)
    assert await _consume(engine, issued.message, later) == "nonce_expired"
    assert await _consume(engine, issued.message) == "ok"  # a refusal changed nothing


async def test_of_concurrent_logins_with_one_nonce_one_wins(engine: AsyncEngine) -> None:
    issued = await _issue(engine)
    results = await asyncio.gather(*(_consume(engine, issued.message) for _ in range(4)))
    assert sorted(results) == ["nonce_used"] * 3 + ["ok"]


async def test_long_expired_nonces_are_cleaned_up(engine: AsyncEngine) -> None:
    old = await _issue(engine)
    async with engine.begin() as conn:
        await conn.execute(
            update(AuthNonce)
            .where(AuthNonce.nonce == old.nonce)
            .values(expires_at=NOW - timedelta(days=2))
        )
    fresh = await _issue(engine)
    async with engine.connect() as conn:
        nonces = set(await conn.scalars(select(AuthNonce.nonce)))
        count = await conn.scalar(select(func.count()).select_from(AuthNonce))
    assert nonces == {fresh.nonce}
    assert count == 1
