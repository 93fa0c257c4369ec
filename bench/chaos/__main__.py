"""``python -m bench.chaos``: see bench/chaos/__init__.py."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.chaos.report import markdown, render
from bench.chaos.run import Options, chaos

RESULTS_FILE = Path(__file__).resolve().parent.parent / "RESULTS-chaos.md"


def parse(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0, help="workload time (60)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (1)")
    parser.add_argument("--database-url", help="an empty database (default: a SQLite file)")
    parser.add_argument("--processes", type=int, default=1, help="inftd run processes (1)")
    parser.add_argument("--settle", type=float, default=120.0, help="quiescence bound (120 s)")
    parser.add_argument("--work-dir", type=Path, help="keep logs and databases here")
    parser.add_argument(
        "--confirmations",
        type=int,
        default=0,
        help="the daemons' confirmation depth; reorgs stay shallower (0: any depth)",
    )
    args = parser.parse_args(argv)
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="inftd-chaos-"))
    return Options(
        seconds=args.seconds,
        seed=args.seed,
        database_url=args.database_url,
        processes=args.processes,
        settle=args.settle,
        work_dir=work_dir,
        confirmations=args.confirmations,
    )


async def main(options: Options, argv: list[str]) -> int:
    began = time.monotonic()
    async with chaos(options) as (_, report):
        print(render(report, time.monotonic() - began), flush=True)
        RESULTS_FILE.write_text(markdown(report, time.monotonic() - began, argv))
        print(f"written to {RESULTS_FILE}", flush=True)
    return 1 if report.violations or not report.settled else 0


if __name__ == "__main__":
    options = parse()
    code = asyncio.run(main(options, sys.argv[1:]))
    if code == 0 and options.work_dir.name.startswith("inftd-chaos-"):
        shutil.rmtree(options.work_dir, ignore_errors=True)
    else:
        print(f"logs and databases: {options.work_dir}", file=sys.stderr)
    sys.exit(code)
