"""Chain logs pushed by a notifier: authenticated by HMAC, then verified against the chain.

A request is ``{"logs": [<eth_getLogs-shaped log>, ...]}``, signed as
``X-Inftd-Signature: sha256=HEX(HMAC_SHA256(secret, "<timestamp>." + body))`` with the
timestamp in ``X-Inftd-Timestamp`` (Unix seconds); the API route checks the signature with
``ReplayGuard``, then the body's shape (``inftd.daemon.server.api.webhooks``). A log only
enters the pipeline once the chain's own receipt shows it, byte for byte, in the canonical
block; then it is stored like a polled one (a duplicate is a no-op) and applied in chain
order by the follower.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.indexer.decode import ChainLog, DecodeError, Decoder
from inftd.indexer.errors import IndexerError
from inftd.indexer.events import store_logs
from inftd.indexer.rpc import ChainRpc
from inftd.store.models import BlockWindow

SIGNATURE_HEADER = "X-Inftd-Signature"
TIMESTAMP_HEADER = "X-Inftd-Timestamp"
REPLAY_WINDOW = 300  # seconds a signed request stays valid
MAX_LOGS = 1000  # logs per request


class WebhookError(IndexerError):
    """A request refused as a whole; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        super().__init__(message)


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class ReplayGuard:
    """Remembers the signatures seen within the replay window (per API process)."""

    def __init__(self, window: int = REPLAY_WINDOW) -> None:
        self.window = window
        self._seen: OrderedDict[str, float] = OrderedDict()

    def check(self, secret: bytes, headers: dict[str, str], body: bytes, now: float) -> None:
        stamp = headers.get(TIMESTAMP_HEADER, "")
        given = headers.get(SIGNATURE_HEADER, "")
        if not stamp or not given:
            raise WebhookError(401, "unsigned", f"{SIGNATURE_HEADER} and {TIMESTAMP_HEADER} needed")
        if not (stamp.isascii() and stamp.isdigit()) or abs(now - int(stamp)) > self.window:
            raise WebhookError(401, "stale", f"timestamp outside the {self.window} s window")
        if not hmac.compare_digest(signature(secret, stamp, body), given):
            raise WebhookError(401, "bad_signature", "signature does not match the body")
        self._forget_before(now - self.window)
        if given in self._seen:
            raise WebhookError(409, "replayed", "this signed request was already received")
        self._seen[given] = now

    def _forget_before(self, cutoff: float) -> None:
        while self._seen and next(iter(self._seen.values())) < cutoff:
            self._seen.popitem(last=False)


@dataclass(frozen=True)
class Outcome:
    tx_hash: str
    log_index: str
    status: str  # accepted | duplicate | ignored | rejected | held
    reason: str | None = None


def _same_log(ours: dict[str, Any], theirs: dict[str, Any]) -> bool:
    return all(
        str(ours.get(k, "")).lower() == str(theirs.get(k, "")).lower()
        for k in ("address", "data", "blockHash", "blockNumber", "transactionHash")
    ) and [t.lower() for t in ours.get("topics", [])] == [t.lower() for t in theirs["topics"]]


class WebhookIngest:
    """Verifies pushed logs against the chain and stores the good ones."""

    def __init__(self, rpc: ChainRpc, engine: AsyncEngine, decoder: Decoder, chain_id: int) -> None:
        self.rpc = rpc
        self.engine = engine
        self.decoder = decoder
        self.chain_id = chain_id

    async def ingest(self, logs: list[dict[str, Any]]) -> list[Outcome]:
        """Store every verified log, or none if any is rejected."""
        checked = [await self._check(log) for log in logs]
        outcomes = [outcome for outcome, _ in checked]
        if any(o.status == "rejected" for o in outcomes):
            held = "not stored: another log in this request was rejected"
            return [
                Outcome(o.tx_hash, o.log_index, "held", held) if o.status == "verified" else o
                for o in outcomes
            ]
        async with self.engine.begin() as conn:
            for index, (outcome, event) in enumerate(checked):
                if event is not None:
                    new = await store_logs(conn, self.chain_id, [event], "webhook")
                    status = "accepted" if new else "duplicate"
                    outcomes[index] = Outcome(outcome.tx_hash, outcome.log_index, status)
        return outcomes

    async def _check(self, log: dict[str, Any]) -> tuple[Outcome, ChainLog | None]:
        tx, index = str(log["transactionHash"]), str(log["logIndex"])
        try:
            event = self.decoder.decode(log)
        except DecodeError as exc:
            return Outcome(tx, index, "rejected", str(exc)), None
        if event is None:
            return Outcome(tx, index, "ignored", "not an event this daemon indexes"), None
        problem = await self._verify(log, event)
        if problem:
            return Outcome(tx, index, "rejected", problem), None
        return Outcome(tx, index, "verified"), event

    async def _verify(self, log: dict[str, Any], event: ChainLog) -> str | None:
        receipt = await self.rpc.receipt(event.tx_hash)
        if receipt is None:
            return "no such transaction on the chain"
        if str(receipt.get("blockHash", "")).lower() != event.block_hash:
            return "the transaction is not in that block on the canonical chain"
        ours = next(
            (x for x in receipt.get("logs", []) if int(x["logIndex"], 16) == event.log_index), None
        )
        if ours is None or not _same_log(ours, log):
            return "the log does not match the chain's receipt"
        async with self.engine.connect() as conn:
            known = await conn.scalar(
                select(BlockWindow.hash).where(BlockWindow.number == event.block_number)
            )
        if known is not None and known != event.block_hash:
            return "the block is no longer canonical"
        return None
