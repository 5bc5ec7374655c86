"""The benchmark suite runs end to end, and its peers compute what the engine computes.

No timing is asserted anywhere: these tests only check that every benchmarked command
works and that the peers are doing the same job (so the speed comparison is fair).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
ENGINE = Path(sys.executable).parent / "engine"
ALL_COMMANDS = {"engine auto", "engine pandas", "engine dask", "engine distributed",
                "naive pandas", "duckdb plain", "polars plain", "duckdb", "polars"}


def _run(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.mark.slow
def test_quick_suite_smallest_size_end_to_end(tmp_path):
    results_dir = tmp_path / "results"
    _run(sys.executable, BENCH / "run.py", "--quick", "--sizes", "1000", "--repeat", "1",
         "--results", results_dir, "--data", tmp_path / "data", timeout=170)

    results = json.loads((results_dir / "results.json").read_text())
    runs = results["runs"]
    assert {r["command"] for r in runs} == ALL_COMMANDS
    assert len(runs) == len(ALL_COMMANDS)
    assert all(r["exit_code"] == 0 for r in runs), [(r["command"], r["output_tail"]) for r in runs]
    assert all(r["rows"] == 1000 and r["peak_tree_rss_mib"] > 0 for r in runs)
    assert all(r["run_report"]["step_seconds"] for r in runs if r["kind"] == "engine")
    assert results["machine"]["cpu_count"] and results["versions"]["duckdb"]

    report = (results_dir / "RESULTS.md").read_text()
    assert "### 1,000 rows" in report and "wall ÷ fastest plain peer" in report and "## Targets" in report
    assert "Reference (fastest plain peer): duckdb plain" in report or "Reference (fastest plain peer): polars plain" in report
    assert (results_dir / "chart.png").read_bytes().startswith(b"\x89PNG")

    # The report can be rebuilt from results.json alone.
    (results_dir / "RESULTS.md").unlink()
    _run(sys.executable, BENCH / "run.py", "--report-only", "--results", results_dir)
    assert (results_dir / "RESULTS.md").read_text().startswith("# Benchmark results")


@pytest.mark.slow
def test_incremental_benchmark_end_to_end(tmp_path):
    """The incremental-run benchmark at its smallest: a year of 20-row daily files, one
    round; both runs succeed, the incremental one reads one file, the outputs match, and
    the report shows the section."""
    results_dir = tmp_path / "results"
    _run(sys.executable, BENCH / "incremental.py", "--rows", "20", "--repeat", "1", "--results", results_dir,
         "--data", tmp_path / "data", timeout=300)
    incremental = json.loads((results_dir / "incremental.json").read_text())
    assert incremental["same_bytes"] is True
    runs = {r["kind"]: r for r in incremental["runs"]}
    assert runs["full"]["exit_code"] == runs["incremental"]["exit_code"] == 0
    assert runs["incremental"]["incremental"]["files_read"] == 1
    assert runs["incremental"]["incremental"]["files_reused"] == 365
    assert runs["full"]["incremental"]["files_read"] == 366
    _run(sys.executable, BENCH / "run.py", "--quick", "--sizes", "1000", "--repeat", "1", "--modes", "pandas",
         "--peers", "duckdb-plain", "--results", results_dir, "--data", tmp_path / "data", timeout=170)
    report = (results_dir / "RESULTS.md").read_text()
    assert "## Incremental runs" in report and "Incremental wall time over the full run's" in report


def _daily(path: Path) -> list[tuple]:
    """(date text, total as Decimal, count, distinct products) per row of a peer's daily.parquet."""
    table = pq.read_table(path).to_pylist()
    return [(str(r["date"]), Decimal(r["total_amount"]), r["transaction_count"], r["unique_products"])
            for r in table]


def test_peers_agree_with_each_other_and_with_the_engine(tmp_path):
    source = tmp_path / "sales.csv"
    _run(ENGINE, "generate", source, "--rows", "20000", "--seed", "11")
    for peer in ("duckdb_core", "polars_core"):
        _run(sys.executable, BENCH / "peers" / f"{peer}.py", source, tmp_path / peer)
    duck = _daily(tmp_path / "duckdb_core" / "daily.parquet")
    polars = _daily(tmp_path / "polars_core" / "daily.parquet")
    assert len(duck) > 300
    assert duck == polars  # same rules, exact cents: identical days, totals, counts

    _run(ENGINE, "run", source, "--output", tmp_path / "engine", "--mode", "pandas", "--log-level", "WARNING")
    with open(tmp_path / "engine" / "daily_sales_summary.csv", newline="") as handle:
        engine = [(r["date"], Decimal(r["total_amount"]), int(r["transaction_count"]), int(r["unique_products"]))
                  for r in csv.DictReader(handle)]
    assert [(d, n, u) for d, _, n, u in engine] == [(d, n, u) for d, _, n, u in duck]
    assert all(abs(e[1] - p[1]) <= Decimal("0.01") for e, p in zip(engine, duck))

    # The 7-calendar-day moving mean of the daily total agrees too.
    duck_ma7 = pq.read_table(tmp_path / "duckdb_core" / "daily.parquet").column("total_amount_ma7").to_pylist()
    polars_ma7 = pq.read_table(tmp_path / "polars_core" / "daily.parquet").column("total_amount_ma7").to_pylist()
    assert all(abs(a - b) < 1e-6 for a, b in zip(duck_ma7, polars_ma7))


def test_the_plain_peers_count_the_same_days_as_the_engine(tmp_path):
    """The plain peers are what a user would write: not SPEC's exact rules, but the same job
    (their kept rows differ from the engine's by the rows SPEC rejects and they keep)."""
    source = tmp_path / "sales.csv"
    _run(ENGINE, "generate", source, "--rows", "20000", "--seed", "11")
    _run(ENGINE, "run", source, "--output", tmp_path / "engine", "--mode", "pandas", "--log-level", "WARNING")
    with open(tmp_path / "engine" / "daily_sales_summary.csv", newline="") as handle:
        engine = {r["date"]: int(r["transaction_count"]) for r in csv.DictReader(handle)}
    for peer in ("duckdb_plain", "polars_plain"):
        _run(sys.executable, BENCH / "peers" / f"{peer}.py", source, tmp_path / peer)
        table = pq.read_table(tmp_path / peer / "daily.parquet").to_pylist()
        counts = {str(r["d"]): r["transaction_count"] for r in table}
        assert set(counts) == set(engine)
        assert abs(sum(counts.values()) - sum(engine.values())) < 0.02 * sum(engine.values())
