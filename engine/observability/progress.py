"""Progress of a run: how far it is, how fast it goes, when it will be done.

`RunProgress` is a Hamilton lifecycle adapter (`run_pipeline(config, adapters=[...])`)
that follows a run in every mode and shows it one of two ways:

- on a terminal (stdout is a TTY), a live line redrawn in place once the run has taken
  `delay` seconds: `partitions 12/40 · tasks 310/930 · ~1,200,000 rows/s · ETA 0:14`;
- otherwise, a plain `progress: ...` log line after `delay` seconds, then every
  `interval` seconds, and a last one with the final counts when the dataflow ends,
  through logging (console and log file); nothing is ever written to stdout then.

Where the numbers come from, per mode (nothing is counted per row):

- pandas: partitions read of those in the plan (the backend tells of each read; a
  partition is read, validated and reduced before the next), and the dataflow's steps.
- dask (threads): a dask callback counts finished tasks and finished read partitions
  (the root tasks whose keys carry the read prefix, one per read task of the plan).
- distributed: Dask's own progress feed from the scheduler (distributed's
  MultiProgressBar, keys grouped by prefix), started for every computation the backend
  submits; the same counts as in dask mode, from the cluster.

Rows per second are estimated from the input: the expected rows of the input (Parquet
metadata, or the line density of the first CSV file's first 64 KiB times its size),
times the share of read partitions finished, over the time the computation has run.
Hence the `~`. ETA is the time so far times the partitions left over those done.
"""

from __future__ import annotations

import logging
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from hamilton.lifecycle import GraphExecutionHook, NodeExecutionHook

from engine.observability.logs import ConsoleHandler
from engine.sources.plan import ReadPlan

log = logging.getLogger("engine.progress")  # the name in log lines, kept from before the package layout

DISPLAYS = ("auto", "log", "off")
#: Dask names a fused per-partition task after its first (root) expression: the read.
READ_KEY_PREFIX = "read"
_SAMPLE_BYTES = 64 * 1024
_REDRAW_SECONDS = 0.25


@dataclass
class ProgressState:
    """What is known about a running run; updated by the feeders, read by the display."""

    mode: str
    partitions_total: int
    expected_rows: int | None
    started: float = field(default_factory=time.monotonic)
    step: str | None = None
    steps_done: int = 0
    steps_total: int = 0
    partitions_done: int | None = None
    tasks_done: int | None = None
    tasks_total: int | None = None
    compute_started: float | None = None
    compute_finished: float | None = None

    def describe(self, now: float | None = None) -> str:
        """One line: where the run is, its speed and ETA, time elapsed."""
        now = time.monotonic() if now is None else now
        computing = self.compute_started is not None and self.compute_finished is None
        parts = []
        if not computing or (self.partitions_done is None and self.tasks_done is None):
            parts.append(f"step {self.steps_done + (self.step is not None)}/{self.steps_total}"
                         + (f" {self.step}" if self.step else ""))
        if self.partitions_done is not None:
            share = self.partitions_done / self.partitions_total if self.partitions_total else 1.0
            parts.append(f"partitions {self.partitions_done}/{self.partitions_total} ({share:.0%})")
        if self.tasks_done is not None and self.tasks_total:
            parts.append(f"tasks {self.tasks_done}/{self.tasks_total}")
        rate, eta = self.rate_and_eta(now)
        if rate is not None:
            parts.append(f"~{rate:,.0f} rows/s")
        if computing and eta is not None:
            parts.append(f"ETA {_clock(eta)}")
        elif computing and self.partitions_done and self.partitions_done == self.partitions_total:
            parts.append("finishing")
        parts.append(f"{_clock(now - self.started)} elapsed")
        return f"[{self.mode}] " + " · ".join(parts)

    def start_computing(self) -> None:
        self.compute_started, self.compute_finished = time.monotonic(), None
        self.partitions_done = self.tasks_done = self.tasks_total = None

    def rate_and_eta(self, now: float) -> tuple[float | None, float | None]:
        """Estimated rows per second, and seconds left (None while unknown or done)."""
        if self.compute_started is None or not self.partitions_done or not self.partitions_total:
            return None, None
        running = max((self.compute_finished or now) - self.compute_started, 1e-6)
        rate = None
        if self.expected_rows is not None:
            rate = self.expected_rows * self.partitions_done / self.partitions_total / running
        left = self.partitions_total - self.partitions_done
        return rate, (running * left / self.partitions_done if left else None)


def expected_rows(plan: ReadPlan) -> int | None:
    """About how many rows the input has: Parquet metadata counts, CSV line density
    (unknown for objects on object storage and for a source plug-in's datasets: progress
    makes no request of its own)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if any(file.on_object_storage or file.reader is not None for file in plan.files):
        return None
    total, density = 0, None
    for file in plan.files:
        try:
            if file.format == "parquet":
                total += pq.ParquetFile(file.path).metadata.num_rows
                continue
            if density is None:
                with pa.input_stream(file.path, compression=file.compression) as stream:
                    sample = stream.read(_SAMPLE_BYTES)
                density = sample.count(b"\n") / max(len(sample), 1)
            total += round(file.text_bytes * density)
        except (OSError, pa.ArrowException):  # the run itself reports unreadable files
            return None
    return total


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _is_partition_group(prefix: str, count: int, partitions: int) -> bool:
    return prefix.startswith(READ_KEY_PREFIX) and count == partitions


class LiveLine:
    """A status line redrawn in place on the terminal (stdout)."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stdout
        self.text = ""
        self._lock = threading.RLock()

    def show(self, text: str) -> None:
        width = shutil.get_terminal_size((100, 20)).columns - 1
        with self._lock:
            self.text = text[:width]
            self._draw()
            ConsoleHandler.live_line = self

    def clear(self) -> None:
        with self._lock:
            if self.text:
                self.stream.write("\r\033[2K")
                self.stream.flush()
            self.text = ""
            if ConsoleHandler.live_line is self:
                ConsoleHandler.live_line = None

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Erase the line while something else is written to the terminal, then redraw it."""
        with self._lock:
            if self.text:
                self.stream.write("\r\033[2K")
                self.stream.flush()
            try:
                yield
            finally:
                self._draw()

    def _draw(self) -> None:
        if self.text:
            self.stream.write("\r\033[2K" + self.text)
            self.stream.flush()


class _Reporter(threading.Thread):
    """Shows the state from `delay` seconds on: a live line redrawn four times a second,
    or a log line every `interval` seconds; and, once stopped, the final state (the
    last log line of the run, or a last frame before the live line is erased)."""

    def __init__(self, state: ProgressState, live: bool, delay: float, interval: float) -> None:
        super().__init__(name="engine-progress", daemon=True)
        self.state, self.delay, self.interval = state, delay, interval
        self.line = LiveLine() if live else None
        self.shown = False
        self._stop_requested = threading.Event()

    def run(self) -> None:
        if self._stop_requested.wait(self.delay):
            return
        while True:
            self._show()
            if self._stop_requested.wait(_REDRAW_SECONDS if self.line else self.interval):
                return

    def _show(self) -> None:
        text = self.state.describe()
        if self.line is not None:
            self.line.show(text)
        else:
            log.info("progress: %s", text)
        self.shown = True

    def stop(self) -> None:
        self._stop_requested.set()
        self.join()
        if self.shown:
            self._show()
        if self.line is not None:
            self.line.clear()


class _ThreadedDaskFeed:
    """Counts finished tasks and read partitions of local (threaded) dask computations."""

    def __init__(self, state: ProgressState) -> None:
        from dask.callbacks import Callback

        self.state = state
        self._read_keys: set = set()
        self._callback = Callback(start_state=self._start_state, posttask=self._posttask, finish=self._finish)

    def __enter__(self) -> _ThreadedDaskFeed:
        self._callback.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._callback.__exit__(*exc_info)

    def _start_state(self, graph: Any, scheduler_state: Any) -> None:
        from dask.utils import key_split

        groups: dict[str, set] = {}
        for key in graph:
            groups.setdefault(key_split(key), set()).add(key)
        partitions = self.state.partitions_total
        self._read_keys = next((keys for prefix, keys in groups.items()
                                if _is_partition_group(prefix, len(keys), partitions)), set())
        self.state.start_computing()
        self.state.tasks_total, self.state.tasks_done = len(graph), 0
        self.state.partitions_done = 0 if self._read_keys else None

    def _posttask(self, key: Any, result: Any, graph: Any, scheduler_state: Any, worker_id: Any) -> None:
        self.state.tasks_done = (self.state.tasks_done or 0) + 1
        if key in self._read_keys:
            self.state.partitions_done = (self.state.partitions_done or 0) + 1

    def _finish(self, graph: Any, scheduler_state: Any, failed: bool) -> None:
        self.state.compute_finished = time.monotonic()


class _PandasFeed:
    """pandas mode: counts the partitions the backend has read (each is processed before
    the next is read, so all but the last are done)."""

    def __init__(self, state: ProgressState) -> None:
        self.state = state

    def __call__(self, task: Any) -> None:
        if self.state.compute_started is None:
            self.state.start_computing()
        self.state.partitions_done = (self.state.partitions_done or 0) + 1


class _DistributedFeed:
    """Dask's own progress feed from the scheduler for each computation submitted."""

    def __init__(self, state: ProgressState) -> None:
        self.state = state
        self._bars: list[Any] = []

    def __call__(self, client: Any, futures: list) -> None:
        from distributed.diagnostics.progressbar import MultiProgressBar

        state = self.state

        class Feed(MultiProgressBar):
            def _draw_bar(self, remaining: dict, all: dict, status: str = "", **kwargs: Any) -> None:
                state.tasks_total = sum(all.values())
                state.tasks_done = state.tasks_total - sum(remaining.values())
                read = next((prefix for prefix, count in all.items()
                             if _is_partition_group(prefix, count, state.partitions_total)), None)
                state.partitions_done = None if read is None else all[read] - remaining.get(read, 0)
                if status in ("finished", "error"):
                    state.compute_finished = time.monotonic()

        state.start_computing()
        bar = Feed(futures, scheduler=client.scheduler.address, interval="200ms", complete=True)
        self._bars.append(bar)

        async def listen() -> None:
            try:
                await bar.listen()
            except Exception as error:  # the feed is informational: a closed comm ends it quietly
                log.debug("progress feed from the scheduler ended: %s", error)

        client.loop.add_callback(listen)

    def close(self) -> None:
        for bar in self._bars:
            comm = getattr(bar, "comm", None)
            if comm is not None:
                comm.abort()
        self._bars.clear()


class RunProgress(NodeExecutionHook, GraphExecutionHook):
    """Follows a run's dataflow and shows its progress (see the module docstring).

    `display`: auto (a live line when stdout is a terminal, log lines otherwise), log
    (log lines only), off.
    """

    def __init__(self, display: str = "auto", delay: float = 2.0, interval: float = 10.0) -> None:
        if display not in DISPLAYS:
            raise ValueError(f"display must be one of {', '.join(DISPLAYS)}, not {display!r}")
        self.display, self.delay, self.interval = display, delay, interval
        self.state: ProgressState | None = None
        self._reporter: _Reporter | None = None
        self._feed: Any = None
        self._backend: Any = None
        self._step_started = time.monotonic()

    def run_before_graph_execution(self, *, inputs: dict[str, Any], execution_path: Any = (),
                                   **future_kwargs: Any) -> None:
        from engine.execution.backends import DaskBackend, DistributedBackend, PandasBackend

        plan: ReadPlan | None = inputs.get("read_plan")
        backend = inputs.get("backend")
        mode = getattr(backend, "name", "pandas")
        previous = self.state
        self.state = ProgressState(mode=mode, partitions_total=len(plan.tasks) if plan else 0,
                                   expected_rows=expected_rows(plan) if plan else None)
        self.state.steps_total = len(list(execution_path))
        if previous is not None and previous.partitions_total == self.state.partitions_total:
            # A run executes its dataflow in parts (the one pass, then the rest): one progress.
            for name in ("started", "steps_done", "partitions_done", "tasks_done", "tasks_total",
                         "compute_started", "compute_finished"):
                setattr(self.state, name, getattr(previous, name))
            self.state.steps_total += previous.steps_done
        if isinstance(backend, DistributedBackend):
            self._feed, self._backend = _DistributedFeed(self.state), backend
            backend.compute_observers.append(self._feed)
        elif isinstance(backend, DaskBackend):
            self._feed = _ThreadedDaskFeed(self.state).__enter__()
        elif isinstance(backend, PandasBackend):
            self._feed, self._backend = _PandasFeed(self.state), backend
            backend.partition_observers.append(self._feed)
        if self.display != "off":
            live = self.display == "auto" and _stdout_is_terminal()
            self._reporter = _Reporter(self.state, live, self.delay, self.interval)
            self._reporter.start()

    def run_before_node_execution(self, *, node_name: str, **future_kwargs: Any) -> None:
        self._step_started = time.monotonic()
        if self.state is not None:
            self.state.step = node_name

    def run_after_node_execution(self, *, node_name: str, success: bool = True, **future_kwargs: Any) -> None:
        if self.state is not None:
            self.state.steps_done += 1
            self.state.step = None
            log.debug("step %d/%d %s %s in %.3f s", self.state.steps_done, self.state.steps_total, node_name,
                      "done" if success else "failed", time.monotonic() - self._step_started)

    def run_after_graph_execution(self, **future_kwargs: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop the display and the feeds (idempotent; after success, error or Ctrl-C)."""
        if self._reporter is not None:
            self._reporter.stop()
            self._reporter = None
        if isinstance(self._feed, _ThreadedDaskFeed):
            self._feed.__exit__(None, None, None)
        elif isinstance(self._feed, _DistributedFeed):
            self._feed.close()
            if self._feed in self._backend.compute_observers:
                self._backend.compute_observers.remove(self._feed)
        elif isinstance(self._feed, _PandasFeed) and self._feed in self._backend.partition_observers:
            self._backend.partition_observers.remove(self._feed)
        self._feed = self._backend = None


def _stdout_is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False
