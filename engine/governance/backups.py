"""`engine backup`: archives of the data and output folders, checked, restored, pruned.

- `create` writes `backup-<UTC time>.tar.gz` (or `.tar.xz`) into the backup folder with
  a manifest of every file's SHA-256 and a sidecar `<archive>.sha256`; the archive is
  written to a temporary file in the same folder, flushed to disk and then renamed, so
  a listed backup is always complete. Of an output folder it archives the published
  run's files under their published names, read through one resolution of `.current`
  (a run publishing meanwhile cannot mix the set), plus the files kept across runs.
- `verify` checks the sidecar checksum, then every member against the manifest.
- `restore` verifies the whole archive before writing anything, refuses unsafe members
  (links, devices, absolute or `..` paths), and restores into a new or empty folder.
- `prune` applies the grandfather-father-son rule of engine.governance.retention.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
import shutil
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from engine import __version__
from engine.errors import BackupError, ConfigurationError, InputDataError
from engine.files.atomic import AtomicFile, fsync_directory, write_atomically
from engine.files.locks import file_lock
from engine.files.permissions import make_dirs, policy
from engine.governance.backup_archive import (COMPRESSION_SUFFIXES, checksum_path, collect_files,
                                              manifest_for, open_archive, verify, write_archive)
from engine.governance.retention import RetentionPolicy, backups_to_keep
from engine.outputs.publication import pinned_published_run

_NAME = re.compile(r"^backup-(?P<stamp>\d{8}T\d{6}Z)(?:-(?P<sequence>\d+))?\.tar\.(?P<suffix>gz|xz)$")
_STAMP = "%Y%m%dT%H%M%SZ"
_LOCK_NAME = ".lock"


@dataclass(frozen=True, order=True)
class Backup:
    """One archive in the backup folder, ordered by when it was taken."""

    moment: dt.datetime
    sequence: int
    path: Path = field(compare=False)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def size(self) -> int:
        return self.path.stat().st_size


def backup_name(moment: dt.datetime, compression: str, sequence: int = 0) -> str:
    suffix = f"-{sequence}" if sequence else ""
    return f"backup-{moment.strftime(_STAMP)}{suffix}.tar.{COMPRESSION_SUFFIXES[compression]}"


def list_backups(directory: Path) -> list[Backup]:
    """The archives in `directory`, oldest first (other files are not backups)."""
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = _NAME.match(path.name)
        if match and path.is_file():
            moment = dt.datetime.strptime(match["stamp"], _STAMP).replace(tzinfo=dt.timezone.utc)
            found.append(Backup(moment, int(match["sequence"] or 0), path))
    return sorted(found)


def find_backup(directory: Path, name: str) -> Path:
    """An archive given as a path, or as a name in the backup folder."""
    for candidate in (Path(name), directory / name):
        if candidate.is_file():
            return candidate.resolve()
    raise InputDataError(f"{name}: no such backup (looked in the current folder and in {directory})")


@dataclass
class CreatedBackup:
    path: Path
    size: int
    sha256: str
    manifest: dict


def create_backup(directory: Path, sources: list[Path], compression: str,
                  now: dt.datetime | None = None, origin: str = "backup.sources") -> CreatedBackup:
    """Archive `sources` into a new backup in `directory`. `origin` says where the
    sources were named, for the error about one that is missing ("": the command line)."""
    named = _source_names(sources, origin)
    make_dirs(directory)
    directory = directory.resolve()
    created = (now or dt.datetime.now(dt.timezone.utc)).replace(microsecond=0)
    with ExitStack() as pins:  # each output folder's published run, resolved once, kept while it is read
        published = {top: pins.enter_context(pinned_published_run(root)) for top, root in named.items()}
        return _create_backup(directory, named, compression, created, published)


def _create_backup(directory: Path, named: dict[str, Path], compression: str, created: dt.datetime,
                   published: dict[str, Path | None]) -> CreatedBackup:
    folders, files = collect_files(named, exclude=directory, published=published)
    manifest = manifest_for(folders, files, named, created, compression, host=socket.gethostname(),
                            engine_version=__version__)
    modes = policy()
    with AtomicFile(directory / "backup", modes.file) as pending:  # named once complete, below
        size, sha = write_archive(pending.handle, compression, manifest, folders, files, modes.file, modes.directory)
        pending.sync()
        with _locked(directory):
            target = _free_name(directory, created, compression)
            _write_checksum(target, sha)  # first, so every listed archive has its checksum
            pending.commit(target)
    return CreatedBackup(target, size, sha, manifest)


def _source_names(sources: list[Path], origin: str) -> dict[str, Path]:
    """Each source folder under its top-level name in the archive (its own name)."""
    named: dict[str, Path] = {}
    for source in sources:
        if not source.is_dir():
            problem = "not a folder" if source.exists() else "the folder does not exist"
            raise ConfigurationError(f"{source}: cannot back up: {problem}" + (f" ({origin})" if origin else ""))
        resolved = source.resolve()
        if resolved.name in named:
            raise ConfigurationError(f"{source}: two backup sources are both named {resolved.name!r}; "
                                     "archive folders with distinct names")
        named[resolved.name] = resolved
    return named


def _free_name(directory: Path, moment: dt.datetime, compression: str) -> Path:
    sequence = 0
    while (directory / backup_name(moment, compression, sequence)).exists():
        sequence += 1
    return directory / backup_name(moment, compression, sequence)


def _write_checksum(archive: Path, sha: str) -> None:
    write_atomically(checksum_path(archive), f"{sha}  {archive.name}\n".encode("ascii"))


@dataclass
class RestoredBackup:
    target: Path
    manifest: dict
    folders: list[dict]


def restore_backup(archive: Path, target: Path) -> RestoredBackup:
    """Restore `archive` into `target` (a new or empty folder): one folder per backed-up
    source. Nothing is written unless the whole archive verifies and is safe."""
    manifest = verify(archive)
    target = target.absolute()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConfigurationError(f"{target}: restore needs a new or empty folder; this one is not empty")
    created = _first_missing(target)  # removed again if the restore fails
    make_dirs(target)
    staging = target / f".restore-{secrets.token_hex(6)}"
    staging.mkdir(mode=0o700)
    try:
        _extract(archive, staging)
        for source in manifest["sources"]:
            (staging / source["name"]).rename(target / source["name"])
        staging.rmdir()
        fsync_directory(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise
    folders = [{"path": str(target / s["name"]), "files": s["files"], "size": s["bytes"], "sha256": s["sha256"]}
               for s in manifest["sources"]]
    return RestoredBackup(target, manifest, folders)


def _first_missing(path: Path) -> Path | None:
    """The outermost folder of `path` that does not exist yet (None if it exists)."""
    missing = None
    while not path.exists():
        missing, path = path, path.parent
    return missing


def _extract(archive: Path, staging: Path) -> None:
    """Write every member below `staging`, checking each again as it is read (the
    archive could have been replaced since it was verified)."""
    modes = policy()
    with open_archive(archive) as members:
        next(members)
        for member, content in members:
            destination = staging.joinpath(*member.name.split("/"))
            if staging.resolve() not in destination.resolve().parents:
                raise BackupError(f"{archive}: unsafe member: {member.name!r} leads outside the target")
            try:
                if content is None:
                    make_dirs(destination)
                else:
                    _write_member(destination, content, member.mtime, modes.file)
            except (OSError, OverflowError, ValueError) as error:
                reason = error.strerror if isinstance(error, OSError) else str(error)
                raise BackupError(f"{archive}: cannot restore {member.name!r} ({reason})") from None


def _write_member(destination: Path, content, mtime: float, mode: int) -> None:
    """A new file (never through a link, never over an existing one) with the member's content."""
    make_dirs(destination.parent)
    fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with open(fd, "wb") as handle:
        os.fchmod(handle.fileno(), mode)
        for chunk in content.chunks():
            handle.write(chunk)
        handle.flush()
        os.fsync(handle.fileno())
    os.utime(destination, (mtime, mtime))


@dataclass
class PruneResult:
    kept: list[Backup]
    deleted: list[Backup]


def prune_backups(directory: Path, retention: RetentionPolicy, dry_run: bool = False) -> PruneResult:
    """Delete the archives (and their checksum files) the retention rule does not keep."""
    with _locked(directory) if directory.is_dir() else _nothing():
        backups = list_backups(directory)
        keep = backups_to_keep(backups, lambda backup: backup.moment, retention)
        deleted = [b for b in backups if b not in keep]
        if not dry_run:
            for backup in deleted:
                checksum_path(backup.path).unlink(missing_ok=True)
                backup.path.unlink(missing_ok=True)
            if deleted:
                fsync_directory(directory)
    return PruneResult([b for b in backups if b in keep], deleted)


def source_digest(manifest_source: dict) -> dict:
    """The audit form of one backed-up folder: path, bytes, files, SHA-256 of its listing."""
    return {"path": manifest_source["path"], "size": manifest_source["bytes"], "files": manifest_source["files"],
            "sha256": manifest_source["sha256"]}


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """An exclusive lock on the backup folder: a prune never races a backup being named."""
    with file_lock(directory / _LOCK_NAME, what="the backup folder's lock"):
        yield


@contextmanager
def _nothing() -> Iterator[None]:
    yield
