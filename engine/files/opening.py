"""Opening the engine's own files without ever following a symbolic link.

The last component of the path is opened with `O_NOFOLLOW`, and anything other than a
regular file (a link, a FIFO, a device) is refused with a ConfigurationError naming the
path: a link planted in an output folder never makes the engine write to, lock, or
change the mode of its target.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from engine.errors import ConfigurationError
from engine.files.permissions import policy


def open_regular_file(path: Path | str, flags: int, mode: int | None, what: str, purpose: str) -> int:
    """A descriptor on the regular file `path`, opened with `flags` (plus `O_CREAT`,
    `O_NOFOLLOW` and `O_CLOEXEC`), created with the policy's file mode (or `mode`) if
    missing. A file this user owns that already exists with another mode is given it
    through the open descriptor (never a chmod by path); another user's shared file keeps
    the mode its owner gave it. `what` names the file in the error ("the run history"),
    `purpose` says what the engine does with such files ("appends to")."""
    wanted = policy().file if mode is None else mode
    flags |= os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
    try:
        fd = os.open(path, flags, wanted)
    except OSError as error:
        if error.errno == errno.ELOOP or os.path.islink(path):
            raise ConfigurationError(f"{path}: {what} is a symbolic link; the engine does not follow links for "
                                     f"the files it {purpose} (remove the link)") from None
        if error.errno == errno.ENXIO:  # a FIFO without a reader (a directory: IsADirectoryError)
            raise ConfigurationError(f"{path}: {what} is not a regular file") from None
        raise
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise ConfigurationError(f"{path}: {what} is not a regular file")
        os.set_blocking(fd, True)
        if stat.S_IMODE(status.st_mode) != wanted and status.st_uid == os.geteuid():
            os.fchmod(fd, wanted)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_own_text(path: Path | str, what: str) -> str | None:
    """The text of one of the engine's own files (None when there is none), read without
    following a symbolic link: a link or special file in its place is refused with a
    ConfigurationError naming the path and `what` it is ("the run history")."""
    with open_own_file(path, what) as handle:
        return None if handle is None else handle.read().decode("utf-8", errors="replace")


@contextmanager
def open_own_file(path: Path | str, what: str) -> Iterator[BinaryIO | None]:
    """One of the engine's own files open for reading (None when there is none), opened
    without following a symbolic link, as `read_own_text` reads it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        yield None
        return
    except OSError as error:
        if error.errno == errno.ELOOP or os.path.islink(path):
            raise ConfigurationError(f"{path}: {what} is a symbolic link; the engine does not follow links for "
                                     "its own files (remove the link)") from None
        raise
    with open(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise ConfigurationError(f"{path}: {what} is not a regular file")
        yield handle
