"""The mint relayer's loop: every round tracks what is in flight, then sends what is due.

Exactly once (design.md, invariant 4) rests on three things: the contract mints a
requestKey once, so a second transaction for one generation can only revert; the signed
bytes and their nonce are stored before anything is broadcast, so whatever a crash
interrupts is found again (``sender``); and a nonce stays open until the chain's nonce
has passed it, so no mint is forgotten while a transaction for it may still be mined
(``tracker``). The indexer's ``GenerationMinted`` projection confirms mints too; both
paths write the same token id and transaction, and the second to arrive changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy.exc import OperationalError

from inftd.daemon.errors import DaemonError
from inftd.daemon.relayer.chain import MintChain
from inftd.daemon.relayer.context import Context, Hooks
from inftd.daemon.relayer.sender import send_round
from inftd.daemon.relayer.store import unsettled
from inftd.daemon.relayer.tracker import track_round
from inftd.daemon.runtime import Runtime
from inftd.indexer.rpc import RpcError

log = logging.getLogger(__name__)

MAX_FAILED_ROUNDS = 20  # rounds in a row failing with an unexpected error before it halts
TRANSIENT = (RpcError, OperationalError)  # the chain or the database is away: wait


class RelayerHalted(DaemonError):
    """The relayer failed MAX_FAILED_ROUNDS rounds in a row with unexpected errors."""


@dataclass(frozen=True)
class Round:
    tracked: int  # open nonces and waiting mints looked at
    sent: int  # due mints taken up

    @property
    def busy(self) -> bool:
        """Mints were taken up: more may be due, so the next round starts at once."""
        return self.sent > 0


def minter_account(runtime: Runtime) -> LocalAccount | None:
    key = runtime.settings.minter_key
    if key is None or not key.get_secret_value():
        return None
    try:
        account: LocalAccount = Account.from_key(key.get_secret_value())
    except Exception:
        raise DaemonError("INFTD_MINTER_KEY is not a valid private key") from None
    return account


class Relayer:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @classmethod
    def for_runtime(
        cls, runtime: Runtime, account: LocalAccount, hooks: Hooks | None = None
    ) -> Relayer:
        settings = runtime.settings
        chain = MintChain(runtime.rpc, runtime.deployment, settings.relayer.rpc_concurrency)
        ctx = Context(
            engine=runtime.engine,
            chain=chain,
            account=account,
            settings=settings.relayer,
            chain_id=runtime.deployment.chain_id,
            confirmations=settings.chain.confirmations,
            hooks=hooks or Hooks(),
            on_commit=runtime.hub.poke,
        )
        return cls(ctx)

    async def step(self) -> Round:
        """One round: track, then send."""
        tracked = await track_round(self.ctx)
        return Round(tracked, await send_round(self.ctx))

    async def unsettled(self) -> int:
        """Mints not confirmed or failed, and open nonces: 0 when there is nothing to do."""
        async with self.ctx.engine.connect() as conn:
            return await unsettled(conn)

    async def run(self, stop: asyncio.Event) -> None:
        """Rounds until ``stop``; one that took up mints is followed at once by the next."""
        failures = 0
        log.info("mint relayer started for %s", self.ctx.signer)
        while not stop.is_set():
            began = time.monotonic()
            try:
                busy = (await self.step()).busy
                failures = 0
            except TRANSIENT as exc:
                log.warning("mint relayer round failed, trying again: %s", exc)
                busy = False
            except Exception as exc:
                failures += 1
                log.exception("mint relayer round failed (%d in a row)", failures)
                if failures >= MAX_FAILED_ROUNDS:
                    raise RelayerHalted(f"{failures} rounds failed; last: {exc}") from exc
                busy = False
            log.debug("relayer round in %.3fs", time.monotonic() - began)
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.ctx.settings.poll_interval)

    async def close(self) -> None:
        await self.ctx.chain.close()


async def run_relayer(runtime: Runtime, stop: asyncio.Event) -> None:
    """The relayer of ``serve``: runs when a minter key is set and the relayer is enabled."""
    account = minter_account(runtime)
    if account is None or not runtime.settings.relayer.enabled:
        log.info("mint relayer off: %s", "disabled" if account else "no INFTD_MINTER_KEY")
        return
    relayer = Relayer.for_runtime(runtime, account)
    try:
        await relayer.run(stop)
    except Exception:
        log.exception("the mint relayer stopped")  # the API stays up; /v1/status goes on
    finally:
        await relayer.close()
