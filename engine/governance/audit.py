"""The audit log: one JSON line for every run, anonymize, backup, restore and prune.

Each line says when (UTC), who (OS user) and where (host), what (operation, run id),
with what (inputs: path, size, SHA-256), producing what (outputs: path, size, SHA-256),
and how it ended (outcome, exit code, the error). An input on object storage is recorded
by its URL, size and ETag (sha256 null: it is not downloaded to be hashed); another URL
dataset (a database table) by its URL alone. Outputs published to object storage are
described by the work folder's files (the same bytes), each with the URL it was
published to (`describe_files(..., published_to=URL)`).

The log is `audit.path`, by default
`$XDG_STATE_HOME/sales-engine/audit.jsonl` (`~/.local/state/sales-engine/audit.jsonl`),
readable by its owner only (0600). The default is one log per OS user, not per checkout
or output folder: it records that user's commands from every folder (`engine audit
--output FOLDER` picks one folder's runs); an installation sets one `audit.path` for its
service user. A process that starts a new log says where, once, in an INFO line.

Writing: the file is opened with O_APPEND before the operation starts (a log that cannot
be written stops the operation before it does anything), and each record is one
`write()` under an exclusive `flock`, followed by `fsync`, so concurrent runs on one
machine never interleave or lose lines.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import pwd
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hamilton.lifecycle import GraphExecutionHook

from engine.errors import UNEXPECTED_EXIT_CODE, ConfigurationError, EngineError, InputDataError
from engine.execution.interrupts import exit_code_of_interrupt
from engine.files.append import append_line, open_for_append
from engine.files.permissions import PRIVATE_FILE_MODE, make_dirs
from engine.files.digests import BackgroundDigests, file_sha256, file_size
from engine.observability.logs import mask_credentials
from engine.sources.object_store import is_url

if TYPE_CHECKING:
    from engine.config import AuditConfig
    from engine.sources.plan import SourceFile

log = logging.getLogger("engine.audit")  # the name in log lines, kept from before the package layout

PRIVATE_DIR_MODE = 0o700
RECORD_VERSION = 1

#: the new audit logs this process has already named in the log
_announced: set[Path] = set()


def default_audit_path(environ: dict | None = None) -> Path:
    """`$XDG_STATE_HOME/sales-engine/audit.jsonl`, or under `~/.local/state` without it."""
    env = os.environ if environ is None else environ
    state = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "sales-engine" / "audit.jsonl"


def audit_path(configured: str | None) -> Path:
    return Path(configured).expanduser() if configured else default_audit_path()


class AuditLog:
    """An append-only audit file, opened once and written one whole line at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._new = False

    def open(self) -> AuditLog:
        """Open (and if needed create, 0600) the log; ConfigurationError if it cannot be."""
        try:
            make_dirs(self.path.parent, PRIVATE_DIR_MODE)
            # no link followed, a regular file only, 0600 set on the descriptor
            self._fd = open_for_append(self.path, PRIVATE_FILE_MODE, what="the audit log")
            self._new = os.fstat(self._fd).st_size == 0  # created now, or left empty by a crash
        except OSError as error:
            self.close()
            raise ConfigurationError(f"{self.path}: cannot open the audit log ({error.strerror}); "
                                     "set audit.path to a file this user can write") from None
        except ConfigurationError:
            self.close()
            raise
        return self

    def append(self, record: dict) -> None:
        """Append one record as one line: locked, one write, flushed to disk."""
        assert self._fd is not None, "AuditLog.append before open"
        append_line(self._fd, (json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n").encode("utf-8"))
        if self._new:
            self._new = False
            _announce_new_log(self.path)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _announce_new_log(path: Path) -> None:
    """Say once per process where a log this process started lives, and what it covers:
    the default log gathers one OS user's commands from every folder, which is not what
    someone running the engine in one project folder expects."""
    if path in _announced:
        return
    _announced.add(path)
    if path == default_audit_path():
        log.info("audit log started at %s: the default for OS user %s, it records this user's runs, anonymize "
                 "and backup commands from every folder (audit.path or ENGINE__AUDIT__PATH moves it; "
                 "engine audit --output FOLDER shows one output folder's runs)", path, _os_user())
    else:
        log.info("audit log started at %s (audit.path)", path.absolute())


def read_records(path: Path) -> list[dict]:
    """Every record of an audit log, oldest first (a missing log has none)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as error:
        raise InputDataError(f"{path}: cannot read the audit log ({error.strerror})") from None
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputDataError(f"{path}: line {number}: not an audit record ({error.msg})") from None
        if not isinstance(record, dict) or "operation" not in record or "time" not in record:
            raise InputDataError(f"{path}: line {number}: not an audit record (no time or operation)")
        records.append(record)
    return records


def describe_files(paths: list[Path | str], published_to: str | None = None) -> list[dict]:
    """Path, size and SHA-256 of each file (the outputs of an operation); with
    `published_to` (an output URL), also the URL each file was published as there."""
    described = []
    for path in paths:
        try:
            size, sha = file_sha256(path)
            entry = {"path": str(Path(path).resolve()), "size": size, "sha256": sha}
        except OSError as error:
            entry = {"path": str(path), "size": None, "sha256": None, "error": error.strerror}
        if published_to:
            entry["url"] = f"{published_to.rstrip('/')}/{Path(path).name}"
        described.append(entry)
    return described


def _url_input(item: str | SourceFile) -> dict:
    """The record of an input that is not a local file: an object on object storage by its
    URL, size and ETag; any other URL dataset by its URL alone (credentials masked)."""
    path = item if isinstance(item, str) else item.path
    entry: dict[str, Any] = {"path": mask_credentials(path), "size": None, "sha256": None}
    if not isinstance(item, str) and item.on_object_storage:
        entry.update(size=item.size, etag=item.etag)
        if item.version_id:
            entry["version_id"] = item.version_id
    return entry


class AuditEntry:
    """What one operation reports to the audit log while it runs."""

    def __init__(self, operation: str, run_id: str, hash_contents: bool = True) -> None:
        self.operation = operation
        self.run_id = run_id
        self.hash_contents = hash_contents
        self.inputs: list[dict] = []
        self.outputs: list[dict] = []
        self.details: dict[str, Any] = {}
        self.input_digests: BackgroundDigests | None = None

    def hash_inputs(self, inputs: list[str] | list[SourceFile], known: dict[str, str] | None = None) -> None:
        """Record the input files (paths, or the run's files); their SHA-256 (unless `known`
        already, or `audit.hash_inputs` is off) is computed in the background while the
        operation goes on. Inputs named by URL are never opened here (see the module's
        description)."""
        known = known or {}
        paths = []
        for item in inputs:
            path = item if isinstance(item, str) else item.path
            if is_url(path):
                self.inputs.append(_url_input(item))
            else:
                paths.append(path)
        self.inputs += [{"path": path, "size": file_size(path), "sha256": known[path]} for path in paths
                        if path in known]
        unknown = [path for path in paths if path not in known]
        if self.hash_contents:
            self.input_digests = BackgroundDigests(unknown)
        else:
            self.inputs += [{"path": path, "size": file_size(path), "sha256": None} for path in unknown]

    def record(self, started: dt.datetime, seconds: float, outcome: str, exit_code: int,
               error: str | None) -> dict:
        inputs = self.inputs
        if self.input_digests is not None:
            if outcome == "interrupted":
                self.input_digests.cancel()
            inputs = [*inputs, *self.input_digests.result()]
        return {
            "version": RECORD_VERSION,
            "time": started.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "user": _os_user(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "operation": self.operation,
            "run_id": self.run_id,
            "inputs": inputs,
            "outputs": self.outputs,
            "outcome": outcome,
            "exit_code": exit_code,
            "error": error,
            "duration_s": round(seconds, 3),
            "details": self.details,
        }


class RunAuditHook(GraphExecutionHook):
    """What the audit log needs from inside a run, as a Hamilton lifecycle adapter: when
    the dataflow starts, it starts hashing the files of the read plan the run resolved
    (exactly the files the run reads) and notes the files already in the output folder,
    so that a run that fails after publishing can still say what it published. Without an
    output folder (`engine run --until`, which publishes nothing) it only hashes."""

    def __init__(self, entry: AuditEntry, output_dir: Path | None = None) -> None:
        self.entry = entry
        self.output_dir = output_dir
        self._before: dict[str, int] | None = None
        self._inputs_noted = False

    def run_before_graph_execution(self, *, inputs: dict[str, Any], **future_kwargs: Any) -> None:
        plan = inputs.get("read_plan")
        if plan is not None and not self._inputs_noted and self.entry.input_digests is None:
            self._inputs_noted = True  # an incremental run executes the dataflow once per batch
            self.entry.hash_inputs(list(plan.files), {f.path: f.sha256 for f in plan.files if f.sha256})
        if self.output_dir is not None:
            self._before = _top_level_files(self.output_dir)

    def run_after_graph_execution(self, **future_kwargs: Any) -> None:
        return None

    def published_despite_failure(self, run_id: str) -> list[dict]:
        """The files a failed run published anyway (a data-quality alert with
        fail_on_alert fails the run after publishing): none unless the run report in the
        output folder is this run's; then every file the run created or replaced (new
        inode: publication is by rename)."""
        if self._before is None:
            return []
        try:
            report = json.loads((self.output_dir / "run_report.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        if not isinstance(report, dict) or report.get("run_id") != run_id:
            return []
        now = _top_level_files(self.output_dir)
        return describe_files([self.output_dir / name for name, inode in sorted(now.items())
                               if self._before.get(name) != inode])


def _top_level_files(folder: Path) -> dict[str, int]:
    """Name → inode of the visible regular files directly in `folder`; a published name is
    a link into the published run's folder, so its inode is that of the file it leads to."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return {}
    found = {}
    for entry in entries:
        try:
            if not entry.name.startswith(".") and entry.is_file():
                found[entry.name] = entry.stat().st_ino
        except OSError:  # a link whose run folder is gone
            continue
    return found


@contextmanager
def audited(operation: str, config: AuditConfig, run_id: str | None = None) -> Iterator[AuditEntry]:
    """Record `operation` in the audit log when the block ends, however it ends; the
    block's exception, if any, goes on after the record is written."""
    audit = AuditLog(audit_path(config.path)).open()
    entry = AuditEntry(operation, run_id or str(uuid.uuid4()), hash_contents=config.hash_inputs)
    started = dt.datetime.now(dt.timezone.utc)
    clock = time.monotonic()
    try:
        try:
            yield entry
        except BaseException as error:
            outcome, code = _ending(error)
            try:
                audit.append(entry.record(started, time.monotonic() - clock, outcome, code, _one_line(error)))
            except OSError as write_error:  # the operation's own error is the one to report
                log.error("%s: could not append to the audit log: %s", audit.path, write_error.strerror)
            raise
        try:
            audit.append(entry.record(started, time.monotonic() - clock, "success", 0, None))
        except OSError as error:
            raise ConfigurationError(f"{audit.path}: could not append to the audit log ({error.strerror})") from None
    finally:
        audit.close()


def _ending(error: BaseException) -> tuple[str, int]:
    if isinstance(error, KeyboardInterrupt):  # Ctrl-C (130) or SIGTERM (143)
        return "interrupted", exit_code_of_interrupt(error)
    if isinstance(error, EngineError):
        return "failed", error.exit_code
    if isinstance(error, SystemExit):
        return ("success", 0) if not error.code else ("failed", error.code if isinstance(error.code, int) else 1)
    return "failed", UNEXPECTED_EXIT_CODE


def _one_line(error: BaseException) -> str:
    """The error's first line, credentials masked."""
    text = str(error).strip().splitlines()
    return mask_credentials(f"{type(error).__name__}: {text[0]}" if text else type(error).__name__)


def _os_user() -> str:
    """The name of the effective user (from the user database, not $USER, which anyone can set)."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())

