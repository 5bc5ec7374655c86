"""Which allocators a run's buffers come from: memory returned at once, or speed.

pandas mode reads, validates and reduces one partition after another in one process;
each allocates tens of megabytes of short-lived buffers. By default neither Arrow's
mimalloc pool nor glibc's malloc (whose mmap threshold grows with every large buffer
freed) gives that memory back, so resident memory ratchets up to several partitions'
worth. With Arrow on the system allocator and glibc's mmap threshold fixed, a freed
buffer leaves the process at once: at 1M rows the whole process peaks at about 270 MiB
instead of 420 MiB, for about 0.3 s more system CPU time.

The Dask modes run several partitions at once on several threads; there, mapping and
unmapping every large buffer costs far more system time (10M rows: 12.6 s instead of
9.2 s), so they go back to Arrow's mimalloc pool, set to return freed pages at once, and
glibc's default (docs/design.md, Memory).

The command line calls `return_freed_memory` before anything imports pyarrow (the
environment variables only work then); the Dask backends call `favour_speed`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

#: glibc's initial mmap threshold: buffers from this size up are mapped and unmapped whole.
MMAP_THRESHOLD = 128 * 1024
#: glibc's largest dynamic mmap threshold (64-bit), which busy processes reach.
DEFAULT_MAX_MMAP_THRESHOLD = 32 * 2**20
_M_MMAP_THRESHOLD = -3
_POOL = "ARROW_DEFAULT_MEMORY_POOL"
_THRESHOLD = "MALLOC_MMAP_THRESHOLD_"
_set_here: set[str] = set()
#: Arrow's mimalloc pool (mimalloc 3 in pyarrow 26) returns freed pages at once instead
#: of after a delay (at 10M rows 709 MiB instead of 800 MiB at the same speed, measured
#: with pyarrow 20), and commits its arena's memory as it is used rather than eagerly
#: (which, with transparent huge pages, made whole 2 MiB pages resident: at 10M rows in
#: dask mode about 440 MiB instead of 500 MiB, and 208 instead of 240 MiB at 1M rows in
#: pandas mode, at the same speed). Read when mimalloc starts, so set before pyarrow is
#: imported; kept for worker processes.
_MIMALLOC = {"MIMALLOC_PURGE_DELAY": "0", "MIMALLOC_ARENA_EAGER_COMMIT": "0"}


def return_freed_memory() -> None:
    """Return this process's freed buffers to the system (unless the environment already
    chooses the allocators).

    Arrow's pool is chosen for the buffers pyarrow allocates (`pyarrow.set_memory_pool`),
    not through ARROW_DEFAULT_MEMORY_POOL: that variable would also put the buffers Arrow's
    C++ code allocates for itself (Acero's group-bys, for one) on glibc for the whole
    process, which in the Dask modes, after `favour_speed`, held 60-80 MiB more at 10M
    rows (measured: about 480 instead of 550 MiB at the same speed). Those stay on
    mimalloc, which returns freed pages at once (_MIMALLOC)."""
    for name, value in _MIMALLOC.items():
        os.environ.setdefault(name, value)
    if _THRESHOLD not in os.environ:
        os.environ[_THRESHOLD] = str(MMAP_THRESHOLD)
        _set_here.add(_THRESHOLD)
    if _POOL not in os.environ:
        import pyarrow

        pyarrow.set_memory_pool(pyarrow.system_memory_pool())
        _set_here.add(_POOL)
    _mallopt_threshold(int(os.environ[_THRESHOLD]))


def favour_speed() -> None:
    """Undo `return_freed_memory` for this process and the worker processes it starts."""
    if not _set_here:
        return
    if _THRESHOLD in _set_here:
        os.environ.pop(_THRESHOLD, None)
        _mallopt_threshold(DEFAULT_MAX_MMAP_THRESHOLD)
    if _POOL in _set_here:
        import pyarrow

        pyarrow.set_memory_pool(pyarrow.mimalloc_memory_pool())
    _set_here.clear()


def _mallopt_threshold(size: int) -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, size)
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        pass
