"""Making a finished file's name durable: after a file is renamed into place, its folder
is fsynced so the new name survives a crash (the file's own fsync covers its bytes)."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_directory(directory: Path) -> None:
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
