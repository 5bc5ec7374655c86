"""The engine next to the naive pandas tutorial script, as whole processes.

Generates a dataset with `engine generate` (once, cached under benchmarks/data/), then
runs, interleaved and repeated, `engine run` in the given modes and
`benchmarks/naive_pandas.py`, each measured by proctree (wall, CPU, peak memory summed
over the process tree). Prints one row per command with medians and the ratio of the
engine's median wall time to the naive script's.

    python benchmarks/engine_vs_naive.py --rows 10000000 --repeat 3 --modes auto
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proctree import measure  # noqa: E402

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def dataset(rows: int, seed: int) -> Path:
    path = HERE / "data" / f"sales_{rows}_s{seed}.csv"
    if not path.exists():
        subprocess.run([str(BIN / "engine"), "generate", str(path), "--rows", str(rows), "--seed", str(seed)], check=True)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--modes", nargs="+", default=["auto"])
    args = parser.parse_args()
    source = dataset(args.rows, args.seed)
    commands = {f"engine {mode}": lambda out, mode=mode: [str(BIN / "engine"), "run", str(source), "--output", out,
                                                          "--mode", mode, "--log-level", "WARNING"]
                for mode in args.modes}
    commands["naive pandas"] = lambda out: [sys.executable, str(HERE / "naive_pandas.py"), str(source), out]
    results: dict[str, list[dict]] = {name: [] for name in commands}
    for _ in range(args.repeat):
        for name, command in commands.items():
            with tempfile.TemporaryDirectory() as out:
                figures = measure(command(out), stdout=subprocess.DEVNULL)
            if figures["exit_code"] != 0:
                raise SystemExit(f"{name} failed with exit code {figures['exit_code']}")
            results[name].append(figures)
    naive_wall = statistics.median(f["wall_s"] for f in results["naive pandas"])
    print(f"{args.rows:,} rows ({source.stat().st_size / 2**20:.0f} MiB CSV), {args.repeat} runs each, medians:")
    print(f"{'command':<20}{'wall s':>9}{'cpu s':>9}{'peak MiB':>10}{'wall / naive':>14}")
    for name, runs in results.items():
        wall = statistics.median(f["wall_s"] for f in runs)
        cpu = statistics.median(f["cpu_s"] for f in runs)
        peak = statistics.median(f["peak_tree_rss_mib"] for f in runs)
        print(f"{name:<20}{wall:>9.2f}{cpu:>9.2f}{peak:>10.0f}{wall / naive_wall:>14.2f}")
    print(json.dumps({name: runs for name, runs in results.items()}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
