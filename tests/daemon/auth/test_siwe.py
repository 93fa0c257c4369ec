"""EIP-4361 messages: the spec's example parses, ours round-trip, anything else is refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inftd.daemon.auth.siwe import MalformedMessage, SiweMessage, format_time, parse_message
from inftd.daemon.cli.devnet import BUYER

SPEC_EXAMPLE = """\
service.org wants you to sign in with your Ethereum account:
0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2

I accept the ServiceOrg Terms of Service: https://service.org/tos

URI: https://service.org/login
Version: 1
Chain ID: 1
Nonce: 32891756
Issued At: 2021-09-30T16:25:24Z
Resources:
- ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/
- https://example.com/my-web2-claim.json"""

BASE = SiweMessage(
    domain="127.0.0.1:8787",
    address=BUYER.address,
    uri="http://127.0.0.1:8787",
    chain_id=31337,
    nonce="0123456789abcdef",
    issued_at=datetime(2026, 1, 2, 3, 4, 5, 678000, UTC),
    statement="Sign in to inftd to control your INFT agents.",
    expiration_time=datetime(2026, 1, 2, 3, 9, 5, tzinfo=UTC),
)


def test_the_spec_example_parses() -> None:
    message = parse_message(SPEC_EXAMPLE)
    assert message.domain == "service.org"
    assert message.scheme is None
    assert message.address == "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
    assert message.statement is not None
    assert message.statement.startswith("I accept the ServiceOrg")
    assert (message.chain_id, message.nonce, message.version) == (1, "32891756", "1")
    assert message.issued_at == datetime(2021, 9, 30, 16, 25, 24, tzinfo=UTC)
    assert message.expiration_time is None
    assert len(message.resources) == 2


def test_our_message_round_trips() -> None:
    text = BASE.text()
    assert text.splitlines()[0] == "127.0.0.1:8787 wants you to sign in with your Ethereum account:"
    assert "Issued At: 2026-01-02T03:04:05.678Z" in text
    assert "Expiration Time: 2026-01-02T03:09:05.000Z" in text
    assert parse_message(text) == BASE


_text = st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=30)
_times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
).map(lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000))


@given(
    statement=st.none() | _text,
    scheme=st.none() | st.sampled_from(["https", "http"]),
    chain_id=st.integers(1, 2**63),
    nonce=_text.filter(lambda n: len(n) >= 8),
    issued=_times,
    expiry=st.none() | _times,
    not_before=st.none() | _times,
    request_id=st.none() | _text,
    resources=st.lists(_text.map(lambda p: f"https://example.com/{p}"), max_size=3),
)
def test_any_message_we_format_parses_back(
    statement: str | None,
    scheme: str | None,
    chain_id: int,
    nonce: str,
    issued: datetime,
    expiry: datetime | None,
    not_before: datetime | None,
    request_id: str | None,
    resources: list[str],
) -> None:
    message = SiweMessage(
        domain="app.example:443",
        address=BUYER.address,
        uri="https://app.example/login",
        chain_id=chain_id,
        nonce=nonce,
        issued_at=issued,
        statement=statement,
        scheme=scheme,
        expiration_time=expiry,
        not_before=not_before,
        request_id=request_id,
        resources=tuple(resources),
    )
    assert parse_message(message.text()) == message


def _replace(old: str, new: str) -> str:
    text = BASE.text()
    assert old in text
    return text.replace(old, new)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "line 1 must end with"),
        ("hello", "line 1 must end with"),
        (_replace(BUYER.address, BUYER.address.lower()), "checksummed"),
        (_replace(BUYER.address, "0x1234"), "checksummed"),
        (_replace("127.0.0.1:8787 wants", "a b wants"), "not a valid domain"),
        (_replace("Version: 1", "Version: 2"), "Version must be 1"),
        (_replace("Chain ID: 31337", "Chain ID: 0x7a69"), "Chain ID is not valid"),
        (_replace("Nonce: 0123456789abcdef", "Nonce: short"), "Nonce is not valid"),
        (_replace("Nonce: 0123456789abcdef", "Nonce: has-dash-123"), "Nonce is not valid"),
        (_replace("2026-01-02T03:04:05.678Z", "2026-01-02 03:04:05"), "RFC 3339"),
        (_replace("2026-01-02T03:04:05.678Z", "2026-02-30T03:04:05Z"), "not a valid date-time"),
        (_replace("2026-01-02T03:04:05.678Z", "2026-01-02T03:04:05"), "RFC 3339"),
        (_replace("URI: http://127.0.0.1:8787", "URI: not a uri"), "URI is not valid"),
        (_replace("\nVersion: 1", ""), "expected 'Version: ...'"),
        (_replace("URI: http", "Uri: http"), "expected 'URI: ...'"),
        (BASE.text() + "\n", "unexpected ''"),
        (BASE.text() + "\nSomething: else", "unexpected 'Something: else'"),
        (BASE.text().replace("\n", "\r\n"), "CR LF"),
        (_replace("agents.\n\nURI", "agents.\nURI"), "expected a blank line after the statement"),
        ("\n".join(BASE.text().split("\n")[:6]), "the message ends before 'Version:'"),
        (BASE.text() + "\nResources:\n- not a uri", "a resource is not valid"),
        ("x" * 9000, "longer than"),
    ],
)
def test_malformed_messages_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(MalformedMessage, match=problem):
        parse_message(text)


def test_times_are_written_in_utc_with_z() -> None:
    assert format_time(datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)) == "2026-05-06T07:08:09.000Z"
