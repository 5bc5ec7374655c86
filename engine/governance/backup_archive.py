"""One backup archive: a compressed tar whose first member is a manifest.

Layout: `MANIFEST.json` first, then for each backed-up folder a top-level folder named
after it (`output/`, `data/`) with its files. The manifest lists every folder and every
file with its size and SHA-256, so an archive can be checked on its own; a sidecar file
`<archive>.sha256` (`sha256sum` format) holds the SHA-256 of the whole archive, which
catches any flipped byte or truncation before the archive is even opened.

Only plain files and folders are archived and only they are accepted back: a member
that is a link, a device or a FIFO, or whose name is absolute or climbs out with `..`,
makes the whole archive unsafe, and `verify`/`restore` refuse it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import lzma
import math
import os
import stat
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from engine.errors import BackupError
from engine.files.digests import file_sha256, listing_sha256

log = logging.getLogger("engine.backup_archive")  # the name in log lines, kept from before the package layout

MANIFEST_NAME = "MANIFEST.json"
FORMAT = "sales-engine-backup/1"
CHECKSUM_SUFFIX = ".sha256"
COMPRESSION_SUFFIXES = {"gzip": "gz", "xz": "xz"}
_COPY_BYTES = 1 << 20
_READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError, ValueError)


@dataclass(frozen=True)
class SourceFile:
    """A file to archive: its member name, where it is, and what pass one read."""

    name: str
    path: Path
    size: int
    sha256: str
    device: int
    inode: int


class _HashingWriter:
    """A write-only file object that hashes and counts what goes through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()


class _HashingReader:
    """Reads at most `size` bytes of a file and hashes them."""

    def __init__(self, raw: IO[bytes], size: int) -> None:
        self.raw, self.left, self.sha = raw, size, hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self.raw.read(n)
        self.left -= len(data)
        self.sha.update(data)
        return data


def collect_files(sources: dict[str, Path], exclude: Path | None,
                  published: dict[str, Path | None] | None = None) -> tuple[list[str], list[SourceFile]]:
    """Pass one: the folders and files under each source (member name → path), each file
    hashed. Symlinks, sockets and the like are skipped with a warning; so are staging
    folders of runs in progress and `exclude` (the backup folder, if it is inside).

    `published[top]`, when given, is the folder of the run published in the output
    folder `top` (engine.outputs.publication.pinned_published_run, resolved once): its files are
    archived under their published names, in place of the links, and the publication
    machinery (`.runs`, `.current`, `.previous`, `.lock`) is left out, and so is the
    incremental state (`.state`: a cache of the inputs' partials that the next run
    rebuilds when it is missing, often larger than the outputs)."""
    from engine.incremental.planning import STATE_DIR
    from engine.outputs.publication import CONTROL_NAMES, CURRENT_LINK
    from engine.sources.spool import PREFIX as SPOOL_PREFIX

    folders: list[str] = []
    files: list[SourceFile] = []
    for top, root in sources.items():
        run_folder = (published or {}).get(top)
        for folder, subfolders, names in os.walk(root, followlinks=False):
            here = Path(folder)
            relative = here.relative_to(root).as_posix()
            folders.append(top if relative == "." else f"{top}/{relative}")
            at_top = run_folder is not None and relative == "."
            if at_top:
                run_files = sorted(entry.name for entry in os.scandir(run_folder)
                                   if not entry.name.startswith(".") and entry.is_file(follow_symlinks=False))
                for name in run_files:
                    files.append(_source_file(f"{top}/{name}", run_folder / name))
                names = [name for name in names if name not in CONTROL_NAMES and name not in run_files
                         and not _is_published_link(here / name, CURRENT_LINK)]
            kept = []
            for sub in sorted(subfolders):
                path = here / sub
                if sub.startswith((".staging-", SPOOL_PREFIX)) or (exclude is not None and path == exclude):
                    continue
                if at_top and (sub in CONTROL_NAMES or sub == STATE_DIR):
                    continue
                if path.is_symlink():
                    log.warning("backup: %s is a symbolic link; not followed, not archived", path)
                    continue
                kept.append(sub)
            subfolders[:] = kept
            for name in sorted(names):
                path = here / name
                status = path.lstat()
                if not stat.S_ISREG(status.st_mode):
                    log.warning("backup: %s is not a regular file; not archived", path)
                    continue
                files.append(_source_file(f"{folders[-1]}/{name}", path))
    return folders, files


def _source_file(member: str, path: Path) -> SourceFile:
    status = path.lstat()
    size, sha = file_sha256(path)
    return SourceFile(member, path, size, sha or "", status.st_dev, status.st_ino)


def _is_published_link(path: Path, current: str) -> bool:
    try:
        return os.readlink(path) == f"{current}/{path.name}"
    except OSError:
        return False


def write_archive(raw: IO[bytes], compression: str, manifest: dict, folders: list[str],
                  files: list[SourceFile], file_mode: int, dir_mode: int) -> tuple[int, str]:
    """Pass two: write the archive to `raw`; (bytes written, SHA-256 of the archive).
    A file that changed since pass one stops the backup (its digest would be wrong)."""
    writer = _HashingWriter(raw)
    options: dict[str, Any] = {"compresslevel": 6} if compression == "gzip" else {"preset": 6}
    with tarfile.open(fileobj=writer, mode=f"w:{COMPRESSION_SUFFIXES[compression]}", format=tarfile.PAX_FORMAT,
                      copybufsize=_COPY_BYTES, **options) as archive:
        data = (json.dumps(manifest, indent=1) + "\n").encode("utf-8")
        archive.addfile(_member(MANIFEST_NAME, tarfile.REGTYPE, len(data), file_mode), io.BytesIO(data))
        for folder in folders:
            archive.addfile(_member(folder, tarfile.DIRTYPE, 0, dir_mode))
        for source in files:
            with open(source.path, "rb") as handle:
                status = os.fstat(handle.fileno())
                if (status.st_dev, status.st_ino) != (source.device, source.inode) or status.st_size < source.size:
                    raise BackupError(f"{source.path}: changed while it was being backed up; run the backup again")
                reader = _HashingReader(handle, source.size)
                member = _member(source.name, tarfile.REGTYPE, source.size, file_mode)
                member.mtime = int(status.st_mtime)
                archive.addfile(member, reader)
                if reader.sha.hexdigest() != source.sha256:
                    raise BackupError(f"{source.path}: changed while it was being backed up; run the backup again")
    writer.flush()
    return writer.size, writer.sha.hexdigest()


def _member(name: str, kind: bytes, size: int, mode: int) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type, member.size, member.mode = kind, size, mode
    member.mtime = int(dt.datetime.now(dt.timezone.utc).timestamp())
    return member


def manifest_for(folders: list[str], files: list[SourceFile], sources: dict[str, Path], created: dt.datetime,
                 compression: str, **about: Any) -> dict:
    """The manifest: format, when, what was backed up, and every file's size and SHA-256."""
    by_source = []
    for top, root in sources.items():
        mine = {f.name[len(top) + 1:]: f for f in files if f.name.startswith(f"{top}/")}
        by_source.append({"name": top, "path": str(root), "files": len(mine),
                          "bytes": sum(f.size for f in mine.values()),
                          "sha256": listing_sha256({name: f.sha256 for name, f in mine.items()})})
    return {
        "format": FORMAT,
        "created": created.isoformat(timespec="seconds").replace("+00:00", "Z"),
        **about,
        "compression": compression,
        "sources": by_source,
        "folders": folders,
        "files": [{"path": f.name, "size": f.size, "sha256": f.sha256} for f in files],
    }


#: Modification times a restored file may get: the epoch up to the year 9999.
_LATEST_MTIME = 253402300799


def unsafe_reason(member: tarfile.TarInfo, tops: set[str]) -> str | None:
    """Why restoring this member could write outside the target, or be anything but a
    plain file or folder with a representable modification time; None when it is safe."""
    if not (member.isreg() or member.isdir()):
        kind = ("a symbolic link" if member.issym() else "a hard link" if member.islnk() else
                "a FIFO" if member.isfifo() else "a device file" if member.isdev() else
                "not a plain file or folder")
        return f"{member.name!r} is {kind}"
    mtime = member.mtime
    if not isinstance(mtime, (int, float)) or not math.isfinite(mtime) or not 0 <= mtime <= _LATEST_MTIME:
        return f"{member.name!r} has an impossible modification time ({mtime!r})"
    return unsafe_name(member.name, tops)


def unsafe_name(name: str, tops: set[str]) -> str | None:
    if not name or "\x00" in name:
        return f"{name!r} is an empty or malformed name"
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith("\\") or (len(name) > 1 and name[1] == ":"):
        return f"{name!r} is an absolute path"
    if any(part in ("", ".", "..") for part in name.split("/")):
        return f"{name!r} climbs out of its folder or is not a plain relative path"
    if path.parts[0] not in tops:
        return f"{name!r} is not under a backed-up folder ({', '.join(sorted(tops))})"
    return None


def checksum_path(archive: Path) -> Path:
    return archive.with_name(archive.name + CHECKSUM_SUFFIX)


def read_checksum(archive: Path) -> str:
    """The archive's SHA-256 as written in its sidecar file."""
    sidecar = checksum_path(archive)
    try:
        text = sidecar.read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not text"
        raise BackupError(f"{archive}: corrupt: its checksum file {sidecar.name} cannot be read ({reason})") from None
    if len(text) != 2 or len(text[0]) != 64 or text[1].lstrip("*") != archive.name:
        raise BackupError(f"{archive}: corrupt: its checksum file {sidecar.name} is malformed")
    return text[0].lower()


def verify(archive: Path) -> dict:
    """Check an archive completely; its manifest if it is sound, else BackupError naming
    what is wrong: the whole-archive checksum, the compressed stream, the manifest, a
    member that is unsafe, missing, extra or whose content does not match."""
    expected = read_checksum(archive)
    try:
        _, actual = file_sha256(archive)
    except OSError as error:
        raise BackupError(f"{archive}: cannot be read ({error.strerror})") from None
    if actual != expected:
        raise BackupError(f"{archive}: corrupt or truncated: its SHA-256 is {actual[:16]}…, "
                          f"the checksum file says {expected[:16]}…")
    with open_archive(archive) as members:
        manifest = next(members)[1]
        for _ in members:  # each member is checked as the iteration passes it
            pass
    return manifest


def open_archive(archive: Path) -> _ArchiveReader:
    return _ArchiveReader(archive)


class _ArchiveReader:
    """Iterates an archive's members after checking them: first (manifest, manifest dict),
    then (member, content bytes or None for folders), each checked for safety and
    against the manifest; when iteration ends, anything listed but absent is an error."""

    def __init__(self, archive: Path) -> None:
        self.archive = archive
        self._tar: tarfile.TarFile | None = None

    def __enter__(self) -> Iterator[tuple[tarfile.TarInfo, Any]]:
        try:
            self._tar = tarfile.open(self.archive, mode="r:*")
        except _READ_ERRORS as error:
            raise BackupError(f"{self.archive}: not a readable backup archive ({_reason(error)})") from None
        return self._members()

    def __exit__(self, *exc_info: object) -> None:
        if self._tar is not None:
            self._tar.close()

    def _fail(self, text: str) -> BackupError:
        return BackupError(f"{self.archive}: {text}")

    def _members(self) -> Iterator[tuple[tarfile.TarInfo, Any]]:
        tar = self._tar
        assert tar is not None
        try:
            first = tar.next()
            if first is None or first.name != MANIFEST_NAME or not first.isreg():
                raise self._fail(f"not a backup archive: the first member is not {MANIFEST_NAME}")
            manifest = _parse_manifest(tar.extractfile(first).read(), self._fail)
            tops = {source["name"] for source in manifest["sources"]}
            expected_files = {f["path"]: f for f in manifest["files"]}
            expected_folders = set(manifest["folders"])
            for name in [*expected_files, *expected_folders]:
                reason = unsafe_name(name, tops)
                if reason:
                    raise self._fail(f"unsafe manifest entry: {reason}")
            yield first, manifest
            seen: set[str] = set()
            while (member := tar.next()) is not None:
                reason = unsafe_reason(member, tops)
                if reason:
                    raise self._fail(f"unsafe member: {reason}")
                if member.name in seen:
                    raise self._fail(f"member {member.name!r} appears twice")
                seen.add(member.name)
                if member.isdir():
                    if member.name not in expected_folders:
                        raise self._fail(f"folder {member.name!r} is not in the manifest")
                    yield member, None
                    continue
                listed = expected_files.get(member.name)
                if listed is None:
                    raise self._fail(f"file {member.name!r} is not in the manifest")
                content = _CheckedContent(tar.extractfile(member), listed, self._fail)
                yield member, content
                if not content.consumed:
                    for _ in content.chunks():
                        pass
            missing = (set(expected_files) | expected_folders) - seen
            if missing:
                raise self._fail(f"truncated: {len(missing)} member(s) listed in the manifest are missing, "
                                 f"e.g. {sorted(missing)[0]!r}")
        except BackupError:
            raise
        except _READ_ERRORS as error:
            raise self._fail(f"corrupt or truncated ({_reason(error)})") from None


class _CheckedContent:
    """A member's content, read in chunks; the size and SHA-256 are compared with the
    manifest when the last chunk has been read (callers must read it all)."""

    def __init__(self, content: IO[bytes], listed: dict, fail) -> None:
        self.content, self.listed, self.fail = content, listed, fail
        self.consumed = False

    def chunks(self) -> Iterator[bytes]:
        digest, size = hashlib.sha256(), 0
        while True:
            try:
                chunk = self.content.read(_COPY_BYTES)
            except _READ_ERRORS as error:
                raise self.fail(f"corrupt or truncated ({_reason(error)})") from None
            if not chunk:
                break
            digest.update(chunk)
            size += len(chunk)
            yield chunk
        if size != self.listed["size"] or digest.hexdigest() != self.listed["sha256"]:
            raise self.fail(f"corrupt: {self.listed['path']!r} does not match its manifest entry")
        self.consumed = True


def _parse_manifest(data: bytes, fail) -> dict:
    try:
        manifest = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise fail(f"corrupt manifest ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise fail(f"not a backup archive of this engine (manifest format is not {FORMAT})")
    try:
        for source in manifest["sources"]:
            str(source["name"])
        for entry in manifest["files"]:
            str(entry["path"]), int(entry["size"]), str(entry["sha256"])
        folders = set(manifest["folders"])
    except (KeyError, TypeError, ValueError) as error:
        raise fail(f"corrupt manifest (missing or malformed {error})") from None
    names: set[str] = set()
    for source in manifest["sources"]:
        name = source["name"]
        if not isinstance(name, str) or not name or "/" in name or name in (".", "..") or "\x00" in name:
            raise fail(f"unsafe manifest entry: source name {name!r} is not a plain folder name")
        if name in names:
            raise fail(f"corrupt manifest (source {name!r} is listed twice)")
        names.add(name)
        if name not in folders:
            raise fail(f"corrupt manifest (source {name!r} has no folder)")
    paths = [entry["path"] for entry in manifest["files"]]
    if len(set(paths)) != len(paths):
        twice = next(path for path in paths if paths.count(path) > 1)
        raise fail(f"corrupt manifest (file {twice!r} is listed twice)")
    return manifest


def _reason(error: BaseException) -> str:
    return str(error) or type(error).__name__
