"""``bench.report`` joins the benchmarks' own RESULTS files, read as they are committed."""

from __future__ import annotations

import shutil
from pathlib import Path

from bench import report

WRITTEN = ("backfill", "api", "mints", "generation")  # the committed ones the test copies


def _headline(text: str) -> list[list[str]]:
    start = text.index("| benchmark | figure |")
    table = text[start:].split("\n\n", 1)[0].splitlines()[2:]
    return [[c.strip() for c in line.strip("|").split("|")] for line in table]


def test_the_report_takes_each_figure_from_its_benchmark(tmp_path: Path) -> None:
    for name in WRITTEN:
        shutil.copy(report.BENCH_DIR / f"RESULTS-{name}.md", tmp_path)
    out = tmp_path / "RESULTS.md"

    assert report.main(["--folder", str(tmp_path), "--out", str(out)]) == 0

    text = out.read_text()
    rows = _headline(text)
    assert {r[0] for r in rows} == set(WRITTEN)
    mints = report.parse("mints", (tmp_path / "RESULTS-mints.md").read_text())
    automine = mints.row(chain="automine", relayer="pipelined")
    wanted = ["mints", "mints/s, automine", automine["mints/s"]]
    assert [r[:3] for r in rows if r[1] == "mints/s, automine"] == [wanted]
    for row in rows:  # the command each benchmark's file names made that row's figure
        source = (tmp_path / f"RESULTS-{row[0]}.md").read_text()
        assert f"- Command: {row[-1]}" in source
    for name in WRITTEN:  # each benchmark's own report follows in full, headings nested
        assert f"\n## {name}\n" in text
    assert "Not in this report: chaos (RESULTS-chaos.md not found" in text


def test_a_missing_row_is_named_not_skipped(tmp_path: Path) -> None:
    original = (report.BENCH_DIR / "RESULTS-mints.md").read_text()
    (tmp_path / "RESULTS-mints.md").write_text(
        original.replace("| automine | pipelined", "| x | y")
    )
    out = tmp_path / "RESULTS.md"

    assert report.main(["--folder", str(tmp_path), "--out", str(out)]) == 1  # nothing usable

    text = out.read_text()
    assert "Not in this report: mints headline" in text
    assert "chain='automine'" in text
