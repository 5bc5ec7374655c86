"""Delivering lineage events: never lost, never blocking the run.

Every event is first appended to the run's local record, `<output>/lineage/events.jsonl`,
by the client's own file transport; with no OpenLineage configuration that is where
lineage goes. When a transport is configured the standard OpenLineage way
(`openlineage.yml`, `OPENLINEAGE__TRANSPORT__*`, `OPENLINEAGE_URL`), the event is also
sent there, under a deadline. An event the backend did not take in time (down, slow,
answering errors) is kept in `<output>/lineage/pending.jsonl`, and once one event has
failed the rest of the run's events go straight there, so a dead backend costs one
deadline per run. `replay` delivers the kept events later, oldest first, each removed
from the file as soon as the backend took it, so a second replay sends nothing again.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from openlineage.client import OpenLineageClient
from openlineage.client.serde import Serde
from openlineage.client.transport.file import FileConfig, FileTransport

from engine import permissions

log = logging.getLogger(__name__)

RECORD_NAME = "events.jsonl"
PENDING_NAME = "pending.jsonl"
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
        self._record: FileTransport | None = None

    def emit(self, event: Any) -> None:
        permissions.make_dirs(self.folder)
        with _locked(self.folder):
            self._local_record().emit(event)
        if self.client is None:
            return
        if self.backend_failed:
            self._keep(event, "the lineage backend failed earlier in this run")
            return
        error = _within_deadline(lambda: self.client.emit(event), self.deadline)
        if error is not None:
            self.backend_failed = True
            self._keep(event, error)

    def _local_record(self) -> FileTransport:
        if self._record is None:
            permissions.create_file(self.folder / RECORD_NAME)  # before the transport opens it
            self._record = FileTransport(FileConfig(log_file_path=str(self.folder / RECORD_NAME), append=True))
        return self._record

    def _keep(self, event: Any, reason: str) -> None:
        permissions.create_file(self.folder / PENDING_NAME)
        with _locked(self.folder), open(self.folder / PENDING_NAME, "a", encoding="utf-8") as pending:
            pending.write(Serde.to_json(event) + "\n")
            pending.flush()
            os.fsync(pending.fileno())
        log.warning("lineage %s event kept for `engine lineage replay`: %s", _event_type(event), reason)


def replay(output_dir: Path, client: OpenLineageClient | None, deadline: float) -> tuple[int, int]:
    """Deliver the kept events of `output_dir` with `client`; (delivered, still pending)."""
    folder = lineage_dir(output_dir)
    pending_path = folder / PENDING_NAME
    if client is None or not pending_path.exists():
        return 0, _count_lines(pending_path)
    delivered = 0
    with _locked(folder):
        lines = [line for line in pending_path.read_text(encoding="utf-8").splitlines() if line.strip()]
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


def _rewrite(path: Path, lines: list[str]) -> None:
    if not lines:
        path.unlink(missing_ok=True)
        return
    temporary = path.with_suffix(".tmp")
    temporary.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    permissions.restrict(temporary)
    os.replace(temporary, path)


def _count_lines(path: Path) -> int:
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip()) if path.exists() else 0


def _event_type(event: Any) -> str:
    kind = getattr(event, "eventType", None)
    return getattr(kind, "value", str(kind))


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on the lineage folder: concurrent runs never interleave lines."""
    permissions.make_dirs(folder)
    permissions.create_file(folder / _LOCK_NAME)
    with open(folder / _LOCK_NAME, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
