"""What a run leaves for the people and systems that watch it, beyond its data outputs:
the run history line, the Prometheus metrics (text file and Pushgateway) and the HTML
report.

The report and the text file (when it lives in the output directory) are staged with
the other outputs, so they appear atomically and a failed run leaves the previous ones
in place. The history line is appended when the run ends, failed and interrupted runs
included, and a run that failed or was interrupted pushes its status to the Pushgateway.
The success rate (report, text file, Pushgateway) is over the last
`metrics.success_rate_window` runs that ran to an end: interrupted runs are left out.
None of this can fail a run or hide its error: a history or export that cannot be
written is logged as a warning.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.config import MetricsConfig
from engine.errors import QualityAlertError
from engine.observability.history import (INTERRUPTED, append_history, finished_runs, history_entry, history_path,
                                          read_history, success_rate)
from engine.observability.html_report import render_report
from engine.observability.prometheus_export import (exposition, failure_registry, push, run_registry,
                                                    textfile_path, write_textfile)
from engine.outputs.publication import StagedOutputs

log = logging.getLogger("engine.run_monitor")  # the name in log lines, kept from before the package layout

REPORT_NAME = "report.html"


class RunMonitor:
    """Records one run: create it when the run starts, call `stage` while its outputs are
    staged, then `succeeded` or `failed` once it has ended."""

    def __init__(self, settings: MetricsConfig, output_dir: Path, run_id: str, started_at: dt.datetime) -> None:
        self.settings = settings
        self.output_dir = output_dir
        self.run_id = run_id
        self.started_at = started_at
        self.history_path = history_path(settings.history, output_dir)
        self.textfile = textfile_path(settings.prometheus_textfile, output_dir)
        self.mode: str | None = None
        self.rows: Mapping[str, int] | None = None
        self._clock = time.perf_counter()
        self._registry: Any = None

    def stage(self, staged: StagedOutputs, results: Mapping[str, Any], report: Mapping[str, Any],
              fails_on_alert: bool) -> None:
        """Write report.html (and the text file, when it is in the output directory) among
        the staged outputs. `fails_on_alert`: the run will end with a data-quality failure
        after publishing, and is shown as failed."""
        self.mode, self.rows = report["mode"], dict(report["rows"])
        error = QualityAlertError("alert") if fails_on_alert else None
        this_run = history_entry(self.run_id, self.started_at, self.mode, time.perf_counter() - self._clock,
                                 self.rows, error)
        history = [*self._read_history(), this_run]
        window = finished_runs(history, self.settings.success_rate_window)
        rate = success_rate(window)
        if self.settings.html_report:
            staged.path(REPORT_NAME).write_text(render_report(results, report, history, rate), encoding="utf-8")
        self._registry = run_registry(report, results["data_quality_metrics"]["rejected_by_reason"],
                                      this_run["exit_code"], rate, len(window), self.settings.job)
        if self._textfile_is_output():
            staged.path(self.textfile.name).write_bytes(exposition(self._registry))

    def succeeded(self) -> None:
        """The run published its outputs and ended well."""
        self._append(None)
        self._export_published_run()

    def failed(self, error: BaseException, mode: str | None = None) -> None:
        """The run (in `mode`, when it got as far as choosing one) ended with `error`, or
        was interrupted: its history line and, when configured, a push of its status (of
        all its metrics when it had published, as a data-quality failure does)."""
        self.mode = self.mode or mode
        entry = self._append(error)
        if isinstance(error, QualityAlertError) and self._registry is not None:
            self._export_published_run()
        elif self.settings.pushgateway and entry is not None:
            window = finished_runs(self._read_history(), self.settings.success_rate_window)
            registry = failure_registry(entry["exit_code"], success_rate(window), len(window), self.settings.job,
                                        interrupted=entry["status"] == INTERRUPTED)
            push(registry, self.settings.pushgateway, self.settings.job, self.settings.push_timeout)

    def _export_published_run(self) -> None:
        if self._registry is None:
            return
        if self.textfile is not None and not self._textfile_is_output():
            try:
                write_textfile(self._registry, self.textfile)
            except OSError as error:
                log.warning("%s: Prometheus text file not written (%s)", self.textfile, error.strerror or error)
        if self.settings.pushgateway:
            push(self._registry, self.settings.pushgateway, self.settings.job, self.settings.push_timeout)

    def _textfile_is_output(self) -> bool:
        return self.textfile is not None and self.textfile.parent.resolve() == self.output_dir.resolve()

    def _append(self, error: BaseException | None) -> dict | None:
        entry = history_entry(self.run_id, self.started_at, self.mode, time.perf_counter() - self._clock, self.rows,
                              error)
        try:
            append_history(self.history_path, entry)
        except OSError as problem:
            log.warning("%s: run not recorded in the history (%s)", self.history_path, problem.strerror or problem)
            return None
        return entry

    def _read_history(self) -> list[dict]:
        try:
            return read_history(self.history_path)
        except OSError as problem:
            log.warning("%s: run history not readable (%s)", self.history_path, problem.strerror or problem)
            return []
