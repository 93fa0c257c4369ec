"""Whose signature a sign-in carries: a plain key's (recovered from it, EIP-191), or a
smart wallet's, asked of the chain: a deployed contract account answers EIP-1271's
``isValidSignature``, and one not deployed yet signs with an EIP-6492 wrapper whose factory
call runs inside the check. Both go through one ``eth_call`` of ``SignatureCheck``'s
creation code (contracts/src/SignatureCheck.sol), which is never deployed and answers one
byte; nothing of the call persists. A key's signature needs no chain at all.
"""

from __future__ import annotations

import re

from eth_abi.abi import encode
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils.crypto import keccak

from inftd.daemon.errors import DaemonError
from inftd.indexer.abi import load_artifact
from inftd.indexer.rpc import ChainRpc, RpcError

KEY_SIGNATURE = re.compile(r"^0x[0-9a-fA-F]{130}$")  # r, s, v of personal_sign
# Any signature: a contract account's is its own format (a wrapped one carries a factory
# call); 8 KiB is more than the wallets in use make.
ANY_SIGNATURE = re.compile(r"^0x(?:[0-9a-fA-F]{2}){1,8192}$")
SIGNED = "0x01"  # SignatureCheck's answer for a valid signature


class SignatureUnverifiable(DaemonError):
    """A smart wallet's signature could not be asked of the chain (it does not answer)."""


def key_signer(text: str, signature: str) -> str | None:
    """The address whose key personal_sign-ed ``text``, or None for another signature."""
    if not KEY_SIGNATURE.match(signature):
        return None
    try:
        return str(Account.recover_message(encode_defunct(text=text), signature=signature))
    except Exception:  # eth-keys raises several kinds for an invalid (r, s, v)
        return None


def message_hash(text: str) -> bytes:
    """EIP-191's hash of a personal message: what a contract account is asked about."""
    data = text.encode()
    return keccak(b"\x19Ethereum Signed Message:\n" + str(len(data)).encode() + data)


async def signed_by(rpc: ChainRpc | None, text: str, signature: str, address: str) -> bool:
    """Whether ``signature`` over ``text`` is ``address``'s: a key's, else (with ``rpc``)
    a contract account's, deployed or not yet. ``SignatureUnverifiable`` if the chain
    cannot be asked."""
    if key_signer(text, signature) == address:
        return True
    if rpc is None or not ANY_SIGNATURE.match(signature):
        return False
    arguments = encode(
        ["address", "bytes32", "bytes"], [address, message_hash(text), bytes.fromhex(signature[2:])]
    )
    data = load_artifact("SignatureCheck").bytecode + arguments.hex()
    try:
        answer = await rpc.call("eth_call", [{"data": data}, "latest"])
    except RpcError as exc:
        raise SignatureUnverifiable(f"the chain does not answer: {exc}") from None
    return bool(answer == SIGNED)
