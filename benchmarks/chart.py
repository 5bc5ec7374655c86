"""Draw the benchmark chart: median wall time and peak memory against input rows.

Two log-log panels side by side, one line per command (only sizes where the command had
at least one successful run), from the same medians as the report (``report.summary``).
Written as a PNG with matplotlib's non-interactive Agg backend.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

import report  # noqa: E402


def draw(results: dict, path: Path) -> None:
    """Write the two-panel chart of ``results`` to ``path``."""
    fig, (wall_ax, peak_ax) = plt.subplots(1, 2, figsize=(12, 6), constrained_layout=True)
    for command in report.commands(results):
        points = [(rows, report.summary(results, rows, command)) for rows in report.sizes(results)]
        points = [(rows, f) for rows, f in points if f["wall"] is not None]
        if not points:
            continue
        xs = [rows for rows, _ in points]
        style = "-" if command.startswith("engine") else "--"
        wall_ax.plot(xs, [f["wall"] for _, f in points], style, marker="o", label=command)
        peak_ax.plot(xs, [f["peak"] for _, f in points], style, marker="o", label=command)
    for ax, title, unit in ((wall_ax, "Median wall time", "seconds"),
                            (peak_ax, "Median peak memory (whole process tree)", "MiB")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("input rows")
        ax.set_ylabel(unit)
        ax.grid(True, which="both", alpha=0.3)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: report.short_rows(int(v)) if v >= 1 else f"{v:g}"))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    fig.legend(*wall_ax.get_legend_handles_labels(), loc="outside lower center", ncols=4, fontsize="small")
    machine = results["machine"]
    fig.suptitle(f"Engine and peers, whole processes ({machine['cpu_count']} CPUs, "
                 f"{machine['memory_gib']} GiB; {results['settings']['repeat']} interleaved round(s) per size)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
