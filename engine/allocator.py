"""Handing freed memory back to the operating system between partitions.

The engine processes one partition after another (pandas mode) or a few at a time (Dask
modes); each allocates tens of megabytes of short-lived buffers. By default neither
Arrow's mimalloc pool nor glibc's malloc (whose mmap threshold grows with every large
buffer freed) gives that memory back, so a process's resident memory ratchets up to many
partitions' worth. With Arrow on the system allocator and glibc's mmap threshold fixed,
a freed buffer leaves the process at once, for a few percent more CPU time.

Called at the start of the command line, before pyarrow is imported; the settings travel
to Dask worker processes started from it through the environment.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

#: glibc's initial mmap threshold: buffers from this size up are mapped and unmapped whole.
MMAP_THRESHOLD = 128 * 1024
_M_MMAP_THRESHOLD = -3


def release_freed_memory() -> None:
    """Make this process (and processes it starts) return freed buffers to the system.

    Settings already present in the environment win; nothing happens off glibc.
    """
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", str(MMAP_THRESHOLD))
    if "pyarrow" in sys.modules:  # too late for the environment variable: switch the pool
        import pyarrow

        if os.environ["ARROW_DEFAULT_MEMORY_POOL"] == "system":
            pyarrow.set_memory_pool(pyarrow.system_memory_pool())
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, int(os.environ["MALLOC_MMAP_THRESHOLD_"]))
    except (OSError, AttributeError, ValueError):  # not glibc (musl has no mallopt)
        pass
