"""Per-step and whole-run metrics of a run, as Hamilton lifecycle adapters (nodes stay plain).

For every executed node (a step) `RunMetrics` records wall time, the driver's CPU time,
the driver's memory high-water mark, bytes read, rows in and out, and in distributed
mode the same figures for every Dask worker (sampled with `client.run` after each step).

With deferred frames (Dask collections, pandas mode's partition stream) most nodes
only build a plan, so their time is small and they have no throughput of their own; the
node that materialises the reductions (`sales_reductions`) carries the real work, and
its figures show it.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psutil
from hamilton.lifecycle import NodeExecutionHook

#: What a process reports about itself: CPU seconds, memory high-water mark, current
#: memory, and bytes read through the operating system (files and pipes).
Usage = dict[str, float]
#: a step shorter than this has no meaningful throughput (timer and scheduling noise)
MEASURABLE_S = 0.001


class StepTimer(NodeExecutionHook):
    """Wall-clock seconds per executed node, in execution order."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._started: dict[str, float] = {}

    def run_before_node_execution(self, *, node_name: str, **future_kwargs: Any) -> None:
        self._started[node_name] = time.perf_counter()

    def run_after_node_execution(self, *, node_name: str, **future_kwargs: Any) -> None:
        started = self._started.pop(node_name, None)
        if started is not None:
            self.seconds[node_name] = round(time.perf_counter() - started, 6)


def process_usage() -> Usage:
    """This process's CPU seconds (user + system, all threads), memory high-water mark
    and current resident memory in bytes, and bytes read (`read_chars`: files and pipes,
    page cache included). Runs in the driver and, through `client.run`, on each worker."""
    process = psutil.Process()
    cpu = process.cpu_times()
    return {
        "cpu_s": cpu.user + cpu.system,
        # ru_maxrss is in KiB on Linux (bytes on macOS).
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024),
        "rss_bytes": process.memory_info().rss,
        "bytes_read": _bytes_read(process),
    }


def _bytes_read(process: psutil.Process) -> int:
    try:
        return process.io_counters().read_chars
    except (AttributeError, psutil.Error):  # no per-process I/O counters on this platform
        return 0


@dataclass
class StepMetrics:
    """What one step (a dataflow node) cost and produced."""

    name: str
    wall_s: float = 0.0
    cpu_s: float = 0.0
    driver_peak_rss_bytes: int = 0
    #: how much this step raised the driver's memory high-water mark
    driver_peak_increase_bytes: int = 0
    bytes_read: int = 0
    rows_out: int | None = None
    #: the step's result is deferred (a Dask collection, a partition stream): its work happens later
    lazy: bool = False
    inputs: tuple[str, ...] = ()
    workers_cpu_s: float | None = None
    workers_bytes_read: int | None = None
    workers_peak_rss_bytes: int | None = None


@dataclass
class _Sample:
    """Driver and worker usage at one moment."""

    at: float
    driver: Usage
    workers: dict[str, Usage] = field(default_factory=dict)


class RunMetrics(NodeExecutionHook):
    """Collects StepMetrics for every node and the whole run's totals.

    `worker_usage` returns `process_usage()` of every Dask worker keyed by address
    (distributed mode, through `DistributedBackend.run_on_workers`), or nothing. Create it once the backend is up: the run's worker
    figures are measured from that moment.
    """

    def __init__(self, worker_usage: Callable[[], dict[str, Usage]] | None = None) -> None:
        self._worker_usage = worker_usage
        self.steps: dict[str, StepMetrics] = {}
        self._before: dict[str, _Sample] = {}
        self.first = self.last = self._sample()

    def run_before_node_execution(self, *, node_name: str, node_kwargs: Mapping[str, Any] | None = None,
                                  **future_kwargs: Any) -> None:
        # The sample after the previous step is this step's start: nothing runs between.
        self._before[node_name] = self._sample(workers=False)
        self._before[node_name].workers = self.last.workers
        self.steps[node_name] = StepMetrics(node_name, inputs=tuple(node_kwargs or ()))

    def run_after_node_execution(self, *, node_name: str, result: Any = None, **future_kwargs: Any) -> None:
        before = self._before.pop(node_name, None)
        step = self.steps.get(node_name)
        if before is None or step is None:
            return
        after = self._sample()
        step.wall_s = after.at - before.at
        step.cpu_s = after.driver["cpu_s"] - before.driver["cpu_s"]
        step.driver_peak_rss_bytes = int(after.driver["peak_rss_bytes"])
        step.driver_peak_increase_bytes = int(after.driver["peak_rss_bytes"] - before.driver["peak_rss_bytes"])
        step.bytes_read = int(after.driver["bytes_read"] - before.driver["bytes_read"])
        step.lazy = _is_lazy(result)
        step.rows_out = None if step.lazy else _row_count(result)
        if self._worker_usage is not None:
            step.workers_cpu_s = sum(_deltas(before.workers, after.workers, "cpu_s").values())
            step.workers_bytes_read = int(sum(_deltas(before.workers, after.workers, "bytes_read").values()))
            step.workers_peak_rss_bytes = int(sum(w["peak_rss_bytes"] for w in after.workers.values()))
        self.last = after

    def _sample(self, workers: bool = True) -> _Sample:
        sample = _Sample(time.perf_counter(), process_usage())
        if workers and self._worker_usage is not None:
            sample.workers = self._worker_usage()
        return sample

    def summary(self, rows_in: int, rows_out: int, input_bytes: int, wall_s: float, cpu_start_s: float,
                known_rows: Mapping[str, int] = ()) -> dict:
        """The run's metrics and every step's, as written to run_report.json.

        `rows_in`/`rows_out` are the run's raw and kept rows; `known_rows` gives row counts
        of lazy steps that the run learned later (e.g. the raw rows of the read step);
        `cpu_start_s` is the driver's CPU seconds when the run began.
        """
        known = {name: step.rows_out for name, step in self.steps.items() if step.rows_out is not None}
        known.update(known_rows)
        driver = process_usage()
        workers = self.last.workers
        workers_cpu = _deltas(self.first.workers, workers, "cpu_s")
        workers_read = _deltas(self.first.workers, workers, "bytes_read")
        driver_cpu = driver["cpu_s"] - cpu_start_s
        run = {
            "wall_s": round(wall_s, 3),
            "cpu_s": {
                "driver": round(driver_cpu, 3),
                "workers": round(sum(workers_cpu.values()), 3),
                "total": round(driver_cpu + sum(workers_cpu.values()), 3),
            },
            "peak_memory_bytes": {
                "driver": int(driver["peak_rss_bytes"]),
                "workers": {address: int(w["peak_rss_bytes"]) for address, w in sorted(workers.items())},
                "workers_total": int(sum(w["peak_rss_bytes"] for w in workers.values())),
            },
            "rows_in": rows_in,
            "rows_out": rows_out,
            "rows_per_second": round(rows_in / wall_s, 1) if wall_s > 0 else None,
            "bytes_read": {
                "input_files": input_bytes,
                "driver": int(driver["bytes_read"] - self.first.driver["bytes_read"]),
                "workers": int(sum(workers_read.values())),
            },
            "workers": {
                address: {
                    "cpu_s": round(workers_cpu.get(address, 0.0), 3),
                    "peak_rss_bytes": int(w["peak_rss_bytes"]),
                    "peak_rss_bytes_at_start": int(self.first.workers.get(address, {}).get("peak_rss_bytes", 0)),
                    "bytes_read": int(workers_read.get(address, 0)),
                }
                for address, w in sorted(workers.items())
            },
        }
        return {"run": run, "steps": {name: _step_report(step, known) for name, step in self.steps.items()}}


def _step_report(step: StepMetrics, known_rows: Mapping[str, int]) -> dict:
    rows_out = known_rows.get(step.name, step.rows_out)
    inputs = [known_rows[name] for name in step.inputs if name in known_rows]
    rows_in = max(inputs) if inputs else None
    processed = rows_in if rows_in is not None else rows_out
    report = {
        "wall_s": round(step.wall_s, 6),
        "cpu_s": round(step.cpu_s, 6),
        "driver_peak_rss_bytes": step.driver_peak_rss_bytes,
        "driver_peak_increase_bytes": step.driver_peak_increase_bytes,
        "bytes_read": step.bytes_read,
        "rows_in": rows_in,
        "rows_out": rows_out,
        "rows_per_second": (round(processed / step.wall_s, 1)
                            if processed is not None and not step.lazy and step.wall_s >= MEASURABLE_S else None),
        "lazy": step.lazy,
    }
    if step.workers_cpu_s is not None:
        report.update(workers_cpu_s=round(step.workers_cpu_s, 6), workers_bytes_read=step.workers_bytes_read,
                      workers_peak_rss_bytes=step.workers_peak_rss_bytes)
    return report


def _deltas(before: Mapping[str, Usage], after: Mapping[str, Usage], key: str) -> dict[str, float]:
    """Per worker, how much a counter grew; a worker that restarted (its counter went
    down) or joined counts from zero."""
    deltas = {}
    for address, usage in after.items():
        start = before.get(address, {}).get(key, 0)
        deltas[address] = usage[key] - start if usage[key] >= start else usage[key]
    return deltas


def _is_lazy(value: Any) -> bool:
    """A deferred frame (a Dask collection, pandas mode's partition stream): computing it
    is left to the step that reduces it."""
    from engine.execution.frames import PartitionStream, is_lazy

    return is_lazy(value) or isinstance(value, PartitionStream)


def _row_count(value: Any) -> int | None:
    """Rows of a table-like result (a DataFrame, Series or list); None for anything else."""
    import pandas as pd

    if isinstance(value, (pd.DataFrame, pd.Series, list)):
        return len(value)
    return None
