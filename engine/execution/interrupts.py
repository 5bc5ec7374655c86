"""Ctrl-C (SIGINT) and SIGTERM during a run: stop it, and make sure it stays stopped.

The first SIGINT raises KeyboardInterrupt as usual, and is also remembered. SIGTERM (what
`kill`, systemd and Kubernetes send) is handled the same way: it raises `Terminated`, a
KeyboardInterrupt, so the run ends exactly as after Ctrl-C (FAIL lineage event, history
line, audit record, cluster teardown), and the CLI exits 143 (128 + 15) instead of 130.
Libraries deep in a run (cluster start-up, process spawning) sometimes catch every
exception; the remembered signal is raised again at the next checkpoint (after each
dataflow node, while waiting for the cluster, before publishing), so an interrupted run
never goes on to publish outputs.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hamilton.lifecycle import NodeExecutionHook

from engine.errors import INTERRUPTED_EXIT_CODE  # 128 + SIGINT

TERMINATED_EXIT_CODE = 143  # 128 + SIGTERM


class Terminated(KeyboardInterrupt):
    """The process was sent SIGTERM: handled like Ctrl-C, reported with exit status 143."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*(args or ("terminated by SIGTERM",)))


def exit_code_of_interrupt(error: BaseException) -> int:
    """130 for Ctrl-C (KeyboardInterrupt), 143 for SIGTERM (Terminated)."""
    return TERMINATED_EXIT_CODE if isinstance(error, Terminated) else INTERRUPTED_EXIT_CODE


_requested = threading.Event()
_terminated = threading.Event()
#: SIGTERM has already raised Terminated in this process: a repeated SIGTERM must not
#: break off the teardown and records the first one started
_term_raised = threading.Event()


def raise_if_interrupted() -> None:
    """A checkpoint: raise KeyboardInterrupt (Terminated after SIGTERM) if a signal
    stopped this run."""
    if _terminated.is_set():
        raise Terminated()
    if _requested.is_set():
        raise KeyboardInterrupt


def on_terminate(signum: int, frame: Any) -> None:
    """A SIGTERM handler: remember it and raise Terminated in the main thread."""
    _requested.set()
    _terminated.set()
    if _term_raised.is_set():
        return
    _term_raised.set()
    raise Terminated()


@contextmanager
def terminable() -> Iterator[None]:
    """SIGTERM raises Terminated for the duration of the block (a whole CLI command),
    so a command killed politely still writes its audit record; main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, on_terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def interruptible() -> Iterator[None]:
    """Remember SIGINT and SIGTERM for the duration of a run (main thread only; elsewhere
    a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_interrupt(signum: int, frame: Any) -> None:
        _requested.set()
        signal.default_int_handler(signum, frame)

    _requested.clear()
    _terminated.clear()
    previous = signal.signal(signal.SIGINT, on_interrupt)
    previous_term = signal.signal(signal.SIGTERM, on_terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)
        _requested.clear()
        _terminated.clear()


@contextmanager
def deferred() -> Iterator[None]:
    """SIGINT and SIGTERM are remembered but not raised inside the block, and raised when
    it ends: for work that must not be cut off half-way, such as starting a LocalCluster
    (cut off inside its constructor, the cluster is never returned, so nothing can close
    it, and its nannies go on restarting workers after the run has ended). Main thread
    only; elsewhere a plain block."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def remember(signum: int, frame: Any) -> None:
        _requested.set()
        if signum == signal.SIGTERM:
            _terminated.set()

    previous = {signum: signal.signal(signum, remember) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    raise_if_interrupted()


class InterruptCheckpoint(NodeExecutionHook):
    """Checks for a remembered Ctrl-C or SIGTERM after every dataflow node."""

    def run_before_node_execution(self, **future_kwargs: Any) -> None:
        raise_if_interrupted()

    def run_after_node_execution(self, **future_kwargs: Any) -> None:
        raise_if_interrupted()
