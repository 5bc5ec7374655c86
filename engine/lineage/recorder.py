"""A run's lineage, attached to the Hamilton driver as a lifecycle adapter.

The run calls `start` once the input is known, `complete` once the outputs are
published, and `fail` on any error (an input error before the graph ran included), all
under one runId. As a Hamilton adapter it also notes which node failed and, when
`node_events` is on, emits a RUNNING event as each node finishes; it keeps the run's
data-quality figures as their node finishes, for the inputs' quality assertions.
"""

from __future__ import annotations

import logging
from typing import Any

from hamilton.lifecycle import GraphExecutionHook, NodeExecutionHook

from engine.lineage import events
from engine.lineage.delivery import LineageDelivery

log = logging.getLogger(__name__)

#: The node whose value holds the run's data-quality figures and alerts.
QUALITY_NODE = "data_quality_metrics"


class LineageRecorder(GraphExecutionHook, NodeExecutionHook):
    """Emits the START, RUNNING, COMPLETE and FAIL events of one run."""

    def __init__(self, context: events.RunContext, delivery: LineageDelivery, node_events: bool = False) -> None:
        self.context = context
        self.context.output_dir = self.context.output_dir or str(delivery.output_dir)
        self.delivery = delivery
        self.node_events = node_events
        self.failed_node: str | None = None
        self._started = False

    def start(self) -> None:
        self._emit(events.start_event(self.context))
        self._started = True

    def complete(self) -> None:
        self._emit(events.complete_event(self.context))

    def fail(self, error: BaseException) -> None:
        if not self._started:
            self.start()
        if self.failed_node:
            self.context.metrics = {**self.context.metrics, "failed_node": self.failed_node}
        self._emit(events.fail_event(self.context, error))

    def _emit(self, event: Any) -> None:
        try:
            self.delivery.emit(event)
        except Exception as error:  # lineage must never fail the run
            log.warning("lineage event could not be recorded: %s", error)

    # Hamilton lifecycle hooks
    def run_before_graph_execution(self, **future_kwargs: Any) -> None:
        return None

    def run_after_graph_execution(self, **future_kwargs: Any) -> None:
        return None

    def run_before_node_execution(self, **future_kwargs: Any) -> None:
        return None

    def run_after_node_execution(self, *, node_name: str, success: bool, result: Any = None,
                                 **future_kwargs: Any) -> None:
        if success and node_name == QUALITY_NODE and isinstance(result, dict):
            self.context.quality = result  # its alerts and rule counts become the inputs' assertions
        if not success:
            self.failed_node = self.failed_node or node_name
        elif self.node_events:
            self._emit(events.running_event(self.context, node_name))
