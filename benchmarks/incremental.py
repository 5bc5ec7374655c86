"""The incremental-run benchmark: a year of daily files, then one more day.

365 files of ``--rows`` rows each (100k by default, cut from one generated input) are run
once to build the state; then day 366 is added and, in each of ``--repeat`` rounds, in a
seeded shuffled order:

* ``full``: ``engine run DAYS --full`` (reads all 366 files; what a run without state costs);
* ``incremental``: ``engine run DAYS`` over a fresh copy of the 365-day state (reads day 366
  only, reuses 365 partials, merges, publishes).

Both are whole processes measured by ``proctree.measure`` (wall, CPU of the tree, peak
RSS of the tree). The two runs' published outputs are compared byte for byte. Results go
to ``RESULTS_DIR/incremental.json``; ``report.py`` puts them in RESULTS.md.

    python benchmarks/incremental.py                 # 365 x 100k rows, 3 rounds (make bench)
    python benchmarks/incremental.py --rows 1000 --repeat 1 --results /tmp/r --data /tmp/d
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from proctree import compile_engine_bytecode, measure  # noqa: E402
from run import git_revision  # noqa: E402

BIN = Path(sys.executable).parent
DAYS = 365
COMPARED = ("daily_sales_summary.csv", "enriched_daily_summary.csv", "weekly_aggregation.csv",
            "data_quality_metrics.json", "trend_analysis.json", "top_performing_days.json", "rejected_rows.parquet")


def daily_files(rows: int, seed: int, data_dir: Path) -> Path:
    """A folder of DAYS + 1 files of `rows` rows each, cut from one generated input
    (made once and cached). Day DAYS + 1 is kept aside as `extra/`."""
    folder = data_dir / f"daily_{DAYS}x{rows}_s{seed}"
    if (folder / "extra").is_dir():
        return folder
    source = data_dir / f"daily_source_{(DAYS + 1) * rows}_s{seed}.csv"
    if not source.exists():
        print(f"generating {source} ...", flush=True)
        subprocess.run([str(BIN / "engine"), "generate", str(source), "--rows", str((DAYS + 1) * rows),
                        "--seed", str(seed)], check=True, stdout=subprocess.DEVNULL)
    building = folder.with_name(folder.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    (building / "days").mkdir(parents=True)
    (building / "extra").mkdir()
    with open(source, "rb") as handle:
        header = handle.readline()
        for day in range(1, DAYS + 2):
            target = building / ("days" if day <= DAYS else "extra") / f"sales_{day:03d}.csv"
            with open(target, "wb") as out:
                out.write(header)
                for _ in range(rows):
                    out.write(handle.readline())
    source.unlink()
    shutil.rmtree(folder, ignore_errors=True)
    building.rename(folder)
    return folder


def engine(*args: str) -> list[str]:
    return [str(BIN / "engine"), "run", *args, "--log-level", "WARNING"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows per daily file (100k)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (3)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--data", type=Path, default=HERE / "data")
    args = parser.parse_args(argv)
    folder = daily_files(args.rows, args.seed, args.data)
    results = {"started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "git": git_revision(), "days": DAYS, "rows_per_file": args.rows, "runs": [], "same_bytes": None}
    compile_engine_bytecode()
    with tempfile.TemporaryDirectory(prefix="bench-incremental-") as tmp:
        work = Path(tmp)
        days = work / "days"
        shutil.copytree(folder / "days", days)
        built = work / "built"
        done = measure(engine(str(days), "--output", str(built)), stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        if done["exit_code"]:
            raise SystemExit(f"building the {DAYS}-day state failed (exit {done['exit_code']})")
        results["build"] = done
        shutil.copy(folder / "extra" / f"sales_{DAYS + 1:03d}.csv", days)
        rng = random.Random(args.seed)
        same = True
        for repetition in range(args.repeat):
            order = ["full", "incremental"]
            rng.shuffle(order)
            outputs = {}
            for kind in order:
                output = work / f"{kind}-{repetition}"
                if kind == "incremental":
                    shutil.copytree(built / ".state", output / ".state")
                figures = measure(engine(str(days), "--output", str(output), *(["--full"] if kind == "full" else [])),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                report = json.loads((output / "run_report.json").read_text()) if figures["exit_code"] == 0 else {}
                figures["incremental"] = report.get("incremental")
                figures["mode"] = report.get("mode")
                results["runs"].append({"kind": kind, "repetition": repetition, **figures})
                outputs[kind] = output
                print(f"round {repetition + 1}/{args.repeat}  {kind:<12} wall {figures['wall_s']:7.2f} s  "
                      f"cpu {figures['cpu_s']:7.2f} s  peak {figures['peak_tree_rss_mib']:6.0f} MiB  "
                      f"{figures['incremental']}", flush=True)
            same = same and all((outputs["full"] / name).read_bytes() == (outputs["incremental"] / name).read_bytes()
                                for name in COMPARED)
            for output in outputs.values():
                shutil.rmtree(output)
        results["same_bytes"] = same
    results["finished_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "incremental.json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.results / 'incremental.json'}; outputs identical: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
