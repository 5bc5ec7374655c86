"""Per-step timing of a run, as a Hamilton lifecycle adapter (nodes stay plain).

With Dask collections most nodes only build a lazy graph, so their time is small; the
node that materialises the reductions (`sales_reductions`) carries the real work.
"""

from __future__ import annotations

import time
from typing import Any

from hamilton.lifecycle import NodeExecutionHook


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
