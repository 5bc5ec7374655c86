"""Appending lines to the files the engine keeps adding to: its log, the run history,
the lineage record and outbox, the audit log.

Each line is appended in one write under the file's exclusive lock, then fsynced, so
lines of concurrent runs never interleave and a crash tears at most the last line.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.files.locks import holding
from engine.files.opening import open_regular_file


def open_for_append(path: Path | str, mode: int | None = None, what: str = "file") -> int:
    """A write-only, append-only descriptor on `path` (created if missing), for a file
    the engine appends to (its log, run history, lineage record, audit log).

    The last component of `path` is never followed if it is a symbolic link
    (`O_NOFOLLOW`), and anything other than a regular file (a link, a FIFO, a device)
    is refused with a ConfigurationError naming the path: a link planted in an output
    folder never makes the engine write to, or change the mode of, its target. The
    file gets the policy's file mode (or `mode`) through the open descriptor (never a
    chmod by path), so a file that already existed with a looser mode is tightened.
    `what` names the file in the error ("the run history"). The descriptor is also
    readable (`append_line` looks at the last byte), never positioned for writing
    anywhere but the end."""
    return open_regular_file(path, os.O_RDWR | os.O_APPEND, mode, what, "appends to")


def append_line(fd: int, line: bytes) -> None:
    """Append one line (`line` ends with a newline) to a descriptor from
    `open_for_append`, under an exclusive lock, in one write, then fsync. When the file
    does not end with a newline (its last line was torn by a crash or a full disk), a
    newline comes first, so the torn line stays alone and this line stays readable."""
    with holding(fd):
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        data = memoryview(line)
        while data:  # one write() unless a signal or a full disk cuts it short
            data = data[os.write(fd, data):]
        os.fsync(fd)
