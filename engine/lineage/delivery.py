"""Delivering lineage events: never lost, never blocking the run.

Every event is first appended to the run's local record, `<output>/lineage/events.jsonl`
(one JSON line per event, as the OpenLineage file transport writes it); with no OpenLineage configuration that is where
lineage goes. When a transport is configured the standard OpenLineage way
(`openlineage.yml`, `OPENLINEAGE__TRANSPORT__*`, `OPENLINEAGE_URL`), the event is also
sent there, under a deadline. An event the backend did not take in time (down, slow,
answering errors) is kept in `<output>/lineage/pending.jsonl`, and once one event has
failed the rest of the run's events go straight there, so a dead backend costs one
deadline per run. `replay` delivers the kept events later, oldest first, each removed
from the file as soon as the backend took it, so a second replay sends nothing again; a
line that cannot be read (torn by a full disk or a crash) is moved aside to
`pending.unreadable.jsonl` with a warning instead of blocking the replay.

The files are opened without following symbolic links (engine.files.append):
a link planted in the lineage folder is refused, never written through.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from openlineage.client import OpenLineageClient

from engine.files import permissions
from engine.files.append import append_line, open_for_append
from engine.files.atomic import write_atomically
from engine.files.locks import file_lock
from engine.files.opening import read_own_text
from engine.lineage.serialization import event_json

log = logging.getLogger(__name__)

RECORD_NAME = "events.jsonl"
PENDING_NAME = "pending.jsonl"
UNREADABLE_NAME = "pending.unreadable.jsonl"
_LOCK_NAME = ".lock"


def lineage_dir(output_dir: Path) -> Path:
    return Path(output_dir) / "lineage"


def configured_client() -> OpenLineageClient | None:
    """The client for the OpenLineage configuration of this environment, or None when
    there is none (no config file, no OPENLINEAGE__TRANSPORT__* or OPENLINEAGE_URL)."""
    configured = (
        OpenLineageClient._find_yaml_config_path()
        or os.environ.get("OPENLINEAGE_URL")
        or any(name.startswith("OPENLINEAGE__TRANSPORT") for name in os.environ)
        or os.environ.get("OPENLINEAGE_DISABLED", "").strip().lower() == "true"
    )
    return OpenLineageClient() if configured else None


class LineageDelivery:
    """Sends one run's events: local record first, then the configured backend."""

    def __init__(self, output_dir: Path, client: OpenLineageClient | None, deadline: float) -> None:
        self.folder = lineage_dir(output_dir)
        self.client = client
        self.deadline = deadline
        self.backend_failed = False

    def emit(self, event: Any) -> None:
        permissions.make_dirs(self.folder)
        with _locked(self.folder):
            _append_line(self.folder / RECORD_NAME, event_json(event), "the lineage record")
        if self.client is None:
            return
        if self.backend_failed:
            self._keep(event, "the lineage backend failed earlier in this run")
            return
        error = _within_deadline(lambda: self.client.emit(event), self.deadline)
        if error is not None:
            self.backend_failed = True
            self._keep(event, error)

    def _keep(self, event: Any, reason: str) -> None:
        with _locked(self.folder):
            _append_line(self.folder / PENDING_NAME, event_json(event), "the pending lineage events file")
        log.warning("lineage %s event kept for `engine lineage replay`: %s", _event_type(event), reason)


def replay(output_dir: Path, client: OpenLineageClient | None, deadline: float) -> tuple[int, int]:
    """Deliver the kept events of `output_dir` with `client`; (delivered, still pending)."""
    folder = lineage_dir(output_dir)
    pending_path = folder / PENDING_NAME
    if client is None or not pending_path.exists():
        return 0, _count_lines(pending_path)
    delivered = 0
    with _locked(folder):
        lines = [line for line in _read_pending(pending_path).splitlines() if line.strip()]
        readable = [line for line in lines if _parses(line)]
        if len(readable) < len(lines):
            unreadable = [line for line in lines if not _parses(line)]
            for line in unreadable:
                _append_line(folder / UNREADABLE_NAME, line, "the unreadable lineage events file")
            log.warning("%s: %d line(s) are not lineage events (torn or edited); moved to %s, not delivered",
                        pending_path, len(unreadable), folder / UNREADABLE_NAME)
            lines = readable
            _rewrite(pending_path, lines)
        while lines:
            event = json.loads(lines[0])
            error = _within_deadline(lambda event=event: client.transport.emit(event), deadline)
            if error is not None:
                log.warning("lineage backend still unavailable: %s", error)
                break
            delivered += 1
            lines.pop(0)
            _rewrite(pending_path, lines)
    return delivered, len(lines)


def _within_deadline(send, deadline: float) -> str | None:
    """Run `send` for at most `deadline` seconds; None when it succeeded, else why not."""
    outcome: dict[str, Any] = {}

    def attempt() -> None:
        try:
            send()
            outcome["ok"] = True
        except Exception as error:  # any transport failure means: keep the event
            outcome["error"] = f"{type(error).__name__}: {error}"

    worker = threading.Thread(target=attempt, name="lineage-emit", daemon=True)
    worker.start()
    worker.join(deadline)
    if worker.is_alive():
        return f"no answer within {deadline:g} s"
    return None if outcome.get("ok") else outcome.get("error", "unknown error")


def _append_line(path: Path, line: str, what: str) -> None:
    """Append `line` and a newline in one write, then fsync; no link followed (the
    caller holds the folder's lock; the file's own lock guards other writers)."""
    fd = open_for_append(path, what=what)
    try:
        append_line(fd, (line + "\n").encode("utf-8"))
    finally:
        os.close(fd)


def _parses(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _read_pending(path: Path) -> str:
    """The pending file's text; a link or special file in its place is refused."""
    return read_own_text(path, "the pending lineage events file") or ""


def _rewrite(path: Path, lines: list[str]) -> None:
    if not lines:
        path.unlink(missing_ok=True)
        return
    write_atomically(path, "".join(line + "\n" for line in lines).encode("utf-8"))


def _count_lines(path: Path) -> int:
    return sum(1 for line in _read_pending(path).splitlines() if line.strip())


def _event_type(event: Any) -> str:
    kind = getattr(event, "eventType", None)
    return getattr(kind, "value", str(kind))


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on the lineage folder: concurrent runs never interleave lines."""
    permissions.make_dirs(folder)
    with file_lock(folder / _LOCK_NAME, what="the lineage lock file"):
        yield
