"""Who may read what the engine writes: outputs, logs, lineage, backups, the audit log.

Nothing the engine writes is readable by other users of the machine. Files get the
configured `permissions.file_mode` (default 0640: the owner reads and writes, the group
reads), folders `permissions.dir_mode` (default 0750); the audit log and key files are
private to their owner (0600). A mode that would give other users any access is refused.

The policy is process-wide, like the umask it sets: the CLI applies the configured one
once (`apply_policy`) before anything is written, so files made by libraries (the log
handler, the OpenLineage file transport, Parquet writers) are covered, and the engine's
own writers also set the mode explicitly (`restrict`, `make_dirs`, `create_file`), so a
Python API caller gets the default policy even with a permissive umask.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ConfigurationError

PRIVATE_FILE_MODE = 0o600
_OCTAL = re.compile(r"^0o?([0-7]{3,4})$")


@dataclass(frozen=True)
class FileModes:
    """The modes of files and folders the engine creates."""

    file: int = 0o640
    directory: int = 0o750

    @property
    def umask(self) -> int:
        """The umask under which a plain `open()` or `mkdir()` gets at most these modes."""
        return 0o777 & ~(self.file | self.directory)


DEFAULT_MODES = FileModes()
_policy = DEFAULT_MODES


def parse_mode(text: str, key: str, required: int) -> int:
    """The mode written as octal text ("0640" or "0o640"); it must grant the owner
    `required` and give other users nothing."""
    match = _OCTAL.match(str(text).strip())
    if not match:
        raise ConfigurationError(
            f"{key}: {text!r} is not an octal mode: write it as \"0640\" (quoted) or 0o640; an unquoted 0640 "
            "in YAML or in an ENGINE__ variable is read as the number 416")
    mode = int(match.group(1), 8)
    if mode & ~0o777:
        raise ConfigurationError(f"{key}: {text!r} sets special bits (setuid, setgid, sticky); use 0 to 0770")
    if mode & stat.S_IRWXO:
        raise ConfigurationError(f"{key}: {text!r} gives other users access; the engine's files are never "
                                 "world-readable (the last digit must be 0)")
    if mode & required != required:
        raise ConfigurationError(f"{key}: {text!r} must give the owner at least {required:04o}")
    return mode


def apply_policy(modes: FileModes) -> None:
    """Make `modes` the policy of this process and set the umask that goes with it."""
    global _policy
    _policy = modes
    os.umask(modes.umask)


def policy() -> FileModes:
    """The modes in force in this process (the defaults until `apply_policy`)."""
    return _policy


def restrict(path: Path | str, mode: int | None = None) -> None:
    """Give an existing file (or, for a folder, the folder) the policy's mode, or `mode`."""
    if mode is None:
        mode = _policy.directory if os.path.isdir(path) else _policy.file
    os.chmod(path, mode)


def make_dirs(path: Path | str, mode: int | None = None) -> Path:
    """`mkdir -p` where each folder it creates gets the policy's folder mode (or `mode`);
    folders that already exist keep theirs."""
    path = Path(path)
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:  # made by a concurrent run in the meantime
            continue
        os.chmod(folder, _policy.directory if mode is None else mode)
    return path


def create_file(path: Path | str, mode: int | None = None) -> None:
    """Create `path` empty with the policy's file mode (or `mode`) unless it exists, so a
    library that later opens it for appending never decides its mode."""
    wanted = _policy.file if mode is None else mode
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, wanted)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, wanted)  # the umask may have taken bits away; the mode is exact
    finally:
        os.close(fd)
