"""Run metrics in the Prometheus text format, for cluster jobs.

A run that publishes its outputs writes its metrics as a text file for node-exporter's
textfile collector and, when a Pushgateway is configured, pushes them there. A run that
fails before publishing, or is interrupted, pushes only its status: the text file, like
every output, keeps the last published run's figures (alert on
`engine_run_last_success_timestamp_seconds` growing old). An interrupted run (Ctrl-C,
SIGTERM) is not a failure: it sets `engine_run_last_interrupted_timestamp_seconds`, never
the last failure's time, and is left out of the success ratio. Every metric carries a
`pipeline` label (the configured job name). Pushes add to the job's group (POST), so
metrics of the same name are replaced and the others kept. A Pushgateway that is down
or slow never fails a run: the push is given up with a warning.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest, pushadd_to_gateway

from engine.files import permissions
from engine.files.atomic import write_atomically

log = logging.getLogger("engine.prometheus_export")  # the name in log lines, kept from before the package layout

DEFAULT_TEXTFILE = "metrics.prom"


def textfile_path(setting: str, output_dir: Path) -> Path | None:
    """Where the text file goes: `auto` is `<output>/metrics.prom`, `off` is none."""
    if setting == "off":
        return None
    return output_dir / DEFAULT_TEXTFILE if setting == "auto" else Path(setting)


class _Metrics:
    """Gauges in one registry, each labelled with the pipeline."""

    def __init__(self, pipeline: str) -> None:
        self.registry = CollectorRegistry()
        self.pipeline = pipeline

    def set(self, name: str, documentation: str, value: float | None, **labels: str) -> None:
        self.set_many(name, documentation, [(labels, value)])

    def set_many(self, name: str, documentation: str, samples: list[tuple[Mapping[str, str], float | None]]) -> None:
        samples = [(labels, value) for labels, value in samples if value is not None]
        if not samples:
            return
        gauge = Gauge(name, documentation, ["pipeline", *samples[0][0]], registry=self.registry)
        for labels, value in samples:
            gauge.labels(pipeline=self.pipeline, **labels).set(value)


def run_registry(report: Mapping[str, Any], rejected_by_reason: Mapping[str, int], exit_code: int,
                 success_ratio: float | None, runs_in_window: int, pipeline: str) -> CollectorRegistry:
    """The metrics of a run that published its outputs, from its run report; `exit_code`
    is 0, or the code of the failure it ends with after publishing (a data-quality alert
    configured to fail the run)."""
    m = _Metrics(pipeline)
    now = time.time()
    run = report["metrics"]["run"]
    _status(m, exit_code == 0, exit_code, now, success_ratio, runs_in_window)
    if exit_code == 0:
        m.set("engine_run_last_success_timestamp_seconds", "End of the last successful run (Unix time).", now)
    else:
        m.set("engine_run_last_failure_timestamp_seconds", "End of the last failed run (Unix time).", now)
    m.set("engine_run_info", "The last run: its id, mode and engine version.", 1, run_id=report["run_id"],
          mode=report["mode"], version=report["engine_version"])
    m.set("engine_run_duration_seconds", "Wall time of the last run.", report["duration_s"])
    m.set_many("engine_run_cpu_seconds", "CPU time of the last run, by process kind.",
               [({"process": "driver"}, run["cpu_s"]["driver"]), ({"process": "workers"}, run["cpu_s"]["workers"])])
    peaks = run["peak_memory_bytes"]
    m.set("engine_run_driver_peak_memory_bytes", "Peak resident memory of the driver process.", peaks["driver"])
    m.set_many("engine_run_worker_peak_memory_bytes", "Peak resident memory of each Dask worker process.",
               [({"worker": address}, value) for address, value in peaks["workers"].items()])
    if peaks["workers"]:
        m.set("engine_run_workers_peak_memory_bytes", "Sum of the Dask workers' peak resident memory.",
              peaks["workers_total"])
    m.set_many("engine_run_rows", "Rows of the last run: read (raw), kept (cleaned), rejected.",
               [({"stage": stage}, count) for stage, count in report["rows"].items()])
    m.set_many("engine_run_rejected_rows", "Rows rejected in the last run, by reason.",
               [({"reason": reason}, count) for reason, count in rejected_by_reason.items()])
    m.set("engine_run_rows_per_second", "Raw rows per second of wall time.", run["rows_per_second"])
    m.set("engine_run_input_bytes", "Size of the input files.", run["bytes_read"]["input_files"])
    m.set_many("engine_run_read_bytes", "Bytes read by the run's processes (files and pipes).",
               [({"process": kind}, run["bytes_read"][kind]) for kind in ("driver", "workers")])
    m.set("engine_run_alerts", "Data-quality alerts raised by the last run.", report["alerts"])
    steps = report["metrics"]["steps"]
    m.set_many("engine_step_duration_seconds", "Wall time of each step (dataflow node) of the last run.",
               [({"step": name}, step["wall_s"]) for name, step in steps.items()])
    m.set_many("engine_step_cpu_seconds", "Driver CPU time of each step of the last run.",
               [({"step": name}, step["cpu_s"]) for name, step in steps.items()])
    m.set_many("engine_step_rows_out", "Rows produced by each step of the last run (where known).",
               [({"step": name}, step["rows_out"]) for name, step in steps.items()])
    return m.registry


def failure_registry(exit_code: int, success_ratio: float | None, runs_in_window: int,
                     pipeline: str, interrupted: bool = False) -> CollectorRegistry:
    """The status metrics of a run that failed before publishing, or was `interrupted`."""
    m = _Metrics(pipeline)
    now = time.time()
    _status(m, False, exit_code, now, success_ratio, runs_in_window)
    if interrupted:
        m.set("engine_run_last_interrupted_timestamp_seconds",
              "End of the last interrupted run (Ctrl-C or SIGTERM; Unix time).", now)
    else:
        m.set("engine_run_last_failure_timestamp_seconds", "End of the last failed run (Unix time).", now)
    return m.registry


def _status(m: _Metrics, success: bool, exit_code: int, now: float, success_ratio: float | None,
            runs_in_window: int) -> None:
    m.set("engine_run_success", "1 if the last run succeeded, 0 if it failed or was interrupted.",
          1 if success else 0)
    m.set("engine_run_exit_code", "Exit code of the last run.", exit_code)
    m.set("engine_run_timestamp_seconds", "End of the last run (Unix time).", now)
    m.set("engine_runs_success_ratio",
          "Share of successful runs in the run history window (0 to 1; interrupted runs left out).",
          success_ratio)
    m.set("engine_runs_in_window", "Finished runs in the history window the success ratio is computed over.",
          runs_in_window)


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry in the Prometheus text format."""
    return generate_latest(registry)


def write_textfile(registry: CollectorRegistry, path: Path) -> None:
    """Replace `path` atomically (engine.files.atomic: a hidden temporary file beside it,
    which node-exporter ignores, fsynced, then renamed over it)."""
    permissions.make_dirs(path.parent)
    write_atomically(path, exposition(registry))


def push(registry: CollectorRegistry, gateway: str, job: str, timeout: float) -> bool:
    """Add the registry's metrics to the Pushgateway's group for `job` (metrics of the
    same name are replaced, others kept); False, with a warning, when it did not work."""
    try:
        pushadd_to_gateway(gateway, job=job, registry=registry, timeout=timeout)
    except Exception as error:  # a monitoring outage must not fail the run
        log.warning("metrics not pushed to the Pushgateway at %s: %s", gateway, str(error).strip() or type(error).__name__)
        return False
    log.info("metrics pushed to the Pushgateway at %s (job %s)", gateway, job)
    return True
