"""Publishing a run's outputs: the staging folder and the atomic switch into place.

Every file of a run (written in the forms of engine.outputs.forms) is first written into
a staging folder inside the output directory, so a failed run leaves the previous
outputs untouched and no half-written file behind.

Publication switches every published name at once (docs/design.md, "Publication"):

    <output>/.runs/<run id>/<file>     each published run's files
    <output>/.current -> .runs/<id>    the published run: switched with ONE rename(2)
    <output>/.previous -> .runs/<id>   the run before it, kept for rollback
    <output>/<file> -> .current/<file> a fixed link per published name
    <output>/.lock                     held (flock) by the run writing to the folder

so at every instant, also right after a SIGKILL, every `<output>/<file>` resolves into
one run's folder. A run holds `.lock` exclusively from start to end; a second run into
the same folder fails at once with OutputBusyError naming the holder.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import secrets
import shutil
import socket
import stat
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ConfigurationError, EngineError, OutputBusyError, ResourceError
from engine.files import permissions
from engine.files.atomic import fsync_directory
from engine.files.leftovers import owned_name, remove_abandoned
from engine.files.locks import file_lock, lock, open_lock_file

STAGING_PREFIX = ".staging-"
RUNS_DIR = ".runs"
CURRENT_LINK = ".current"
PREVIOUS_LINK = ".previous"
LOCK_NAME = ".lock"
_TEMPORARY_LINK_PREFIX = ".link-"
#: Entries of an output folder that belong to the publication machinery, not to users.
CONTROL_NAMES = (RUNS_DIR, CURRENT_LINK, PREVIOUS_LINK, LOCK_NAME)


@dataclass(frozen=True)
class PublishedFile:
    """One file a run published: which output, its format, size, and whether it replaced
    a file of the same name."""

    path: Path
    output: str
    format: str
    size: int
    replaced: bool


class StagedOutputs:
    """Files written for one run, waiting in a staging folder to be published together."""

    def __init__(self, output_dir: Path, run_id: str) -> None:
        self.output_dir = output_dir
        self.run_id = run_id
        self.folder = output_dir / owned_name(STAGING_PREFIX, run_id)
        self.names: list[str] = []

    def path(self, name: str) -> Path:
        """Where to write the staged file that will be published as `name`."""
        if name not in self.names:
            self.names.append(name)
        return self.folder / name

    def publish(self) -> list[PublishedFile]:
        """Publish every staged file at once (see the module docstring): check every
        published name, make the staged files durable, move the staging folder to
        `.runs/<run id>`, then switch `.current` to it with one rename(2)."""
        out = self.output_dir
        check_publishable(out, self.names)
        modes = permissions.policy()
        for name in self.names:
            with open(self.folder / name, "rb") as handle:
                os.fchmod(handle.fileno(), modes.file)
                os.fsync(handle.fileno())
        os.chmod(self.folder, modes.directory)
        fsync_directory(self.folder)
        replaced = {name: os.path.exists(out / name) for name in self.names}
        runs = out / RUNS_DIR
        permissions.make_dirs(runs)
        _remove_temporary_links(out)
        legacy = [name for name in self.names if _is_regular_file(out / name)]
        if legacy:
            _adopt_regular_files(out, legacy)
        folder = runs / _run_folder_name(runs, self.run_id)
        os.rename(self.folder, folder)
        fsync_directory(runs)
        swapped = False
        try:
            for name in self.names:  # fixed links; a new name points at nothing until the swap
                if not _is_our_link(out, name):
                    _replace_link(out, name, f"{CURRENT_LINK}/{name}")
            previous = _read_link(out / CURRENT_LINK)
            if previous is not None:
                _replace_link(out, PREVIOUS_LINK, previous)
            _replace_link(out, CURRENT_LINK, f"{RUNS_DIR}/{folder.name}")  # THE switch
            swapped = True
            fsync_directory(out)
        finally:
            if not swapped:
                shutil.rmtree(folder, ignore_errors=True)
        _tidy(out)
        published = []
        for name in self.names:
            stem, _, suffix = name.partition(".")
            target = out / name
            published.append(PublishedFile(target, stem, suffix, target.stat().st_size, replaced[name]))
        return published


def check_publishable(output_dir: Path, names: list[str]) -> None:
    """Refuse, before anything changes, a published name or control entry that is in the
    way: anything at `<output>/<name>` other than nothing, a regular file or our link."""
    for control, kind in ((CURRENT_LINK, "link"), (PREVIOUS_LINK, "link"), (RUNS_DIR, "folder")):
        path = output_dir / control
        status = _lstat(path)
        if status is None:
            continue
        if kind == "link" and not stat.S_ISLNK(status.st_mode):
            raise ConfigurationError(f"{path}: is in the way of publishing (expected the engine's symbolic link "
                                     "to the published run); move it away")
        if kind == "folder" and not stat.S_ISDIR(status.st_mode):
            raise ConfigurationError(f"{path}: is in the way of publishing (expected the engine's folder of "
                                     "published runs); move it away")
    for name in names:
        path = output_dir / name
        status = _lstat(path)
        if status is None or stat.S_ISREG(status.st_mode) or _is_our_link(output_dir, name):
            continue
        kind = ("a folder" if stat.S_ISDIR(status.st_mode) else "a symbolic link elsewhere"
                if stat.S_ISLNK(status.st_mode) else "not a regular file")
        raise ConfigurationError(f"{path}: cannot publish the run's {name} there: it is {kind}; "
                                 "move it away (nothing was published)")


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _is_regular_file(path: Path) -> bool:
    status = _lstat(path)
    return status is not None and stat.S_ISREG(status.st_mode)


def _read_link(path: Path) -> str | None:
    try:
        return os.readlink(path)
    except (FileNotFoundError, OSError) as error:
        if isinstance(error, FileNotFoundError) or error.errno == errno.EINVAL:
            return None
        raise


def _is_our_link(output_dir: Path, name: str) -> bool:
    return _read_link(output_dir / name) == f"{CURRENT_LINK}/{name}"


def _replace_link(folder: Path, name: str, target: str) -> None:
    """Make `folder/name` a symbolic link to `target` in one rename(2)."""
    temporary = folder / f"{_TEMPORARY_LINK_PREFIX}{secrets.token_hex(6)}"
    os.symlink(target, temporary)
    try:
        os.rename(temporary, folder / name)
    except BaseException:
        with suppress(OSError):
            os.unlink(temporary)
        raise


def _remove_temporary_links(output_dir: Path) -> None:
    for path in output_dir.glob(f"{_TEMPORARY_LINK_PREFIX}*"):
        with suppress(OSError):
            os.unlink(path)


def _run_folder_name(runs: Path, run_id: str) -> str:
    name = run_id if _lstat(runs / run_id) is None else f"{run_id}-{secrets.token_hex(4)}"
    return name


def _adopt_regular_files(output_dir: Path, names: list[str]) -> None:
    """Turn regular files at published names (left by an older engine, or restored from
    a backup) into our links without changing what any name shows: each file is first
    hard-linked (or copied) into the folder `.current` points at, then its name is
    replaced by the link."""
    runs = output_dir / RUNS_DIR
    current_target = _read_link(output_dir / CURRENT_LINK)
    folder = output_dir / current_target if current_target else None
    created = folder is None or not folder.is_dir()
    if created:
        folder = runs / f"adopted-{secrets.token_hex(6)}"
        permissions.make_dirs(folder)
    for name in names:
        temporary = folder / f".adopt-{secrets.token_hex(6)}"
        try:
            os.link(output_dir / name, temporary)
        except OSError:
            shutil.copy2(output_dir / name, temporary)
            with open(temporary, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(temporary, folder / name)
    fsync_directory(folder)
    if created:
        _replace_link(output_dir, CURRENT_LINK, f"{RUNS_DIR}/{folder.name}")
    for name in names:
        _replace_link(output_dir, name, f"{CURRENT_LINK}/{name}")
    fsync_directory(output_dir)


def _tidy(output_dir: Path) -> None:
    """After a switch: remove run folders other than the current and the previous one
    (skipping any a backup is reading), and links to names the current run lacks."""
    keep = {Path(target).name for target in (_read_link(output_dir / CURRENT_LINK),
                                             _read_link(output_dir / PREVIOUS_LINK)) if target}
    runs = output_dir / RUNS_DIR
    for entry in os.scandir(runs):
        if entry.name in keep or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            with file_lock(entry.path, folder=True, blocking=False):
                shutil.rmtree(entry.path, ignore_errors=True)
        except OSError:
            continue  # gone already, or a backup is reading it: the next run removes it
    for entry in os.scandir(output_dir):
        if entry.is_symlink() and _is_our_link(output_dir, entry.name) and not os.path.exists(entry.path):
            with suppress(OSError):
                os.unlink(entry.path)


@contextmanager
def pinned_published_run(output_dir: Path) -> Iterator[Path | None]:
    """The folder of the run published in `output_dir` (None if the folder has no
    published run in this layout), resolved ONCE and kept from being removed while the
    block runs (a shared lock on the folder), so a reader sees one run's files however
    many runs publish meanwhile."""
    for _ in range(100):
        target = _read_link(output_dir / CURRENT_LINK)
        if target is None:
            yield None
            return
        folder = output_dir / target
        with ExitStack() as pin:
            try:
                descriptor = pin.enter_context(file_lock(folder, folder=True, shared=True))
            except FileNotFoundError:
                continue
            if os.fstat(descriptor).st_nlink == 0:  # removed just before we locked it
                continue
            yield folder
            return
    raise OSError(errno.EAGAIN, "the published run kept changing", str(output_dir / CURRENT_LINK))


@contextmanager
def output_lock(output_dir: Path, run_id: str) -> Iterator[None]:
    """Hold `<output>/.lock` exclusively for a run; OutputBusyError naming the holder if
    another run holds it. The lock is released when the process ends, however it ends."""
    check_output_folder(output_dir)
    with output_errors(output_dir):
        permissions.make_dirs(output_dir)
        descriptor = open_lock_file(output_dir / LOCK_NAME, what="the output folder's lock")
    try:
        try:
            lock(descriptor, blocking=False)
        except BlockingIOError:
            raise OutputBusyError(f"{output_dir}: the output folder is in use by another run "
                                  f"({_holder(descriptor)}); wait for it to end or choose another --output") from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "run_id": run_id,
                  "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        with suppress(OSError):  # who holds it is information only
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, (json.dumps(holder) + "\n").encode(), 0)
        yield
        with suppress(OSError):
            os.ftruncate(descriptor, 0)
    finally:
        os.close(descriptor)


def _holder(descriptor: int) -> str:
    try:
        holder = json.loads(os.pread(descriptor, 4096, 0) or b"null")
        return (f"run {holder['run_id']}, pid {holder['pid']} on {holder['host']}, "
                f"started {holder['started']}")
    except (OSError, ValueError, TypeError, KeyError):
        return "holder not recorded yet"


_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}
_NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}


def translated_os_error(error: OSError, output_dir: Path) -> EngineError | None:
    """The engine error for a failure to write into the output folder (disk full →
    ResourceError, read-only or not permitted → ConfigurationError), naming the path;
    None for other errors."""
    path = error.filename or output_dir
    if STAGING_PREFIX in str(path):  # a staged file: name the output it was becoming
        path = Path(output_dir) / Path(path).name
    reason = error.strerror or str(error)
    if error.errno in _NO_SPACE:
        return ResourceError(f"{path}: cannot write the run's outputs: {reason} (no space left; "
                             "the previous outputs are unchanged)")
    if error.errno in _NOT_WRITABLE:
        return ConfigurationError(f"{path}: cannot write the run's outputs: {reason} (the output folder is "
                                  "read-only or not writable; the previous outputs are unchanged)")
    return None


def check_output_folder(output_dir: Path) -> None:
    """A usage error (exit 2) naming the output folder when it cannot be one: it is a
    file, or a file stands where one of its parent folders would be created."""
    if output_dir.exists() or output_dir.is_symlink():
        if not output_dir.is_dir():
            raise ConfigurationError(f"{output_dir}: cannot use as the output folder: it is a file, not a folder")
        return
    blocker = file_in_the_way(output_dir)
    if blocker is not None:
        raise ConfigurationError(f"{output_dir}: cannot create the output folder: {blocker} is a file, not a folder")


def file_in_the_way(path: Path) -> Path | None:
    """The nearest existing parent of `path` when it is a file, where a folder would have
    to be created (None: the parent folders are there or can be made)."""
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return None if parent.is_dir() else parent


@contextmanager
def output_errors(output_dir: Path) -> Iterator[None]:
    """Translate OSErrors of writing into the output folder (see translated_os_error)."""
    try:
        yield
    except OSError as error:
        translated = translated_os_error(error, output_dir)
        if translated is None:
            raise
        raise translated from error


@contextmanager
def staged_outputs(output_dir: Path, run_id: str) -> Iterator[StagedOutputs]:
    """A staging folder for one run, removed whether the run publishes or fails."""
    permissions.make_dirs(output_dir)
    remove_abandoned(output_dir, STAGING_PREFIX)
    staged = StagedOutputs(output_dir, run_id)
    staged.folder.mkdir(mode=0o700)  # only the run itself works in here
    try:
        yield staged
    finally:
        shutil.rmtree(staged.folder, ignore_errors=True)


