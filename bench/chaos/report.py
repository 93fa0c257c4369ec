"""The chaos report, as text."""

from __future__ import annotations

import shlex
import sys
from collections import Counter
from datetime import UTC, datetime

from bench.chaos.run import Report
from bench.report import machine

MAX_SHOWN = 30  # violations printed; the count is always whole


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items())) or "none"


def render(report: Report, elapsed: float) -> str:
    o, t, s = report.options, report.tally, report.strikes
    lines = [
        f"chaos: {o.seconds:.0f} s of workload, seed {o.seed}, {o.processes} daemon process(es), "
        f"database {'PostgreSQL' if (o.database_url or '').startswith('postgres') else 'SQLite'}; "
        f"{elapsed:.0f} s in all",
        f"operations   {report.operations} ({_counts(t.ops)})",
        f"refused      {_counts(t.refused)}",
        f"unanswered   {_counts(t.failed)}",
        f"accepted     {len(t.accepted)} generations by the API (202)",
        f"kills        {s.kills} SIGKILLs, {s.restarts} restarts ({s.failed_starts} starts failed "
        "on a fault and were retried)",
        f"reorgs       {s.reorgs} ({s.reorg_blocks} blocks dropped, deepest {s.deepest_reorg}; "
        f"{s.reorgs_skipped} skipped: the chain was too short; {s.reorgs_unquiet} skipped: the "
        f"node kept mining; {s.node_holes} block numbers the node lost)",
        f"rpc faults   {sum(report.rpc_faults.values())} injected ({_counts(report.rpc_faults)})",
        f"provider     {sum(s.provider.values())} faults scripted ({_counts(s.provider)})",
        f"settled      {'yes' if report.settled else 'NO'} after {report.settle_seconds:.1f} s",
        f"chain        head {report.head}, {report.agents} packages; {report.stale_logs} logs of "
        "removed blocks in the node's eth_getLogs answers (left out of the facts)",
        f"generations  {_counts(report.generations)}",
        f"mints        {_counts(report.mints)}",
        "checks       "
        + ", ".join(f"invariant {k}: {v}" for k, v in sorted(report.findings.checks.items())),
        f"violations   {report.violations}",
    ]
    lines += [f"  {v}" for v in report.findings.violations[:MAX_SHOWN]]
    return "\n".join(lines)


def markdown(report: Report, elapsed: float, argv: list[str]) -> str:
    """The report as bench/RESULTS-chaos.md: the run's facts, then its counts as a table
    (what ``bench.report`` puts in the headline), then the text report."""
    s = report.strikes
    command = shlex.join([".venv/bin/python", "-m", "bench.chaos", *argv])
    rows = [
        ("operations", report.operations),
        ("SIGKILLs", s.kills),
        ("reorgs", s.reorgs),
        ("RPC faults", sum(report.rpc_faults.values())),
        ("provider faults", sum(s.provider.values())),
        ("invariant checks", sum(report.findings.checks.values())),
        ("violations", report.violations),
    ]
    return "\n".join(
        [
            "# inftd chaos run: faults, kills and reorgs under a random workload",
            "",
            f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            f"- Machine: {machine()}",
            f"- Python {sys.version.split()[0]}",
            f"- Command: `{command}`",
            "",
            "| what | count |",
            "|---|---:|",
            *(f"| {what} | {count:,} |" for what, count in rows),
            "",
            "```",
            render(report, elapsed),
            "```",
            "",
        ]
    )
