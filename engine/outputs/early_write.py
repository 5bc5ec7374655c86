"""Writing a large output while the rest of the dataflow still runs.

The quarantine's Parquet encoding takes a few tenths of a second for a year of daily
files (1.5 million rejected rows), in Arrow code that releases the GIL. It need not wait
for the analysis, the other outputs and the report: `EarlyWrite` is a Hamilton lifecycle
adapter that, as soon as the node that produces the output has run, writes it into the
run's staging folder on a thread, and the run waits for it only before publishing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from hamilton.lifecycle import NodeExecutionHook


class EarlyWrite(NodeExecutionHook):
    """Calls `write(pick(result))` on a thread once node `node` has succeeded.

    `wait(value)` ends the write and raises its error, if any; when the node never ran
    through this driver (its value came from elsewhere), it writes `value` itself. Used as
    a context manager, leaving the block waits for a write still in flight (so a failed
    run's staging folder is never removed under it)."""

    def __init__(self, node: str, pick: Callable[[Any], Any], write: Callable[[Any], None]) -> None:
        self.node = node
        self.pick = pick
        self.write = write
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def run_before_node_execution(self, **future_kwargs: Any) -> None:
        return None

    def run_after_node_execution(self, *, node_name: str, success: bool, result: Any = None,
                                 **future_kwargs: Any) -> None:
        if node_name == self.node and success and self._thread is None:
            value = self.pick(result)
            self._thread = threading.Thread(target=self._write, args=(value,), name=f"write-{self.node}")
            self._thread.start()

    def _write(self, value: Any) -> None:
        try:
            self.write(value)
        except BaseException as error:  # handed to `wait`, in the run's thread
            self._error = error

    def wait(self, value: Any) -> None:
        if self._thread is None:
            self.write(value)
            return
        self._thread.join()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> EarlyWrite:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._thread is not None:
            self._thread.join()
