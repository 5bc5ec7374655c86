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

A backend that refuses an event for good (an HTTP 4xx answer other than 408 Request
Timeout and 429 Too Many Requests: the event is one it will never take, e.g. 422 for a
parent run id it does not accept) is not asked again: the event goes, once, to
`<output>/lineage/rejected.jsonl` (one JSON line each: the event, the HTTP status, the
answer's body, the time), with a warning; the run's other events are still sent. Only
transient failures (no answer, timeouts, 5xx, 408, 429) are kept for `replay`.

The files are opened without following symbolic links (engine.files.append):
a link planted in the lineage folder is refused, never written through.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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
REJECTED_NAME = "rejected.jsonl"
#: 4xx answers that say "not now" rather than "never"
_TRANSIENT_CLIENT_ERRORS = (408, 429)
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


@dataclass(frozen=True)
class Failure:
    """Why the backend did not take an event: `status` and `body` when it answered with
    an HTTP error; `permanent` when it refused the event for good."""

    reason: str
    status: int | None = None
    body: str | None = None

    @property
    def permanent(self) -> bool:
        return self.status is not None and 400 <= self.status < 500 and self.status not in _TRANSIENT_CLIENT_ERRORS


@dataclass(frozen=True)
class ReplayOutcome:
    """What a replay did: events the backend took, refused for good (now in
    rejected.jsonl) and that are still pending."""

    delivered: int
    rejected: int
    pending: int


class LineageDelivery:
    """Sends one run's events: local record first, then the configured backend."""

    def __init__(self, output_dir: Path, client: OpenLineageClient | None, deadline: float) -> None:
        self.output_dir = Path(output_dir)
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
        failure = _within_deadline(lambda: self.client.emit(event), self.deadline)
        if failure is None:
            return
        if failure.permanent:
            with _locked(self.folder):
                _reject(self.folder, json.loads(event_json(event)), failure)
            return
        self.backend_failed = True
        self._keep(event, failure.reason)

    def _keep(self, event: Any, reason: str) -> None:
        with _locked(self.folder):
            _append_line(self.folder / PENDING_NAME, event_json(event), "the pending lineage events file")
        log.warning("lineage %s event kept for `engine lineage replay`: %s", _event_type(event), reason)


def replay(output_dir: Path, client: OpenLineageClient | None, deadline: float) -> ReplayOutcome:
    """Deliver the kept events of `output_dir` with `client`, oldest first, until the
    backend fails transiently; an event it refuses for good moves to rejected.jsonl."""
    folder = lineage_dir(output_dir)
    pending_path = folder / PENDING_NAME
    if client is None or not pending_path.exists():
        return ReplayOutcome(0, 0, _count_lines(pending_path))
    delivered = rejected = 0
    with _locked(folder):
        lines = _readable_pending(folder, pending_path)
        while lines:
            event = json.loads(lines[0])
            failure = _within_deadline(lambda event=event: client.transport.emit(event), deadline)
            if failure is not None and not failure.permanent:
                log.warning("lineage backend still unavailable: %s", failure.reason)
                break
            if failure is None:
                delivered += 1
            else:
                _reject(folder, event, failure)
                rejected += 1
            lines.pop(0)
            _rewrite(pending_path, lines)
    return ReplayOutcome(delivered, rejected, len(lines))


def _readable_pending(folder: Path, pending_path: Path) -> list[str]:
    """The pending events; lines that are not events are moved aside, with a warning."""
    lines = [line for line in _read_pending(pending_path).splitlines() if line.strip()]
    readable = [line for line in lines if _parses(line)]
    if len(readable) < len(lines):
        unreadable = [line for line in lines if not _parses(line)]
        for line in unreadable:
            _append_line(folder / UNREADABLE_NAME, line, "the unreadable lineage events file")
        log.warning("%s: %d line(s) are not lineage events (torn or edited); moved to %s, not delivered",
                    pending_path, len(unreadable), folder / UNREADABLE_NAME)
        _rewrite(pending_path, readable)
    return readable


def _reject(folder: Path, event: dict, failure: Failure) -> None:
    """Record an event the backend refused for good, once (the caller holds the lock)."""
    line = json.dumps({"event": event, "status": failure.status, "body": failure.body,
                       "time": dt.datetime.now(dt.timezone.utc).isoformat()}, sort_keys=True)
    _append_line(folder / REJECTED_NAME, line, "the rejected lineage events file")
    log.warning("lineage %s event refused by the backend (HTTP %s: %s); recorded in %s, not sent again",
                event.get("eventType"), failure.status, _short(failure.body), folder / REJECTED_NAME)


def _short(text: str | None, limit: int = 200) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[:limit] + "…"


def _within_deadline(send, deadline: float) -> Failure | None:
    """Run `send` for at most `deadline` seconds; None when it succeeded, else why not."""
    outcome: dict[str, Any] = {}

    def attempt() -> None:
        try:
            send()
            outcome["ok"] = True
        except Exception as error:  # any transport failure means: keep or reject the event
            outcome["failure"] = _failure(error)

    worker = threading.Thread(target=attempt, name="lineage-emit", daemon=True)
    worker.start()
    worker.join(deadline)
    if worker.is_alive():
        return Failure(f"no answer within {deadline:g} s")
    return None if outcome.get("ok") else outcome.get("failure", Failure("unknown error"))


def _failure(error: Exception) -> Failure:
    """The failure an exception of the transport stands for; the HTTP transport raises
    `requests.HTTPError` carrying the answer when the backend answered with an error."""
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    body = None
    if status is not None:
        try:
            body = response.text
        except Exception:  # an unreadable body still leaves the status
            body = None
    return Failure(f"{type(error).__name__}: {error}", status if isinstance(status, int) else None, body)


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
