"""The benchmark suite: the engine next to its peers, as whole processes, interleaved.

For every size it generates (once, cached) an input with ``engine generate``, then runs
``--repeat`` rounds; in each round every command runs once, in an order shuffled by a
seeded random generator (so slow drift of a shared machine hits every command alike).
Each run is one whole process measured by ``proctree.measure``: wall time, CPU time of
the process tree, peak RSS summed over the tree (Dask workers included), exit code.

Commands (see ``commands_for``):

* ``engine MODE``: ``engine run INPUT --output TMP --mode MODE --log-level WARNING`` for
  each of ``--modes``; its ``run_report.json`` (per-step seconds, chosen mode) is kept
  with the measurement. ``pandas`` mode is skipped above 10M rows.
* peers doing the core job (read, reject bad rows, daily figures, 7-day moving mean,
  write Parquet): ``naive`` (``naive_pandas.py``, the tutorial script, skipped above 10M
  rows: it holds the whole file in memory, ~2.4 GiB per 10M rows), ``duckdb plain`` and
  ``polars plain`` (``peers/*_plain.py``: the script a user picking that tool would write
  first), ``duckdb`` and ``polars`` (``peers/*_core.py``: SPEC §3's exact rules).

Every raw measurement goes to ``RESULTS_DIR/results.json`` (rewritten after every run, so
an interrupted suite keeps what it measured); then ``report.py`` renders the Markdown
report and ``chart.py`` the chart. ``--report-only`` re-renders from results.json.

    python benchmarks/run.py                 # 1k .. 10M rows, 3 rounds (make bench)
    python benchmarks/run.py --quick         # 1k, 10k, 100k rows, 2 rounds (make bench-quick)
    python benchmarks/run.py --with-100m     # adds 100M rows
    python benchmarks/run.py --sizes 1000 --repeat 1 --results /tmp/r --data /tmp/d
    python benchmarks/run.py --report-only
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import chart  # noqa: E402
import report  # noqa: E402
from proctree import compile_engine_bytecode, measure  # noqa: E402

BIN = Path(sys.executable).parent
FULL_SIZES = [1_000, 10_000, 100_000, 1_000_000, 10_000_000]
QUICK_SIZES = [1_000, 10_000, 100_000]
HUNDRED_MILLION = 100_000_000
IN_MEMORY_MAX_ROWS = 10_000_000  # engine pandas mode and the naive script stop here
MODES = ["auto", "pandas", "dask", "distributed"]
PEERS = {
    "naive": ("naive pandas", HERE / "naive_pandas.py"),
    "duckdb": ("duckdb", HERE / "peers" / "duckdb_core.py"),
    "polars": ("polars", HERE / "peers" / "polars_core.py"),
    "duckdb-plain": ("duckdb plain", HERE / "peers" / "duckdb_plain.py"),
    "polars-plain": ("polars plain", HERE / "peers" / "polars_plain.py"),
}
VERSIONED_PACKAGES = [
    "sales-engine", "sf-hamilton", "apache-hamilton", "dask", "distributed", "pandas",
    "pyarrow", "numpy", "openlineage-python", "duckdb", "polars", "matplotlib", "psutil",
]
DEFAULT_RESULTS = HERE / "results"
DEFAULT_REPORT = HERE / "RESULTS.md"


@dataclass(frozen=True)
class Command:
    """One benchmarked command: its display name, kind and argv for an input and output dir."""

    name: str
    kind: str  # "engine" or "peer"
    argv: tuple[str, ...]  # with "{input}" and "{output}" placeholders

    def for_run(self, source: Path, output: Path) -> list[str]:
        return [a.format(input=source, output=output) for a in self.argv]


def commands_for(rows: int, modes: list[str], peers: list[str]) -> list[Command]:
    """The commands run at ``rows`` rows, in report order."""
    commands = []
    for mode in modes:
        if mode == "pandas" and rows > IN_MEMORY_MAX_ROWS:
            continue
        commands.append(Command(f"engine {mode}", "engine", (
            str(BIN / "engine"), "run", "{input}", "--output", "{output}",
            "--mode", mode, "--log-level", "WARNING")))
    for key in peers:
        if key == "naive" and rows > IN_MEMORY_MAX_ROWS:
            continue
        name, script = PEERS[key]
        commands.append(Command(name, "peer", (sys.executable, str(script), "{input}", "{output}")))
    return commands


def dataset(rows: int, seed: int, data_dir: Path) -> Path:
    """The generated input of ``rows`` rows, made once with ``engine generate`` and cached."""
    path = data_dir / f"sales_{rows}_s{seed}.csv"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        print(f"generating {path} ...", flush=True)
        subprocess.run([str(BIN / "engine"), "generate", str(path), "--rows", str(rows),
                        "--seed", str(seed)], check=True, stdout=subprocess.DEVNULL)
    return path


def warm_page_cache(path: Path) -> None:
    """Read the file once so no command pays the first cold read alone."""
    with open(path, "rb") as handle:
        while handle.read(1 << 24):
            pass


def run_once(command: Command, source: Path, timeout: float | None) -> dict:
    """Run ``command`` once on ``source`` into a fresh temporary output directory.

    Returns proctree's figures plus ``timed_out``, ``output_tail`` (the last lines of the
    command's stdout and stderr) and, for the engine, ``run_report`` (mode, duration_s,
    step_seconds from its ``run_report.json``). The command runs in its own session so
    that a timeout or Ctrl-C can stop its whole process group.
    """
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        output, log = Path(tmp) / "out", Path(tmp) / "log.txt"
        started: dict[str, int] = {}
        timed_out = threading.Event()

        def kill_group():
            timed_out.set()
            _kill_group(started.get("pid"))

        timer = threading.Timer(timeout, kill_group) if timeout else None

        def on_start(pid: int) -> None:
            started["pid"] = pid
            if timer:
                timer.start()

        with open(log, "wb") as sink:
            try:
                figures = measure(command.for_run(source, output), on_start=on_start,
                                  stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
            except BaseException:
                _kill_group(started.get("pid"))
                raise
            finally:
                if timer:
                    timer.cancel()
        figures["timed_out"] = timed_out.is_set()
        figures["output_tail"] = log.read_text(errors="replace").splitlines()[-5:]
        if command.kind == "engine":
            figures["run_report"] = _engine_report(output / "run_report.json")
    return figures


def _kill_group(pid: int | None) -> None:
    if pid is not None:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass


def _engine_report(path: Path) -> dict | None:
    """The parts of the engine's run_report.json the report uses (None if absent)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    keys = ("status", "mode", "mode_reason", "duration_s", "step_seconds", "rows")
    return {k: data.get(k) for k in keys}


def machine_info() -> dict:
    """CPU, memory, OS, Python, load: what the figures depend on."""
    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpu_physical": psutil.cpu_count(logical=False),
        "cpu_model": model,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }


def versions() -> dict:
    """Installed versions of the engine, its dependencies and the peers."""
    found = {}
    for name in VERSIONED_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def git_revision() -> dict:
    def git(*args):
        done = subprocess.run(["git", *args], cwd=HERE, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else None
    # The suite's own outputs do not make the measured code "uncommitted".
    status = git("status", "--porcelain", "--", ":(top)", ":(top,exclude)benchmarks/results",
                 ":(top,exclude)benchmarks/RESULTS.md")
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(status) if status is not None else None}


def run_suite(args: argparse.Namespace, results_path: Path) -> dict:
    """Measure every size, round by round; returns (and keeps saving) the results object."""
    results = {
        "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "finished_at": None,
        "settings": {"sizes": args.sizes, "repeat": args.repeat, "modes": args.modes,
                     "peers": args.peers, "seed": args.seed, "timeout_s": args.timeout,
                     "quick": args.quick},
        "machine": machine_info(),
        "versions": versions(),
        "git": git_revision(),
        "inputs": {},
        "commands": {},
        "runs": [],
    }
    order_rng = random.Random(args.seed)
    compile_engine_bytecode()
    for rows in args.sizes:
        source = dataset(rows, args.seed, args.data)
        warm_page_cache(source)
        commands = commands_for(rows, args.modes, args.peers)
        results["inputs"][str(rows)] = {"path": str(source), "bytes": source.stat().st_size}
        results["commands"][str(rows)] = [c.name for c in commands]
        for repetition in range(args.repeat):
            order = list(commands)
            order_rng.shuffle(order)
            for position, command in enumerate(order):
                figures = run_once(command, source, args.timeout)
                results["runs"].append({"rows": rows, "command": command.name, "kind": command.kind,
                                        "repetition": repetition, "position": position, **figures})
                _progress(rows, repetition, args.repeat, command.name, figures)
                _save(results, results_path)
    results["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    results["finished_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    _save(results, results_path)
    return results


def _progress(rows, repetition, repeat, name, figures) -> None:
    flag = "" if figures["exit_code"] == 0 else f"  EXIT {figures['exit_code']}"
    flag += "  TIMED OUT" if figures["timed_out"] else ""
    print(f"{rows:>11,} rows  round {repetition + 1}/{repeat}  {name:<20} "
          f"wall {figures['wall_s']:8.2f} s  cpu {figures['cpu_s']:8.2f} s  "
          f"peak {figures['peak_tree_rss_mib']:8.0f} MiB{flag}", flush=True)


def _save(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    tmp.replace(path)


def render(results: dict, results_dir: Path, report_path: Path) -> None:
    """RESULTS.md and chart.png from a results object."""
    chart_path = results_dir / "chart.png"
    chart.draw(results, chart_path)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    link = os.path.relpath(chart_path, report_path.parent)
    incremental_path = results_dir / "incremental.json"
    incremental = json.loads(incremental_path.read_text()) if incremental_path.exists() else None
    report_path.write_text(report.render(results, chart_link=link, incremental=incremental))
    print(f"wrote {results_dir / 'results.json'}, {chart_path}, {report_path}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="sizes 1k, 10k, 100k and 2 rounds (explicit --sizes/--repeat win)")
    parser.add_argument("--sizes", type=int, nargs="+", help="row counts (default 1k .. 10M)")
    parser.add_argument("--repeat", type=int, help="rounds per size (default 3; 2 with --quick)")
    parser.add_argument("--with-100m", action="store_true", help="add 100M rows (about 3.2 GB of CSV)")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=MODES, help="engine modes")
    parser.add_argument("--peers", nargs="*", choices=list(PEERS), default=list(PEERS), help="peer commands")
    parser.add_argument("--seed", type=int, default=1, help="data and run-order seed (1)")
    parser.add_argument("--timeout", type=float, default=3600,
                        help="seconds before one run is killed (3600; 0 = never)")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS,
                        help="directory for results.json and chart.png (benchmarks/results)")
    parser.add_argument("--data", type=Path, default=HERE / "data",
                        help="cache of generated inputs (benchmarks/data)")
    parser.add_argument("--report", type=Path,
                        help="Markdown report (benchmarks/RESULTS.md; RESULTS_DIR/RESULTS.md with --results)")
    parser.add_argument("--report-only", action="store_true",
                        help="only re-render the report and chart from RESULTS_DIR/results.json")
    args = parser.parse_args(argv)
    if args.sizes is None:
        args.sizes = list(QUICK_SIZES if args.quick else FULL_SIZES)
    if args.with_100m and HUNDRED_MILLION not in args.sizes:
        args.sizes.append(HUNDRED_MILLION)
    if args.repeat is None:
        args.repeat = 2 if args.quick else 3
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    args.timeout = args.timeout or None
    args.results = args.results.resolve()
    if args.report is None:
        args.report = DEFAULT_REPORT if args.results == DEFAULT_RESULTS else args.results / "RESULTS.md"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results_path = args.results / "results.json"
    if args.report_only:
        results = json.loads(results_path.read_text())
    else:
        results = run_suite(args, results_path)
    render(results, args.results, args.report)
    failed = [r for r in results["runs"] if r["exit_code"] != 0]
    if failed:
        print(f"{len(failed)} run(s) failed; see exit codes in the report", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
