"""State synchronization on chain: an agent's public state, hashed and published with
``INFTPackage.setAgentMetadata(tokenId, uri, stateHash)`` so anyone can check it.

The snapshot is the agent as ``GET /v1/agents/{tokenId}`` shows it, less what would make
it move without the agent changing or refer to itself: ``agentMetadata`` and
``agentStateHash`` (the last sync: hashing them would make every sync change the state),
``lastActivity`` (a timestamp), ``reservedCredits`` and ``availableCredits`` (credits held
by a generation under way; the balance follows from the rest). It names its chain and
contract. The bytes are canonical JSON (orjson, keys sorted at every level, no spaces),
``stateHash`` is their keccak256, and they are stored content-addressed and served at
``/v1/content/{sha256}``: the URI written on chain serves exactly the hashed bytes.

The key: ``setAgentMetadata`` needs OPERATOR_ROLE, which deployments grant to the operator
account, not the minter (``inftd dev`` and ``inftd deploy`` grant it to the deployer), so
transactions are signed with ``INFTD_OPERATOR_KEY``. That key must not be the minter's:
the mint relayer owns that key's nonces (``nonces.py``) and a nonce taken here would leave
it a gap. With the key to itself, the chain is the record of what was sent: a sync sends
only when the contract's stateHash differs from the snapshot's and no transaction of the
key is waiting in the pool (so one sync per block at most). A (token, hash) is thus written
once, across restarts too, and a dropped transaction is sent again on the next round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

import orjson
from eth_abi.abi import decode, encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.crypto import keccak
from sqlalchemy import select

from inftd.agents.views import agent_state
from inftd.daemon.errors import DaemonError
from inftd.daemon.generation.content import ContentStore, Stored, register
from inftd.daemon.relayer.chain import MintChain, Sent
from inftd.daemon.relayer.context import TX_TYPE_1559
from inftd.daemon.relayer.fees import FeePolicy
from inftd.daemon.relayer.relayer import TRANSIENT, minter_account
from inftd.daemon.runtime import Runtime
from inftd.indexer.rpc import RpcError
from inftd.store.models import Agent

log = logging.getLogger(__name__)

SCHEMA = "inftd.agent-state/1"  # names the snapshot's layout, inside the hashed bytes
SNAPSHOT_TYPE = "application/json"
LEFT_OUT = (
    "agentMetadata",
    "agentStateHash",
    "lastActivity",
    "reservedCredits",
    "availableCredits",
)
AGENT_METADATA = function_signature_to_4byte_selector("agentMetadata(uint256)")
SET_METADATA = function_signature_to_4byte_selector("setAgentMetadata(uint256,string,bytes32)")
ZERO_HASH = "0x" + "00" * 32
GAS_MARGIN_PERCENT = 25  # over eth_estimateGas, as the mint relayer's default
ACTIVITY_OVERLAP = timedelta(seconds=5)  # a round also looks at agents active just before


class StateSyncError(DaemonError):
    """A state sync could not be sent (the contract refused it, or the node did)."""


class Outcome(Enum):
    SENT = "sent"  # a setAgentMetadata transaction went to the node
    UNCHANGED = "unchanged"  # the chain holds this state's hash already
    IN_FLIGHT = "in_flight"  # a transaction of the key waits in the pool: next round


@dataclass(frozen=True)
class Snapshot:
    data: bytes  # canonical JSON
    state_hash: str  # 0x + keccak256(data)
    uri: str  # where ``data`` is served


@dataclass(frozen=True)
class Synced:
    token_id: int
    state_hash: str
    uri: str
    outcome: Outcome
    tx_hash: str | None = None


def canonical(state: dict[str, Any], chain_id: int, package: str) -> bytes:
    """The snapshot's bytes: the public state less LEFT_OUT, keys sorted at every level."""
    kept = {k: v for k, v in state.items() if k not in LEFT_OUT}
    document = {"schema": SCHEMA, "chainId": chain_id, "contract": package.lower(), **kept}
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def state_hash_of(data: bytes) -> str:
    return "0x" + keccak(data).hex()


async def take_snapshot(runtime: Runtime, token_id: int) -> Snapshot:
    """The agent's snapshot, stored and registered so ``/v1/content`` serves it."""
    async with runtime.engine.connect() as conn:
        state = await agent_state(conn, token_id)  # UnknownAgent if there is none
    deployment = runtime.deployment
    data = canonical(state, deployment.chain_id, deployment.package_address)
    stored: Stored = await ContentStore(runtime.settings.content_dir).put(data, SNAPSHOT_TYPE)
    async with runtime.engine.begin() as conn:
        await register(conn, stored)
    return Snapshot(data, state_hash_of(data), stored.uri(runtime.settings.generation.public_url))


def operator_account(runtime: Runtime) -> LocalAccount | None:
    """The OPERATOR_ROLE key, or None when unset; refused when it is the minter's."""
    key = runtime.settings.operator_key
    if key is None or not key.get_secret_value():
        return None
    try:
        account: LocalAccount = Account.from_key(key.get_secret_value())
    except Exception:
        raise DaemonError("INFTD_OPERATOR_KEY is not a valid private key") from None
    minter = minter_account(runtime)
    if minter is not None and minter.address == account.address:
        raise DaemonError("INFTD_OPERATOR_KEY must differ from INFTD_MINTER_KEY")
    return account


class StateSync:
    """Sends state syncs with one key, one at a time (the nonce is the chain's pending one)."""

    def __init__(self, runtime: Runtime, account: LocalAccount) -> None:
        self.runtime = runtime
        self.account = account
        settings = runtime.settings.relayer
        self.chain = MintChain(runtime.rpc, runtime.deployment, settings.rpc_concurrency)
        self.fees = FeePolicy(settings)
        self.lock = asyncio.Lock()  # one send at a time: each takes the pending nonce

    @property
    def package(self) -> str:
        return self.runtime.deployment.package_address

    async def on_chain(self, token_id: int) -> tuple[str, str]:
        """The contract's (uri, stateHash) of the token; ("", ZERO_HASH) until set."""
        data = AGENT_METADATA + encode(["uint256"], [token_id])
        tx = {"to": self.package, "data": "0x" + data.hex()}
        raw = await self.chain.call("eth_call", [tx, "latest"])
        uri, state_hash = decode(["string", "bytes32"], bytes.fromhex(str(raw)[2:]))
        return str(uri), "0x" + bytes(state_hash).hex()

    async def sync(self, token_id: int) -> Synced:
        """Publish the agent's current state unless the chain has it or a send is pending."""
        snap = await take_snapshot(self.runtime, token_id)
        async with self.lock:
            _, held = await self.on_chain(token_id)
            if held == snap.state_hash:
                return Synced(token_id, snap.state_hash, snap.uri, Outcome.UNCHANGED)
            if await self._waiting():
                return Synced(token_id, snap.state_hash, snap.uri, Outcome.IN_FLIGHT)
            tx_hash = await self._send(token_id, snap)
        log.info("state of agent %d sent: %s in %s", token_id, snap.state_hash, tx_hash)
        return Synced(token_id, snap.state_hash, snap.uri, Outcome.SENT, tx_hash)

    async def _waiting(self) -> bool:
        """Whether a transaction of the key waits in the pool. Which token it is for is not
        known (after a restart nothing says), so any waits: the next round sends, once the
        chain shows whether it made the change already."""
        signer = self.account.address
        latest, pending = await asyncio.gather(
            self.chain.nonce(signer, "latest"), self.chain.nonce(signer, "pending")
        )
        return pending > latest

    async def _send(self, token_id: int, snap: Snapshot) -> str:
        data = SET_METADATA + encode(
            ["uint256", "string", "bytes32"],
            [token_id, snap.uri, bytes.fromhex(snap.state_hash[2:])],
        )
        signer = self.account.address
        call = {"from": signer, "to": self.package, "data": "0x" + data.hex()}
        try:
            gas = int(str(await self.chain.call("eth_estimateGas", [call])), 16)
        except RpcError as exc:
            raise StateSyncError(f"setAgentMetadata({token_id}) would fail: {exc}") from None
        nonce = await self.chain.nonce(signer, "pending")
        fees = self.fees.from_history(await self.chain.fee_history(self.fees.history_params()))
        tx: dict[str, Any] = {
            "type": TX_TYPE_1559,
            "chainId": self.runtime.deployment.chain_id,
            "nonce": nonce,
            "to": self.package,
            "value": 0,
            "gas": gas * (100 + GAS_MARGIN_PERCENT) // 100,
            "maxFeePerGas": fees.max_fee,
            "maxPriorityFeePerGas": fees.priority,
            "data": data,
        }
        signed = self.account.sign_transaction(tx)
        sent, words = await self.chain.broadcast(bytes(signed.raw_transaction))
        if sent is not Sent.ACCEPTED:
            raise StateSyncError(f"the node refused the state sync of {token_id}: {words}")
        tx_hash: str = signed.hash.to_0x_hex()
        return tx_hash

    async def changed_since(self, since: datetime | None) -> list[int]:
        """Agents active since ``since`` (all of them when None), in token id order."""
        query = select(Agent.token_id).order_by(Agent.token_id)
        if since is not None:
            query = query.where(Agent.last_activity >= since - ACTIVITY_OVERLAP)
        async with self.runtime.engine.connect() as conn:
            return [int(t) for t in (await conn.scalars(query))]

    async def round(self, since: datetime | None) -> list[Synced]:
        """Sync every agent active since ``since``; a failed one is logged and left."""
        done = []
        for token_id in await self.changed_since(since):
            try:
                done.append(await self.sync(token_id))
            except StateSyncError as exc:
                log.warning("state sync of agent %d: %s", token_id, exc)
        return done

    async def run(self, stop: asyncio.Event) -> None:
        """Rounds every ``state_sync_interval`` seconds until ``stop``."""
        since: datetime | None = None  # the first round looks at every agent
        interval = self.runtime.settings.relayer.state_sync_interval
        while not stop.is_set():
            began, started = datetime.now(UTC), time.monotonic()
            try:
                synced = await self.round(since)
                if all(s.outcome is not Outcome.IN_FLIGHT for s in synced):
                    since = began
                log.debug("state sync round in %.3fs", time.monotonic() - started)
            except TRANSIENT as exc:
                log.warning("state sync round failed, trying again: %s", exc)
            except Exception:
                log.exception("state sync round failed")  # the next round tries again
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    async def close(self) -> None:
        await self.chain.close()


async def sync_agent_state(runtime: Runtime, token_id: int) -> Synced:
    """One sync of one agent with the configured operator key (see ``StateSync.sync``)."""
    account = operator_account(runtime)
    if account is None:
        raise StateSyncError("state sync needs INFTD_OPERATOR_KEY")
    syncer = StateSync(runtime, account)
    try:
        return await syncer.sync(token_id)
    finally:
        await syncer.close()


@contextlib.asynccontextmanager
async def state_sync_loop(syncer: StateSync | None) -> AsyncIterator[None]:
    """The periodic loop for the app's lifetime (``relayer.state_sync`` on and a key set)."""
    if syncer is None or not syncer.runtime.settings.relayer.state_sync:
        yield
        return
    stop = asyncio.Event()
    task = asyncio.create_task(syncer.run(stop), name="statesync")
    log.info("state sync on for %s", syncer.account.address)
    try:
        yield
    finally:
        stop.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await syncer.close()
