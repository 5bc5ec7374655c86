"""SHA-256 fingerprints of files and folders, for the audit log and backup manifests.

A folder's fingerprint is the SHA-256 of its listing `<sha256>  <relative path>\\n`,
one line per file sorted by path (the form `sha256sum` prints), so it changes when any
file's content, name or presence changes and can be recomputed from a backup manifest.

Hashing a multi-gigabyte input takes about a second per GB on one core; `BackgroundDigests`
does it in a thread while the run works (hashlib releases the GIL on large buffers).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

CHUNK_BYTES = 1 << 20


def file_sha256(path: Path | str, stop: threading.Event | None = None) -> tuple[int, str | None]:
    """(bytes read, hex SHA-256) of a file's content; the digest is None if `stop` was
    set before the end."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            if stop is not None and stop.is_set():
                return size, None
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def listing_sha256(files: Mapping[str, str]) -> str:
    """The fingerprint of a folder from {relative path: file sha256}."""
    lines = "".join(f"{sha}  {name}\n" for name, sha in sorted(files.items()))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


class BackgroundDigests:
    """Hashes files in a daemon thread; `result()` waits for them, `cancel()` gives up
    (files not hashed by then get no sha256)."""

    def __init__(self, paths: Iterable[str]) -> None:
        self.paths = list(paths)
        self._digests: dict[str, tuple[int, str | None]] = {}
        self._errors: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="input-digests", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        for path in self.paths:
            if self._stop.is_set():
                return
            try:
                self._digests[path] = file_sha256(path, self._stop)
            except OSError as error:
                self._errors[path] = error.strerror or str(error)

    def cancel(self) -> None:
        self._stop.set()

    def result(self) -> list[dict]:
        """One entry per file: path, size and sha256 (None when not hashed, with why)."""
        self._thread.join()
        entries = []
        for path in self.paths:
            size, sha = self._digests[path] if path in self._digests else (file_size(path), None)
            entry: dict = {"path": path, "size": size, "sha256": sha}
            if path in self._errors:
                entry["error"] = self._errors[path]
            elif entry["sha256"] is None:
                entry["error"] = "not hashed: the operation was interrupted"
            entries.append(entry)
        return entries


def file_size(path: str) -> int | None:
    """A file's size in bytes; None if it cannot be read."""
    try:
        return Path(path).stat().st_size
    except OSError:
        return None
