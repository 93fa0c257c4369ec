"""``python -m bench.report``: one report, bench/RESULTS.md, from the benchmarks' own.

Every benchmark writes ``bench/RESULTS-<name>.md``: its date, machine, command and tables,
with ratios against a baseline measured in the same run. This joins them: the machine and
date of this report, a headline table (each figure with its baseline, the ratio and the
command that produced it), then every benchmark's report in full. ``make bench`` runs the
benchmarks, then this. A benchmark whose file is missing, or whose table lacks a row the
headline wants, is named in the report and on stderr rather than left out silently.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_FILE = BENCH_DIR / "RESULTS.md"
BENCHMARKS = ("backfill", "api", "mints", "generation", "chaos")  # make bench's order

Row = dict[str, str]


@dataclass
class Report:
    """One benchmark's RESULTS file: its ``- Key: value`` lines and its tables."""

    name: str
    text: str
    meta: dict[str, str] = field(default_factory=dict)
    tables: list[list[Row]] = field(default_factory=list)

    def row(self, has: str = "", **cells: str) -> Row:
        """The first row, in a table with column ``has``, whose named columns hold exactly
        these cells."""
        for table in self.tables:
            for row in table:
                if (not has or has in row) and all(
                    row.get(_header(k)) == v for k, v in cells.items()
                ):
                    return row
        wanted = ", ".join(f"{k}={v!r}" for k, v in cells.items())
        raise MissingFigure(f"RESULTS-{self.name}.md has no row with {wanted}")

    @property
    def command(self) -> str:
        return self.meta.get("Command", "").strip("`") or f"python -m bench.{self.name}"


class MissingFigure(LookupError):
    """A row the headline wants is not in the benchmark's tables."""


def _header(key: str) -> str:
    """Keyword names for column headers: ``p50_ms`` is ``p50 ms``."""
    return key.replace("_", " ")


def parse(name: str, text: str) -> Report:
    report = Report(name, text)
    table: list[Row] | None = None
    headers: list[str] = []
    for line in text.splitlines():
        if meta := re.match(r"- ([A-Z][\w ()]*?): (.+)", line):
            report.meta.setdefault(meta[1], meta[2])
        if not line.startswith("|"):
            table = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if table is None:
            headers, table = cells, []
            report.tables.append(table)
        elif not all(set(c) <= set("-:") for c in cells):
            table.append(dict(zip(headers, cells, strict=False)))
    return report


@dataclass(frozen=True)
class Headline:
    figure: str
    value: str
    baseline: str = ""
    ratio: str = ""


def backfill(r: Report) -> Iterator[Headline]:
    # Each database's run is followed by its own raw-limit run (same ranges, same moment).
    runs = [row for table in r.tables for row in table if "run" in row]
    naive = r.row(has="run", run="naive: web3.py, ORM insert + commit per event → SQLite")
    for db in ("SQLite", "PostgreSQL"):
        run = r.row(run=f"inftd backfill → {db}")
        raw = runs[runs.index(run) + 1]
        ratios = (r.row(ratio=f"inftd / {of} (events/s)")[db] for of in ("raw limit", "naive"))
        yield Headline(
            f"backfill → {db}, events/s",
            run["events/s"],
            f"raw limit {raw['events/s']}",
            next(ratios),
        )
        yield Headline(
            f"backfill → {db} vs naive web3.py, events/s",
            run["events/s"],
            f"naive {naive['events/s']}",
            next(ratios),
        )
    for db in ("SQLite", "PostgreSQL"):
        live = r.row(has="samples", database=db)
        yield Headline(
            f"live: block → agent on the API, {db}, p50/p99 ms",
            f"{live['p50 ms']} / {live['p99 ms']}",
        )


def api(r: Report) -> Iterator[Headline]:
    for endpoint in ("GET /v1/agents/{id}", "GET /v1/status"):
        bare = r.row(endpoint=endpoint, server="bare aiohttp", connections="100")
        for db in ("SQLite", "PostgreSQL"):
            row = r.row(endpoint=endpoint, server=db, connections="100")
            yield Headline(
                f"`{endpoint}`, {db}, 100 connections, req/s",
                row["req/s"],
                f"bare aiohttp {bare['req/s']}",
                row["req/s ÷ bare"],
            )
    for db in ("SQLite", "PostgreSQL"):
        fan = r.row(database=db, **{"from": "event written"})
        yield Headline(
            f"WebSocket fan-out, 1,000 subscribers, {db}, p50/p99 ms",
            f"{fan['p50 ms']} / {fan['p99 ms']}",
        )


def mints(r: Report) -> Iterator[Headline]:
    for chain in ("automine", "1 s blocks"):
        row = r.row(chain=chain, relayer="pipelined")
        wait = r.row(chain=chain, relayer="send-and-wait")
        yield Headline(
            f"mints/s, {chain}",
            row["mints/s"],
            f"send-and-wait {wait['mints/s']}",
            row["÷ send-and-wait"],
        )


def generation(r: Report) -> Iterator[Headline]:
    for db in ("SQLite", "PostgreSQL"):
        row = r.row(has="overhead p50 ms", database=db)
        yield Headline(
            f"pipeline overhead per job, {db}, p50/p99 ms",
            f"{row['overhead p50 ms']} / {row['overhead p99 ms']}",
            f"its SQL through the bare driver {row['its SQL, bare driver, p50 ms']}",
            row["overhead ÷ bare SQL"],
        )
    for db, procs in (("SQLite", "1"), ("PostgreSQL", "1"), ("PostgreSQL", "2")):
        row = r.row(database=db, worker_processes=procs)
        ratio = row["÷ one process"] if procs != "1" else ""
        yield Headline(
            f"throughput, {db}, {procs} worker process(es), jobs/s",
            row["jobs/s"],
            "one process" if ratio else "",
            ratio,
        )


def chaos(r: Report) -> Iterator[Headline]:
    for row in (row for table in r.tables for row in table if "count" in row):
        yield Headline(f"chaos: {row.get('what', next(iter(row.values())))}", row["count"])


HEADLINES: dict[str, Callable[[Report], Iterator[Headline]]] = {
    "backfill": backfill,
    "api": api,
    "mints": mints,
    "generation": generation,
    "chaos": chaos,
}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        names = re.findall(r"model name\s*: (.+)", Path("/proc/cpuinfo").read_text())
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def render(reports: Sequence[Report], missing: Sequence[str], problems: Sequence[str]) -> str:
    lines = [
        "# inftd benchmark report",
        "",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {machine()}",
        f"- Python {platform.python_version()}",
        "- Command: `make bench` (each benchmark, then `python -m bench.report`)",
        "",
        "Each ratio compares against a baseline measured in the same run of the same",
        "benchmark; the sections below give each benchmark's date, load and full tables.",
        "",
        "| benchmark | figure | inftd | baseline (same run) | ratio | command |",
        "|---|---|---:|---|---:|---|",
    ]
    for report in reports:
        for h in HEADLINES[report.name](report):
            lines.append(
                f"| {report.name} | {h.figure} | {h.value} | {h.baseline} | {h.ratio} "
                f"| `{report.command}` |"
            )
    lines += [""] + [f"- Not in this report: {m}" for m in (*missing, *problems)]
    for report in reports:
        body = report.text.strip().splitlines()
        lines += ["", f"## {report.name}", "", *("#" + x if x.startswith("#") else x for x in body)]
    return "\n".join(lines).rstrip() + "\n"


def collect(folder: Path) -> tuple[list[Report], list[str], list[str]]:
    reports, missing, problems = [], [], []
    for name in BENCHMARKS:
        path = folder / f"RESULTS-{name}.md"
        if not path.exists():
            missing.append(f"{name} ({path.name} not found: run `python -m bench.{name}`)")
            continue
        report = parse(name, path.read_text())
        try:
            list(HEADLINES[name](report))
        except (MissingFigure, KeyError) as exc:
            problems.append(f"{name} headline ({exc})")
            continue
        reports.append(report)
    return reports, missing, problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__)
    parser.add_argument("--folder", type=Path, default=BENCH_DIR, help="where RESULTS-*.md are")
    parser.add_argument("--out", type=Path, default=RESULTS_FILE, help="the report to write")
    args = parser.parse_args(argv)
    reports, missing, problems = collect(args.folder)
    for line in (*missing, *problems):
        print(f"bench.report: {line}", file=sys.stderr)
    text = render(reports, missing, problems)
    args.out.write_text(text)
    print(text)
    print(f"written to {args.out}")
    return 0 if reports else 1


if __name__ == "__main__":
    sys.exit(main())
