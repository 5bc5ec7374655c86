"""The file lock: flock(2) between processes, on a lock file or on a folder.

A lock is exclusive (one holder) or shared (many holders, no exclusive one), and taken
blocking (wait for it) or not (BlockingIOError at once if it is held elsewhere). The
kernel releases it when its descriptor is closed, so also when the process ends, however
it ends. Lock files and folders are opened without following a symbolic link.

Who locks what:

- `<output>/.lock`: the run writing to an output folder (exclusive, not blocking);
- `<output>/.runs/<id>`: a reader pinning a published run (shared) and the run removing
  an old one (exclusive, not blocking);
- `<backups>/.lock`: a backup being named and a prune (exclusive);
- `<lineage>/.lock`: lineage delivery (exclusive);
- every appended file, for one line (exclusive; engine.files.append).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.files.opening import open_regular_file


def lock(fd: int, *, shared: bool = False, blocking: bool = True) -> None:
    """Take the lock on the open descriptor `fd` (BlockingIOError when `blocking` is false
    and another descriptor holds a conflicting lock)."""
    operation = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    fcntl.flock(fd, operation if blocking else operation | fcntl.LOCK_NB)


def unlock(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)


@contextmanager
def holding(fd: int, *, shared: bool = False, blocking: bool = True) -> Iterator[None]:
    """The lock on the open descriptor `fd`, held while the block runs."""
    lock(fd, shared=shared, blocking=blocking)
    try:
        yield
    finally:
        unlock(fd)


def open_lock_file(path: Path | str, what: str = "the lock file") -> int:
    """A read-write descriptor on the lock file `path`, created with the policy's file
    mode if missing; never through a link (ConfigurationError naming `what`)."""
    return open_regular_file(path, os.O_RDWR, None, what, "locks")


def open_folder(path: Path | str) -> int:
    """A descriptor on the folder `path` (not through a link at `path`) to lock it."""
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)


@contextmanager
def file_lock(path: Path | str, *, shared: bool = False, blocking: bool = True, folder: bool = False,
              what: str = "the lock file") -> Iterator[int]:
    """Hold the lock on `path` while the block runs: a lock file (created if missing, see
    `open_lock_file`) or, with `folder`, an existing folder. Yields the descriptor."""
    fd = open_folder(path) if folder else open_lock_file(path, what)
    try:
        lock(fd, shared=shared, blocking=blocking)
        yield fd
    finally:
        os.close(fd)  # releases the lock
