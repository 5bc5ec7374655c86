"""Ctrl-C during a run: stop it, and make sure it stays stopped.

The first SIGINT raises KeyboardInterrupt as usual, and is also remembered. Libraries
deep in a run (cluster start-up, process spawning) sometimes catch every exception; the
remembered interrupt is raised again at the next checkpoint (after each dataflow node,
while waiting for the cluster, before publishing), so an interrupted run never goes on
to publish outputs.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hamilton.lifecycle import NodeExecutionHook

_requested = threading.Event()


def raise_if_interrupted() -> None:
    """A checkpoint: raise KeyboardInterrupt if Ctrl-C was pressed during this run."""
    if _requested.is_set():
        raise KeyboardInterrupt


@contextmanager
def interruptible() -> Iterator[None]:
    """Remember SIGINT for the duration of a run (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_interrupt(signum: int, frame: Any) -> None:
        _requested.set()
        signal.default_int_handler(signum, frame)

    _requested.clear()
    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _requested.clear()


class InterruptCheckpoint(NodeExecutionHook):
    """Checks for a remembered Ctrl-C after every dataflow node."""

    def run_before_node_execution(self, **future_kwargs: Any) -> None:
        raise_if_interrupted()

    def run_after_node_execution(self, **future_kwargs: Any) -> None:
        raise_if_interrupted()
