"""``inftd status [--json]``: the health of every process and role, from the database
(and the chain head, when the configured RPC answers).

Exit codes: 0 healthy; 3 unhealthy (the problems are listed, see cluster.py); 1 the
database cannot be read. A chain that does not answer is reported, not counted unhealthy:
the host running ``inftd status`` may simply not reach it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from inftd.daemon.config import Settings
from inftd.daemon.errors import DaemonError
from inftd.daemon.process.cluster import cluster_report
from inftd.indexer.rpc import ChainRpc, RpcError
from inftd.indexer.status import indexer_report
from inftd.store.db import create_async
from inftd.store.migrate import require_head

EXIT_UNHEALTHY = 3
RPC_TIMEOUT = 5.0  # seconds the chain head may take
RPC_ATTEMPTS = 2


async def chain_status(settings: Settings) -> dict[str, Any]:
    try:
        rpc = ChainRpc(settings.chain.http_urls, timeout=RPC_TIMEOUT, max_attempts=RPC_ATTEMPTS)
    except RpcError as exc:
        return {"ok": False, "headBlock": None, "error": str(exc)}
    try:
        return {"ok": True, "headBlock": await rpc.head_number(), "error": None}
    except RpcError as exc:
        return {"ok": False, "headBlock": None, "error": str(exc)}
    finally:
        await rpc.close()


async def status_report(settings: Settings) -> dict[str, Any]:
    chain = await chain_status(settings)
    engine = create_async(settings.database)
    try:
        await require_head(engine)
        async with engine.connect() as conn:
            cluster = await cluster_report(conn)
            indexer = await indexer_report(conn, chain["headBlock"], settings.chain.confirmations)
    except SQLAlchemyError as exc:
        cause = exc.orig if isinstance(exc, DBAPIError) else exc
        raise DaemonError("cannot read the database: " + " ".join(str(cause).split())) from None
    finally:
        await engine.dispose()
    return {
        "ok": not cluster["problems"],
        "problems": cluster["problems"],
        "checkedAt": datetime.now(UTC).isoformat(),
        "chain": chain,
        "indexer": indexer.as_json(chain["headBlock"]),
        **{k: v for k, v in cluster.items() if k != "problems"},
    }


async def run_status(settings: Settings, as_json: bool, say: Callable[[str], None]) -> int:
    report = await status_report(settings)
    if as_json:
        say(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    else:
        for line in render(report):
            say(line)
    return 0 if report["ok"] else EXIT_UNHEALTHY


# -- text -----------------------------------------------------------------------------------


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows as left-aligned columns, two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def _counts(counts: dict[str, int]) -> str:
    return "  ".join(f"{k} {v}" for k, v in counts.items()) or "none"


def _block(number: int | None) -> str:
    return "none" if number is None else str(number)


def _ids(ids: Sequence[str]) -> str:
    return ", ".join(ids) or "none"


def _summary(report: dict[str, Any]) -> list[list[str]]:
    chain, indexer, roles = report["chain"], report["indexer"], report["roles"]
    head = f"head {chain['headBlock']}" if chain["ok"] else f"unreachable ({chain['error']})"
    lag = indexer["lagBlocks"]
    rows = [
        ["chain", head],
        ["indexer", f"leader {roles['indexer']['leader'] or 'none'}"],
        ["", f"standbys {_ids(roles['indexer']['standbys'])}"],
        [
            "",
            f"indexed {_block(indexer['indexedBlock'])}  "
            f"confirmed {_block(indexer['confirmedBlock'])}  "
            f"lag {'unknown' if lag is None else f'{lag} blocks'}",
        ],
        [
            "workers",
            f"{len(roles['worker']['alive'])} alive, "
            f"{roles['worker']['jobsRunning']} job(s) running",
        ],
        ["queue", _counts(report["queue"])],
    ]
    if not roles["relayer"]["signers"]:
        rows.append(["relayer", "none live with a minter key"])
    for signer, entry in roles["relayer"]["signers"].items():
        rows.append(
            [
                "relayer",
                f"{signer}: leader {entry['leader'] or 'none'}, {entry['inFlight'] or 0} in "
                f"flight; standbys {_ids(entry['standbys'])}",
            ]
        )
    mints = report["mints"]
    rows.append(["mints", f"unsettled {mints['unsettled']}  in flight {mints['inFlight']}"])
    rows.append(["push", _counts(report["push"])])
    rows.append(["api", f"{len(roles['api']['alive'])} alive"])
    return rows


def _process_rows(report: dict[str, Any]) -> list[list[str]]:
    rows = [["PROCESS", "HOST", "PID", "ROLES", "STATE", "HEARTBEAT", "VERSION"]]
    for p in report["processes"]:
        states = [f"{r}:{f['state']}" for r, f in p["facts"].items() if f.get("state")]
        rows.append(
            [
                p["id"],
                p["host"],
                str(p["pid"]),
                ",".join(p["roles"]),
                " ".join(states) or "-",
                f"{p['ageSeconds']:.1f}s ago" + ("" if p["alive"] else " STALE"),
                p["version"],
            ]
        )
    return rows


def render(report: dict[str, Any]) -> list[str]:
    verdict = "healthy" if report["ok"] else "UNHEALTHY"
    lines = [f"inftd status: {verdict} (at {report['checkedAt']})"]
    lines += [f"  problem: {problem}" for problem in report["problems"]]
    lines += ["", *table(_summary(report)), ""]
    lines += table(_process_rows(report)) if report["processes"] else ["no processes"]
    return lines
