"""Folders a killed process left behind: a run's staging folder, a run's input spool.

Such folders are named `<prefix><host>-<pid>-...`; one whose process on this host is
gone is removed by the next run that uses the same parent folder. A folder of another
host (a shared filesystem) is never touched.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path


def owned_name(prefix: str, *parts: str) -> str:
    """The name of a folder this process works in: `<prefix><host>-<pid>-<parts...>`."""
    return "-".join([f"{prefix}{socket.gethostname()}", str(os.getpid()), *parts])


def remove_abandoned(parent: Path, prefix: str) -> None:
    """Remove the `prefix` folders in `parent` of processes on this host that are gone."""
    import psutil

    mine = f"{prefix}{socket.gethostname()}-"
    for folder in parent.glob(f"{mine}*"):
        pid = folder.name[len(mine):].split("-", 1)[0]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
