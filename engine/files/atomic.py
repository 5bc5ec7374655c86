"""Replacing a file all or nothing, and making a finished file's name durable.

A file is written to a new temporary file in the same folder (opened with `O_EXCL` and
`O_NOFOLLOW`: never an existing file, never through a link), given its mode through the
descriptor, fsynced, then renamed over its target, and the folder is fsynced so the new
name survives a crash. Until the rename, the target is untouched; on any failure the
temporary file is removed. A reader sees the old file or the new one, never a mix.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from engine.files.permissions import policy


def fsync_directory(directory: Path | str) -> None:
    """Flush `directory`'s entries to disk; a filesystem that cannot (some network and
    virtual filesystems refuse to open or fsync a folder) is left as it is."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


class AtomicFile:
    """A new hidden file beside `target` (`.<name>.<random>.tmp`), written through
    `handle` and then moved over its target by `commit`. Used as a context manager, it is
    removed again unless committed.

    The file gets the policy's file mode (or `mode`) through its descriptor; with
    `umask=True` it is created with `mode` and the umask takes bits away, as for a file
    the user names (the sample data)."""

    def __init__(self, target: Path, mode: int | None = None, *, umask: bool = False) -> None:
        self.target = Path(target)
        self.path = self.target.with_name(f".{self.target.name}.{secrets.token_hex(6)}.tmp")
        wanted = policy().file if mode is None else mode
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, wanted)
        try:
            if not umask:
                os.fchmod(fd, wanted)  # the umask may have taken bits away; the mode is exact
            self.handle: BinaryIO = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            self.path.unlink(missing_ok=True)
            raise
        self.committed = False

    def sync(self, durable: bool = True) -> None:
        """Flush the written bytes (to disk, when `durable`) and close the file (done by
        `commit` if not yet)."""
        if not self.handle.closed:
            self.handle.flush()
            if durable:
                os.fsync(self.handle.fileno())
            self.handle.close()

    def commit(self, target: Path | None = None, *, durable: bool = True) -> Path:
        """Make the bytes durable, rename the file over `target` (by default the target it
        was made for), and fsync the folder. Returns the target. Without `durable` there is
        no fsync: still all or nothing for every reader, but a power loss may leave the old
        content or a torn file; only for files whose damage their reader detects."""
        target = self.target if target is None else Path(target)
        self.sync(durable)
        os.replace(self.path, target)
        self.committed = True
        if durable:
            fsync_directory(target.parent)
        return target

    def discard(self) -> None:
        """Close and remove the temporary file (nothing changes at the target)."""
        if not self.handle.closed:
            self.handle.close()
        if not self.committed:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.discard()


@contextmanager
def atomic_file(target: Path, mode: int | None = None, *, umask: bool = False,
                durable: bool = True) -> Iterator[BinaryIO]:
    """A binary file to write `target`'s new content into; when the block ends without an
    exception it replaces `target` (see `AtomicFile`), otherwise `target` is left as it
    was and nothing is left behind."""
    with AtomicFile(target, mode, umask=umask) as pending:
        yield pending.handle
        pending.commit(durable=durable)


def write_atomically(target: Path, data: bytes, mode: int | None = None, *, durable: bool = True) -> None:
    """Replace `target` with `data`, all or nothing (see `atomic_file`)."""
    with atomic_file(target, mode, durable=durable) as handle:
        handle.write(data)
